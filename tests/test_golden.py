"""Golden tests: the example environments render to exactly the files under tests/golden.

tests/golden/<env>/ mirrors the repo-relative paths of everything render writes
for <env>: rendered/<env>/** (platform/, endpoints/<ep>/ and their kustomization.yaml
files) and the Flux Kustomizations clusters/<env>/platform.yaml and
clusters/<env>/endpoints/<ep>.yaml. Refresh it after
an intended change with `make golden` (ENDPOINTGEN_UPDATE_GOLDEN=1 pytest
tests/test_golden.py) and review the diff.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from generator.pipeline.generate import check, plan
from generator.spec.repository import load_repository
from render_helpers import EXAMPLE_ENVS, PROJECT

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("ENDPOINTGEN_UPDATE_GOLDEN") == "1"
REFRESH = "run `make golden` (ENDPOINTGEN_UPDATE_GOLDEN=1 pytest tests/test_golden.py) and review the diff"


def golden_files(env: str) -> dict[str, bytes]:
    base = GOLDEN / env
    if not base.is_dir():
        return {}
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}


def write_golden(env: str, files: dict[str, str]) -> None:
    base = GOLDEN / env
    shutil.rmtree(base, ignore_errors=True)
    for rel, content in files.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode("utf-8"))


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict[str, str]]:
    """The examples rendered in memory (nothing is written to the repo)."""
    return plan(PROJECT).files


def test_examples_exist() -> None:
    assert EXAMPLE_ENVS, f"no example environments under {PROJECT / 'environments'}"
    if not UPDATE:
        stray = sorted(p.name for p in GOLDEN.iterdir() if p.is_dir() and p.name not in EXAMPLE_ENVS)
        assert not stray, f"tests/golden has folders for environments that no longer exist: {stray}; {REFRESH}"


@pytest.mark.parametrize("env", EXAMPLE_ENVS)
def test_render_matches_golden(env: str, rendered: dict[str, dict[str, str]]) -> None:
    files = rendered[env]
    assert f"rendered/{env}/kustomization.yaml" in files
    assert f"rendered/{env}/platform/kustomization.yaml" in files and f"clusters/{env}/platform.yaml" in files
    endpoints = sorted(ep.name for ep in load_repository(PROJECT, [env]).endpoints_of(env))
    assert endpoints, f"no example endpoints in {env}"
    for ep in endpoints:
        assert f"rendered/{env}/endpoints/{ep}/kustomization.yaml" in files, ep
        assert f"clusters/{env}/endpoints/{ep}.yaml" in files, ep
    assert f"clusters/{env}/endpoints.yaml" not in files
    if UPDATE:
        write_golden(env, files)
    golden = golden_files(env)
    actual = {rel: content.encode("utf-8") for rel, content in files.items()}
    missing = sorted(set(actual) - set(golden))
    extra = sorted(set(golden) - set(actual))
    assert not missing, f"rendered but not in tests/golden/{env}: {missing}; {REFRESH}"
    assert not extra, f"in tests/golden/{env} but no longer rendered: {extra}; {REFRESH}"
    for rel in sorted(actual):
        assert actual[rel] == golden[rel], f"tests/golden/{env}/{rel} differs from the rendered {rel}; {REFRESH}"


def test_committed_output_is_current() -> None:
    """rendered/ and clusters/ in the repo are what render writes now (else: run `make render`)."""
    assert check(PROJECT) == [], "committed output is out of date; run `make render` and commit"
