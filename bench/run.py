"""Benchmark harness for issue 6: time the endpointgen CLI on a synthetic repository (a measurement, not a test).

Generates a synthetic GitOps repository (bench/synth.py), then times each step as a subprocess of the venv's
`endpointgen` CLI, --runs times, and reports the median: cold render, render with nothing changed, render after a
one-endpoint change, check, validate --rendered; then the anchors on the same output: `kubectl kustomize` of every
Flux Kustomization path and `kubernetes-validate` on a seeded sample of the built-in-kind files. Prints a table and
writes everything, with the targets and their pass/fail, as JSON. Exits 0 when targets are missed; non-zero only
when a command fails (its stderr is printed).

    make bench [BENCH_ARGS="--quick"]
    .venv/bin/python bench/run.py [--endpoints 1000] [--versions 3] [--envs dev,staging,prod] [--runs 3]
                                  [--out DIR] [--json bench/results.json] [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT / "bench"))

import synth  # noqa: E402

LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Published anchor: kubeconform validated 50,714 resources in 6.7 s on 4 cores (its README's benchmark).
KUBECONFORM_OBJECTS, KUBECONFORM_SECONDS, KUBECONFORM_CORES = 50_714, 6.7, 4
KUBECONFORM_RATE = 7_500  # objects/second, rounded down from 50,714 / 6.7 = 7,569
TARGET_COLD_RENDER_PLUS_VALIDATE_S = 10.0
TARGET_INCREMENTAL_RENDER_S = 0.5
TARGET_PEAK_MEMORY_MB = 300.0
TARGET_VALIDATE_RATE = 7_500  # objects/second: kubeconform's published rate
TARGET_VALIDATE_VS_KUBERNETES_VALIDATE = 100.0  # times faster per object

STEPS = {  # key: label in the table
    "cold_render": "a. render, cold",
    "nochange_render": "b. render, nothing changed",
    "onechange_render": "c. render, one spec changed",
    "check": "d. check",
    "validate": "e. validate --rendered",
    "cold_render_validate": "g. render --validate, cold (one pass)",
}
# API groups of the built-in kinds that end in ".k8s.io" (group-less versions such as v1 and apps/v1 are built in
# too); secrets-store.csi.x-k8s.io and kustomize.config.k8s.io are not.
BUILTIN_K8S_IO_GROUPS = {
    "admissionregistration.k8s.io", "apiextensions.k8s.io", "apiregistration.k8s.io", "authentication.k8s.io",
    "authorization.k8s.io", "certificates.k8s.io", "coordination.k8s.io", "discovery.k8s.io", "events.k8s.io",
    "flowcontrol.apiserver.k8s.io", "networking.k8s.io", "node.k8s.io", "rbac.authorization.k8s.io",
    "resource.k8s.io", "scheduling.k8s.io", "storage.k8s.io", "storagemigration.k8s.io",
}
API_VERSION = re.compile(r"^apiVersion:\s*['\"]?([^'\"\s]+)", re.MULTILINE)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------- measuring


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


def median_of(samples: list[Sample]) -> dict[str, float]:
    numbers = [s.numbers() for s in samples]
    return {k: round(statistics.median(n[k] for n in numbers), 4) for k in numbers[0]}


# --------------------------------------------------------------------------------------------------- the repository


def count_objects(repo: Path) -> dict[str, int]:
    """Rendered YAML files (rendered/ and clusters/), kustomization.yaml excluded: one object per file."""
    counts = {}
    for top in ("rendered", "clusters"):
        counts[top] = sum(1 for p in (repo / top).rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml")
                          and p.name not in ("kustomization.yaml", "kustomization.yml"))
    counts["total"] = counts["rendered"] + counts["clusters"]
    return counts


def flux_paths(repo: Path) -> list[str]:
    """spec.path of every kustomize.toolkit.fluxcd.io/v1 Kustomization under clusters/<env>/, in file order."""
    paths: list[str] = []
    for file in sorted((repo / "clusters").glob("*/**/*.yaml")):
        for doc in yaml.load_all(file.read_text(encoding="utf-8"), Loader=LOADER):
            if (isinstance(doc, dict) and doc.get("kind") == "Kustomization"
                    and doc.get("apiVersion") == "kustomize.toolkit.fluxcd.io/v1"):
                path = (doc.get("spec") or {}).get("path")
                if path and path not in paths:
                    paths.append(path)
    return paths


def builtin_kind_files(repo: Path) -> dict[str, list[Path]]:
    """Rendered files whose apiVersion is a built-in Kubernetes group, by their environment's kubernetes_version."""
    by_version: dict[str, list[Path]] = {}
    for env_dir in sorted(p for p in (repo / "rendered").iterdir() if p.is_dir()):
        settings = yaml.load((repo / "environments" / env_dir.name / "environment.yaml").read_text(), Loader=LOADER)
        version = str(settings.get("kubernetes_version") or "1.33")
        for file in sorted(env_dir.rglob("*.yaml")):
            match = API_VERSION.search(file.read_text(encoding="utf-8"))
            if not match or file.name == "kustomization.yaml":
                continue
            group = match.group(1).rpartition("/")[0]
            if "." not in group or group in BUILTIN_K8S_IO_GROUPS:
                by_version.setdefault(version, []).append(file)
    return by_version


def change_one_spec(repo: Path, env: str, run_index: int) -> str:
    """Edit environments/<env>/endpoints/<first>.yaml: the first traffic_percentile +1 on even runs, -1 on odd
    runs (every run differs from the last), or, with no canary, the endpoint description. Returns what changed."""
    spec = sorted((repo / "environments" / env / "endpoints").glob("*.yaml"))[0]
    text = spec.read_text(encoding="utf-8")
    match = re.search(r"^(\s+traffic_percentile:\s*)(\d+)\s*$", text, re.MULTILINE)
    if match:
        old = int(match.group(2))
        new = old + 1 if run_index % 2 == 0 else old - 1
        text = text[:match.start()] + f"{match.group(1)}{new}" + text[match.end():]
        what = f"{spec.relative_to(repo)}: traffic_percentile {old} -> {new}"
    else:
        match = re.search(r"^(description:.*?)(?: \(bench edit \d+\))?$", text, re.MULTILINE)
        if not match:
            raise SystemExit(f"bench: nothing to change in {spec}")
        text = text[:match.start()] + f"{match.group(1)} (bench edit {run_index})" + text[match.end():]
        what = f"{spec.relative_to(repo)}: description (bench edit {run_index})"
    spec.write_text(text, encoding="utf-8")
    return what


def move_outputs_aside(repo: Path, trash: Path) -> None:
    """Make the next render cold: rendered/, clusters/ and the cache go to `trash` (renamed, not deleted), and
    everything written so far goes to disk first (untimed), so that no run pays for an earlier one's writeback."""
    for name in ("rendered", "clusters", ".endpointgen-cache"):
        if (repo / name).exists():
            trash.mkdir(exist_ok=True)
            os.rename(repo / name, trash / f"{name}-{time.time_ns()}")
    if hasattr(os, "sync"):
        os.sync()


def files_written(render_output: str) -> int | None:
    """Sum of 'N file(s) written' in render's output (None when it does not say)."""
    found = re.findall(r"(\d+) file\(s\) written", render_output)
    return sum(int(n) for n in found) if found else None


# --------------------------------------------------------------------------------------------------- machine info


def tool_version(command: list[str]) -> str | None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (result.stdout or result.stderr).strip().splitlines()[0] if (result.stdout or result.stderr) else None


def code_fingerprint() -> str:
    """sha256 of generator/ and templates/ as they are on disk, to notice a change in the middle of a run."""
    digest = hashlib.sha256()
    for top in ("generator", "templates"):
        for file in sorted((PROJECT / top).rglob("*")):
            if file.is_file() and "__pycache__" not in file.parts:
                digest.update(str(file.relative_to(PROJECT)).encode() + b"\0")
                try:
                    digest.update(file.read_bytes())
                except OSError:
                    pass
    return digest.hexdigest()[:16]


def machine_info(endpointgen: Path, kubectl: str | None, kubernetes_validate: Path) -> dict[str, Any]:
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:
        nproc = os.cpu_count() or 1
    try:
        memory_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        memory_gb = None
    cpu_model = None
    try:
        cpu_model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    commit = tool_version(["git", "-C", str(PROJECT), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(PROJECT), "status", "--porcelain", "--", "generator", "templates"],
                           capture_output=True, text=True).stdout.strip() != "" if commit else None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "nproc": nproc,
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gb": memory_gb,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "endpointgen": (tool_version([str(endpointgen), "--version"]) or "").removeprefix("endpointgen, version "),
        "git_commit": commit,
        "generator_dirty": dirty,
        "code_fingerprint": code_fingerprint(),
        "kubectl": tool_version([kubectl, "version", "--client"]) if kubectl else None,
        "kubernetes_validate": tool_version([str(kubernetes_validate), "--version"]),
    }


# --------------------------------------------------------------------------------------------------- the benchmark


def find_tool(name: str) -> Path:
    """The venv's console script next to sys.executable (not resolved: the venv's python is a symlink)."""
    for directory in (Path(sys.executable).parent, PROJECT / ".venv" / "bin"):
        if (directory / name).exists():
            return directory / name
    raise SystemExit(f"bench: no {name} next to {sys.executable}; run with .venv/bin/python (make bench)")


def step_result(samples: list[Sample], command: list[str], objects: int, **extra: Any) -> dict[str, Any]:
    median = median_of(samples)
    result = {"label": STEPS.get(extra.pop("key", ""), ""), "command": command,
              "runs": [s.numbers() for s in samples], "median": median,
              "objects": objects, "objects_per_s": round(objects / median["wall_s"], 1) if median["wall_s"] else None}
    result.update(extra)
    return result


def measure(args: argparse.Namespace, repo: Path) -> dict[str, Any]:
    endpointgen = find_tool("endpointgen")
    kubernetes_validate = find_tool("kubernetes-validate")
    kubectl = shutil.which("kubectl")
    env = {k: v for k, v in os.environ.items() if k != "ENDPOINTGEN_SCHEMA_LOCATION"}
    envs = args.envs.split(",")
    eg = [str(endpointgen), "--root", str(repo)]
    notes: list[str] = []
    machine = machine_info(endpointgen, kubectl, kubernetes_validate)

    log(f"bench: generating {args.endpoints} endpoints x {args.versions} versions x {len(envs)} environments "
        f"into {repo}")
    repo.mkdir(parents=True, exist_ok=True)
    synth.generate(repo, args.endpoints, args.versions, envs)

    steps: dict[str, dict[str, Any]] = {}

    # a. cold render
    samples = []
    trash = repo.parent / f".{repo.name}-old-outputs"
    notes.append("before each cold render the previous outputs are moved aside, not deleted (deleting ~50k files "
                 "makes a filesystem mounted with discard spend seconds of kernel time in the writes that follow), "
                 "and the file system is synced (untimed), so that no run pays for an earlier run's writeback")
    for i in range(args.runs):
        move_outputs_aside(repo, trash)
        log(f"bench: cold render, run {i + 1}/{args.runs}")
        samples.append(checked(eg + ["render"], repo, env))
    counts = count_objects(repo)
    objects = counts["total"]
    steps["cold_render"] = step_result(samples, eg + ["render"], objects, key="cold_render",
                                       files_written=[files_written(s.stdout) for s in samples])

    # b. render, nothing changed
    samples = []
    for i in range(args.runs):
        log(f"bench: render with nothing changed, run {i + 1}/{args.runs}")
        samples.append(checked(eg + ["render"], repo, env))
    steps["nochange_render"] = step_result(samples, eg + ["render"], objects, key="nochange_render",
                                           files_written=[files_written(s.stdout) for s in samples])
    if any(steps["nochange_render"]["files_written"]):
        notes.append("render with nothing changed still wrote files: "
                     f"{steps['nochange_render']['files_written']}")

    # c. render after changing one endpoint spec
    samples, changes = [], []
    for i in range(args.runs):
        changes.append(change_one_spec(repo, envs[0], i))
        log(f"bench: render after one change ({changes[-1]}), run {i + 1}/{args.runs}")
        samples.append(checked(eg + ["render"], repo, env))
    written = [files_written(s.stdout) for s in samples]
    steps["onechange_render"] = step_result(samples, eg + ["render"], objects, key="onechange_render",
                                            changes=changes, files_written=written)
    if any(w == 0 for w in written):
        notes.append(f"a one-change render wrote no file (files written per run: {written})")
    objects = count_objects(repo)["total"]

    # d. check
    samples = []
    for i in range(args.runs):
        log(f"bench: check, run {i + 1}/{args.runs}")
        samples.append(checked(eg + ["check"], repo, env))
    steps["check"] = step_result(samples, eg + ["check"], objects, key="check")

    # e. validate --rendered
    schemas = Path(args.schema_location) if args.schema_location else PROJECT / "schema" / "crds"
    if schemas.is_dir():
        schema_args = ["--schema-location", str(schemas)]
        schema_note = f"CRD schemas from {schemas}"
    else:
        schema_args = ["--ignore-missing-schemas"]
        schema_note = f"no CRD schemas at {schemas}: validate ran with --ignore-missing-schemas (CRD kinds unchecked)"
        notes.append(schema_note)
    validate = eg + ["validate", "--rendered", "--summary", *schema_args]
    samples = []
    for i in range(args.runs):
        log(f"bench: validate --rendered, run {i + 1}/{args.runs}")
        samples.append(checked(validate, repo, env))
    summary = re.search(r"Summary: (\d+) objects", samples[-1].stdout + samples[-1].stderr)
    reported = int(summary.group(1)) if summary else None
    steps["validate"] = step_result(samples, validate, objects, key="validate", schemas=schema_note,
                                    objects_reported_by_validate=reported)
    if reported is not None and reported != objects:
        notes.append(f"validate --summary reports {reported} objects; the file count is {objects}")

    # g. render --validate, cold: render and check every object in one pass (what the 10 s target is about)
    render_validate = eg + ["render", "--validate", *schema_args]
    samples = []
    for i in range(args.runs):
        move_outputs_aside(repo, trash)
        log(f"bench: render --validate, cold, run {i + 1}/{args.runs}")
        samples.append(checked(render_validate, repo, env))
    steps["cold_render_validate"] = step_result(samples, render_validate, objects, key="cold_render_validate",
                                                files_written=[files_written(s.stdout) for s in samples])

    anchors = {"kustomize": kustomize_anchor(args, repo, env, kubectl, notes),
               "kubernetes_validate": kubernetes_validate_anchor(args, repo, env, kubernetes_validate),
               "kubeconform_published": {
                   "objects": KUBECONFORM_OBJECTS, "seconds": KUBECONFORM_SECONDS, "cores": KUBECONFORM_CORES,
                   "objects_per_s": KUBECONFORM_RATE,
                   "source": "kubeconform README benchmark: 50,714 resources in 6.7 s on 4 cores"}}
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    if code_fingerprint() != machine["code_fingerprint"]:
        notes.append("generator/ or templates/ changed during the run: the steps may have measured different code")
        machine["code_fingerprint_at_end"] = code_fingerprint()
    return {"machine": machine,
            "sizes": {"endpoints": args.endpoints, "versions": args.versions, "environments": envs,
                      "endpoint_specs": args.endpoints * len(envs), "objects": objects,
                      "objects_rendered": counts["rendered"], "objects_clusters": counts["clusters"],
                      "runs": args.runs, "repo": str(repo)},
            "steps": steps, "anchors": anchors, **ratios_and_targets(steps, anchors, machine), "notes": notes}


def kustomize_anchor(args: argparse.Namespace, repo: Path, env: dict[str, str], kubectl: str | None,
                     notes: list[str]) -> dict[str, Any]:
    if not kubectl:
        notes.append("kubectl is not on PATH: the kubectl kustomize anchor was skipped")
        return {"skipped": "kubectl is not on PATH"}
    paths = flux_paths(repo)
    if not paths:
        notes.append("no kustomize.toolkit.fluxcd.io/v1 Kustomization under clusters/: kustomize anchor skipped")
        return {"skipped": "no Flux Kustomization found under clusters/"}
    per_path: dict[str, list[Sample]] = {p: [] for p in paths}
    totals, objects = [], 0
    for i in range(args.runs):
        log(f"bench: kubectl kustomize of {len(paths)} Flux path(s), run {i + 1}/{args.runs}")
        run_samples = []
        objects = 0
        for path in paths:
            sample = checked([kubectl, "kustomize", path], repo, env, verbose=len(paths) <= 10)
            per_path[path].append(sample)
            run_samples.append(sample)
            text = sample.stdout.strip()
            objects += text.count("\n---\n") + 1 if text else 0
            sample.stdout = ""  # do not keep megabytes of YAML around
        totals.append(Sample(wall_s=sum(s.wall_s for s in run_samples), cpu_s=sum(s.cpu_s for s in run_samples),
                             user_s=sum(s.user_s for s in run_samples), sys_s=sum(s.sys_s for s in run_samples),
                             peak_rss_mb=max(s.peak_rss_mb for s in run_samples),
                             tree_rss_mb=max(s.tree_rss_mb for s in run_samples),
                             tree_pss_mb=max(s.tree_pss_mb for s in run_samples), returncode=0))
        log(f"bench:   {totals[-1].wall_s:.2f} s wall in all")
    path_medians = {p: median_of(s) for p, s in per_path.items()}
    walls = sorted(m["wall_s"] for m in path_medians.values())
    total = median_of(totals)
    slowest = max(path_medians, key=lambda p: path_medians[p]["wall_s"])
    return {"command": [kubectl, "kustomize", "<spec.path>"], "paths": len(paths),
            "paths_sample": paths[:5], "objects": objects,
            "per_path_wall_s": {"max": walls[-1], "median": round(statistics.median(walls), 4), "min": walls[0],
                                "slowest_path": slowest},
            "total": {"runs": [t.numbers() for t in totals], "median": total},
            "objects_per_s": round(objects / total["wall_s"], 1) if total["wall_s"] else None,
            "per_path_medians": path_medians if len(paths) <= 20 else None}


def kubernetes_validate_anchor(args: argparse.Namespace, repo: Path, env: dict[str, str],
                               kubernetes_validate: Path) -> dict[str, Any]:
    by_version = builtin_kind_files(repo)
    population = [(v, f) for v, files in sorted(by_version.items()) for f in files]
    chosen = sorted(random.Random(args.seed).sample(population, min(args.kv_sample, len(population))))
    groups: dict[str, list[str]] = {}
    for version, file in chosen:
        groups.setdefault(version, []).append(str(file.relative_to(repo)))
    samples = []
    for i in range(args.runs):
        log(f"bench: kubernetes-validate on a sample of {len(chosen)} of {len(population)} built-in-kind files, "
            f"run {i + 1}/{args.runs}")
        parts = [checked([str(kubernetes_validate), "-k", version, "--strict", "--quiet", *files], repo, env,
                         verbose=len(groups) == 1) for version, files in groups.items()]
        samples.append(Sample(wall_s=sum(s.wall_s for s in parts), cpu_s=sum(s.cpu_s for s in parts),
                              user_s=sum(s.user_s for s in parts), sys_s=sum(s.sys_s for s in parts),
                              peak_rss_mb=max(s.peak_rss_mb for s in parts),
                              tree_rss_mb=max(s.tree_rss_mb for s in parts),
                              tree_pss_mb=max(s.tree_pss_mb for s in parts), returncode=0))
    median = median_of(samples)
    kinds: dict[str, int] = {}
    for _, file in chosen:
        kind = re.search(r"^kind:\s*(\S+)", file.read_text(encoding="utf-8"), re.MULTILINE)
        kinds[kind.group(1) if kind else "?"] = kinds.get(kind.group(1) if kind else "?", 0) + 1
    return {"command": [str(kubernetes_validate), "-k", ",".join(groups), "--strict", "--quiet", "<files>"],
            "sample": True, "seed": args.seed, "objects": len(chosen), "population": len(population),
            "sample_kinds": kinds, "runs": [s.numbers() for s in samples], "median": median,
            "objects_per_s": round(len(chosen) / median["wall_s"], 1) if median["wall_s"] else None,
            "note": "a seeded random sample of the built-in-kind files (CRD kinds have no schema in it); "
                    "one process per Kubernetes version, start-up included"}


def ratios_and_targets(steps: dict[str, Any], anchors: dict[str, Any], machine: dict[str, Any]) -> dict[str, Any]:
    validate_rate = steps["validate"]["objects_per_s"]
    kv_rate = anchors["kubernetes_validate"].get("objects_per_s")
    ratios = {
        "validate_vs_kubernetes_validate_per_object": round(validate_rate / kv_rate, 2) if kv_rate else None,
        "validate_vs_kubeconform_published": round(validate_rate / KUBECONFORM_RATE, 3),
        "validate_per_core_vs_kubeconform_per_core": round(
            (validate_rate / machine["nproc"]) / (KUBECONFORM_RATE / KUBECONFORM_CORES), 3),
    }
    kustomize = anchors["kustomize"]
    if "total" in kustomize:
        ratios["cold_render_vs_kustomize_total_wall"] = round(
            steps["cold_render"]["median"]["wall_s"] / kustomize["total"]["median"]["wall_s"], 2)
    cold_plus_validate = steps["cold_render"]["median"]["wall_s"] + steps["validate"]["median"]["wall_s"]
    peak = {k: s["median"]["peak_mb"] for k, s in steps.items()}
    worst = max(peak, key=lambda k: peak[k])

    def target(value: float, limit: float, unit: str, what: str, at_least: bool = False) -> dict[str, Any]:
        return {"what": what, "value": round(value, 3), "target": limit, "unit": unit,
                "at_least": at_least, "pass": value >= limit if at_least else value <= limit}

    targets = {
        "cold_render_validate_wall": target(steps["cold_render_validate"]["median"]["wall_s"],
                                            TARGET_COLD_RENDER_PLUS_VALIDATE_S, "s",
                                            "median cold render --validate (render and check every object, one "
                                            "pass), wall"),
        "cold_render_plus_validate_wall": target(cold_plus_validate, TARGET_COLD_RENDER_PLUS_VALIDATE_S, "s",
                                                 "median cold render + median validate --rendered (two commands), "
                                                 "wall"),
        "validate_rate": target(validate_rate, TARGET_VALIDATE_RATE, "objects/s",
                                "validate --rendered, objects per second (kubeconform's published rate)",
                                at_least=True),
        "validate_vs_kubernetes_validate": target(ratios["validate_vs_kubernetes_validate_per_object"] or 0,
                                                  TARGET_VALIDATE_VS_KUBERNETES_VALIDATE, "x",
                                                  "validate --rendered vs kubernetes-validate, per object",
                                                  at_least=True),
        "nochange_render_wall": target(steps["nochange_render"]["median"]["wall_s"], TARGET_INCREMENTAL_RENDER_S,
                                       "s", "median render with nothing changed, wall"),
        "onechange_render_wall": target(steps["onechange_render"]["median"]["wall_s"],
                                        TARGET_INCREMENTAL_RENDER_S, "s", "median render after one change, wall"),
        "peak_memory": target(peak[worst], TARGET_PEAK_MEMORY_MB, "MB",
                              f"largest median peak memory of the endpointgen steps ({worst}); the larger of "
                              "ru_maxrss (largest process) and the process tree's sampled PSS sum"),
    }
    return {"ratios": ratios, "targets": targets}


# --------------------------------------------------------------------------------------------------- output


def table(results: dict[str, Any]) -> str:
    m, sizes = results["machine"], results["sizes"]
    lines = [f"endpointgen benchmark, {m['date']}: {sizes['endpoints']} endpoints x {sizes['versions']} versions x "
             f"{len(sizes['environments'])} environments = {sizes['objects']} objects; median of {sizes['runs']} "
             f"run(s); {m['nproc']} CPU(s), Python {m['python']}, endpointgen {m['endpointgen']} "
             f"(commit {m['git_commit']}{', generator/ modified' if m['generator_dirty'] else ''}); "
             f"load average {m['load_average_at_start']} at start, {m.get('load_average_at_end')} at end",
             "",
             f"{'step':<50} {'wall s':>8} {'CPU s':>8} {'peak MB':>8} {'objects/s':>10}  runs (wall s)"]
    rule = "-" * len(lines[-1])
    lines.append(rule)

    def row(label: str, median: dict[str, float], rate: float | None, runs: list[dict[str, float]]) -> None:
        lines.append(f"{label:<50} {median['wall_s']:>8.2f} {median['cpu_s']:>8.2f} {median['peak_mb']:>8.0f} "
                     f"{(f'{rate:,.0f}' if rate else '-'):>10}  {' '.join(format(r['wall_s'], '.2f') for r in runs)}")

    for key, step in results["steps"].items():
        row(f"{step['label']} ({key})", step["median"], step["objects_per_s"], step["runs"])
    lines.append(rule)
    kustomize = results["anchors"]["kustomize"]
    if "skipped" in kustomize:
        lines.append(f"{'f. kubectl kustomize':<50} skipped: {kustomize['skipped']}")
    else:
        row(f"f. kubectl kustomize, {kustomize['paths']} path(s), total", kustomize["total"]["median"],
            kustomize["objects_per_s"], kustomize["total"]["runs"])
        per = kustomize["per_path_wall_s"]
        lines.append(f"{'   per path: max / median':<50} {per['max']:>8.2f} / {per['median']:.2f} s "
                     f"(slowest {per['slowest_path']}); {kustomize['objects']} objects built")
    kv = results["anchors"]["kubernetes_validate"]
    row(f"f. kubernetes-validate, SAMPLE of {kv['objects']} files", kv["median"], kv["objects_per_s"], kv["runs"])
    lines.append(f"{'   sample':<50} {kv['objects']} of {kv['population']} built-in-kind files, "
                 f"seed {kv['seed']}: {', '.join(f'{k} {n}' for k, n in sorted(kv['sample_kinds'].items()))}")
    kc = results["anchors"]["kubeconform_published"]
    lines.append(f"{'   kubeconform (published, not run)':<50} {kc['seconds']:>8.2f} {'-':>8} {'-':>8} "
                 f"{kc['objects_per_s']:>10,}  ({kc['objects']:,} resources, {kc['cores']} cores)")
    lines.append("")
    r = results["ratios"]
    if r["validate_vs_kubernetes_validate_per_object"] is not None:
        lines.append(f"validate vs kubernetes-validate, per object: {r['validate_vs_kubernetes_validate_per_object']}"
                     f"x {'faster' if r['validate_vs_kubernetes_validate_per_object'] >= 1 else '(slower)'}"
                     " (endpointgen: schema + API-server rules + policies on all kinds; kubernetes-validate: "
                     "schema of built-in kinds, on a sample)")
    lines.append(f"validate vs kubeconform's published 7,500 objects/s: {r['validate_vs_kubeconform_published']}x; "
                 f"per core ({m['nproc']} here vs 4): {r['validate_per_core_vs_kubeconform_per_core']}x")
    if "cold_render_vs_kustomize_total_wall" in r:
        lines.append(f"cold render wall / kubectl kustomize total wall: {r['cold_render_vs_kustomize_total_wall']}x")
    lines.append("")
    lines.append("targets:")
    for t in results["targets"].values():
        lines.append(f"  {'PASS' if t['pass'] else 'MISS'}  {t['what']}: {t['value']:,.2f} {t['unit']} "
                     f"(target {'>=' if t.get('at_least') else '<='} {t['target']:,g} {t['unit']})")
    if results["notes"]:
        lines.append("")
        lines += [f"note: {n}" for n in results["notes"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=None, help="endpoints per environment (default 1000; "
                                                                     "--quick: 50)")
    parser.add_argument("--versions", type=int, default=3, choices=range(1, 7))
    parser.add_argument("--envs", default="dev,staging,prod")
    parser.add_argument("--runs", type=int, default=None, help="runs per step, median reported (default 3; "
                                                               "--quick: 1)")
    parser.add_argument("--out", type=Path, default=None, help="generate the repository here (kept) instead of "
                                                               "in a temporary directory (removed)")
    parser.add_argument("--json", type=Path, default=PROJECT / "bench" / "results.json",
                        help="where to write the results (default bench/results.json)")
    parser.add_argument("--quick", action="store_true", help="small and fast: 50 endpoints, 1 run, sample of 50")
    parser.add_argument("--kv-sample", type=int, default=None,
                        help="files for the kubernetes-validate anchor (default 200; --quick: 50)")
    parser.add_argument("--seed", type=int, default=6, help="seed of the kubernetes-validate sample")
    parser.add_argument("--schema-location", default=None,
                        help="CRD schemas for validate (default schema/crds, vendored in the project; "
                             "when missing, validate runs with --ignore-missing-schemas)")
    args = parser.parse_args(argv)
    args.endpoints = args.endpoints or (50 if args.quick else 1000)
    args.runs = args.runs or (1 if args.quick else 3)
    args.kv_sample = args.kv_sample or (50 if args.quick else 200)
    if args.runs < 1 or args.endpoints < 1:
        parser.error("--runs and --endpoints must be at least 1")

    tmp = None
    if args.out is None:
        tmp = tempfile.mkdtemp(prefix="endpointgen-bench-")
        repo = Path(tmp) / "repo"
    else:
        repo = args.out.resolve()
    try:
        results = measure(args, repo)
    except CommandFailed as failure:
        print(f"bench: FAILED: {' '.join(failure.command)} exited {failure.sample.returncode}", file=sys.stderr)
        print(failure.sample.stderr or failure.sample.stdout, file=sys.stderr)
        return 1
    finally:
        if args.out is not None:
            shutil.rmtree(repo.parent / f".{repo.name}-old-outputs", ignore_errors=True)
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(table(results))
    print(f"\nresults: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
