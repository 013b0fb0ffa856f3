"""Where the project and its tools are, and what machine and code the benchmark ran on."""

from __future__ import annotations

import datetime
import hashlib
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent


def find_tool(name: str) -> Path:
    """The venv's console script next to sys.executable (not resolved: the venv's python is a symlink)."""
    for directory in (Path(sys.executable).parent, PROJECT / ".venv" / "bin"):
        if (directory / name).exists():
            return directory / name
    raise SystemExit(f"bench: no {name} next to {sys.executable}; run with .venv/bin/python (make bench)")


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
