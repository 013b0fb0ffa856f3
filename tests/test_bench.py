"""The benchmark harness runs end to end at its smallest size (no timing assertions: it is a measurement)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
STEPS = ["cold_render", "nochange_render", "onechange_render", "check", "validate"]
TARGETS = ["cold_render_validate_wall", "cold_render_plus_validate_wall", "validate_rate",
           "validate_vs_kubernetes_validate", "nochange_render_wall", "onechange_render_wall", "peak_memory"]


def test_quick_bench_writes_every_step_and_target(tmp_path: Path) -> None:
    out = tmp_path / "repo"
    result_file = tmp_path / "r.json"
    result = subprocess.run(
        [sys.executable, str(PROJECT / "bench" / "run.py"), "--quick", "--runs", "1", "--out", str(out),
         "--json", str(result_file)],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr

    results = json.loads(result_file.read_text())
    assert results["sizes"]["objects"] > 0
    assert results["machine"]["nproc"] >= 1 and results["machine"]["python"]
    for step in STEPS:
        median = results["steps"][step]["median"]
        for key in ("wall_s", "cpu_s", "peak_mb"):
            assert isinstance(median[key], (int, float)) and median[key] > 0, (step, key, median)
        assert len(results["steps"][step]["runs"]) == 1
        assert results["steps"][step]["objects_per_s"] > 0
        assert results["steps"][step]["label"] in result.stdout, step
        assert step in result.stdout

    kv = results["anchors"]["kubernetes_validate"]
    assert kv["sample"] is True and kv["objects"] > 0 and kv["median"]["wall_s"] > 0
    kustomize = results["anchors"]["kustomize"]
    if "skipped" in kustomize:
        assert "kubectl kustomize" in result.stdout and "skipped" in result.stdout
    else:
        assert kustomize["paths"] >= 1 and kustomize["total"]["median"]["wall_s"] > 0
        assert kustomize["per_path_wall_s"]["max"] >= kustomize["per_path_wall_s"]["median"] > 0
    assert "kubernetes-validate" in result.stdout

    for name in TARGETS:
        target = results["targets"][name]
        assert isinstance(target["pass"], bool) and isinstance(target["value"], (int, float))
        assert target["target"] > 0
    for name in ("validate_vs_kubernetes_validate_per_object", "validate_vs_kubeconform_published"):
        assert results["ratios"][name] > 0
    assert "targets:" in result.stdout
