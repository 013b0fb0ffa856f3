"""Read and edit the synthetic repository between steps: count, list and change its files, move outputs aside."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import yaml

LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# API groups of the built-in kinds that end in ".k8s.io" (group-less versions such as v1 and apps/v1 are built in
# too); secrets-store.csi.x-k8s.io and kustomize.config.k8s.io are not.
BUILTIN_K8S_IO_GROUPS = {
    "admissionregistration.k8s.io", "apiextensions.k8s.io", "apiregistration.k8s.io", "authentication.k8s.io",
    "authorization.k8s.io", "certificates.k8s.io", "coordination.k8s.io", "discovery.k8s.io", "events.k8s.io",
    "flowcontrol.apiserver.k8s.io", "networking.k8s.io", "node.k8s.io", "rbac.authorization.k8s.io",
    "resource.k8s.io", "scheduling.k8s.io", "storage.k8s.io", "storagemigration.k8s.io",
}
API_VERSION = re.compile(r"^apiVersion:\s*['\"]?([^'\"\s]+)", re.MULTILINE)


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


def old_outputs(repo: Path) -> Path:
    """Where move_outputs_aside puts the outputs of earlier cold renders: beside the repository, removed at the end."""
    return repo.parent / f".{repo.name}-old-outputs"
