"""Run one command and measure it: wall and CPU time, peak memory of its process tree."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Sample:
    """One child process: wall and CPU seconds, peak memory."""

    wall_s: float
    cpu_s: float
    user_s: float
    sys_s: float
    peak_rss_mb: float  # ru_maxrss from wait4: the largest single process (the child or a reaped descendant)
    tree_rss_mb: float  # sampled every 20 ms: RSS summed over the child and its live descendants (counts pages
    #                     that forked workers share once per process: an upper bound)
    tree_pss_mb: float  # PSS summed over the tree, sampled every 200 ms while it has several processes (shared
    #                     pages split between their users); RSS while it is one process
    returncode: int
    stdout: str = field(repr=False, default="")
    stderr: str = field(repr=False, default="")

    @property
    def peak_mb(self) -> float:
        """The peak memory compared with the target: the larger of the two measures."""
        return max(self.peak_rss_mb, self.tree_pss_mb)

    def numbers(self) -> dict[str, float]:
        d = asdict(self)
        for key in ("stdout", "stderr", "returncode"):
            d.pop(key)
        d["peak_mb"] = self.peak_mb
        return {k: round(v, 4) for k, v in d.items()}


class CommandFailed(Exception):
    def __init__(self, command: list[str], sample: Sample):
        super().__init__(f"{' '.join(command)} exited {sample.returncode}")
        self.command, self.sample = command, sample


PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except (OSError, ValueError):
            pass
    return found


def _tree_memory_mb(pids: list[int]) -> float:
    total = 0
    for p in pids:
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * PAGE
        except (OSError, ValueError, IndexError):
            pass
    return total / 2**20


def _tree_pss_mb(pids: list[int]) -> float:
    """Sum of Pss (smaps_rollup, kB); reading it walks the page tables, so it is sampled sparingly."""
    total = 0
    for p in pids:
        try:
            text = Path(f"/proc/{p}/smaps_rollup").read_text()
        except OSError:
            continue
        match = re.search(r"^Pss:\s+(\d+) kB", text, re.MULTILINE)
        total += int(match.group(1)) if match else 0
    return total / 1024


def run(command: list[str], cwd: Path, env: dict[str, str]) -> Sample:
    """Run `command`; its own CPU time and peak RSS from os.wait4, its tree's RSS by sampling /proc."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        peak_tree = peak_pss = 0.0
        done = threading.Event()

        def sample_tree() -> None:
            nonlocal peak_tree, peak_pss
            last_pss = 0.0
            while not done.is_set():
                pids = _descendants(proc.pid)
                rss = _tree_memory_mb(pids)
                peak_tree = max(peak_tree, rss)
                if len(pids) == 1:
                    peak_pss = max(peak_pss, rss)
                elif time.perf_counter() - last_pss >= 0.2:
                    peak_pss = max(peak_pss, _tree_pss_mb(pids))
                    last_pss = time.perf_counter()
                done.wait(0.02)

        sampler = threading.Thread(target=sample_tree, daemon=True)
        if Path("/proc/self/statm").exists():
            sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        done.set()
        if sampler.is_alive():
            sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        maxrss_mb = usage.ru_maxrss / 1024 if sys.platform != "darwin" else usage.ru_maxrss / 2**20
        return Sample(wall_s=wall, cpu_s=usage.ru_utime + usage.ru_stime, user_s=usage.ru_utime,
                      sys_s=usage.ru_stime, peak_rss_mb=maxrss_mb, tree_rss_mb=peak_tree, tree_pss_mb=peak_pss,
                      returncode=proc.returncode, stdout=out.read().decode(errors="replace"),
                      stderr=err.read().decode(errors="replace"))


def checked(command: list[str], cwd: Path, env: dict[str, str], verbose: bool = True) -> Sample:
    sample = run(command, cwd, env)
    if sample.returncode != 0:
        raise CommandFailed(command, sample)
    if verbose:
        log(f"bench:   {sample.wall_s:.2f} s wall, {sample.cpu_s:.2f} s CPU, {sample.peak_mb:.0f} MB")
    return sample


def combined(parts: list[Sample]) -> Sample:
    """Commands run one after the other, as one sample: times added up, the largest of each memory measure."""
    return Sample(wall_s=sum(s.wall_s for s in parts), cpu_s=sum(s.cpu_s for s in parts),
                  user_s=sum(s.user_s for s in parts), sys_s=sum(s.sys_s for s in parts),
                  peak_rss_mb=max(s.peak_rss_mb for s in parts), tree_rss_mb=max(s.tree_rss_mb for s in parts),
                  tree_pss_mb=max(s.tree_pss_mb for s in parts), returncode=0)


def median_of(samples: list[Sample]) -> dict[str, float]:
    numbers = [s.numbers() for s in samples]
    return {k: round(statistics.median(n[k] for n in numbers), 4) for k in numbers[0]}
