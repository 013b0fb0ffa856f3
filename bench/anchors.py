"""The anchors on the same output: kubectl kustomize, kubernetes-validate on a sample, kubeconform's published rate."""

from __future__ import annotations

import argparse
import random
import re
import statistics
from pathlib import Path
from typing import Any

from process import Sample, checked, combined, log, median_of
from repo_ops import builtin_kind_files, flux_paths

# Published anchor: kubeconform validated 50,714 resources in 6.7 s on 4 cores (its README's benchmark).
KUBECONFORM_OBJECTS, KUBECONFORM_SECONDS, KUBECONFORM_CORES = 50_714, 6.7, 4
KUBECONFORM_RATE = 7_500  # objects/second, rounded down from 50,714 / 6.7 = 7,569


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
        totals.append(combined(run_samples))
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
        samples.append(combined(parts))
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


def kubeconform_published_anchor() -> dict[str, Any]:
    """kubeconform is not run: its README's figures."""
    return {"objects": KUBECONFORM_OBJECTS, "seconds": KUBECONFORM_SECONDS, "cores": KUBECONFORM_CORES,
            "objects_per_s": KUBECONFORM_RATE,
            "source": "kubeconform README benchmark: 50,714 resources in 6.7 s on 4 cores"}
