"""Shared fixtures: a throw-away copy of the example GitOps repo, spec writers and a CLI runner."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from generator.cli import cli
from generator.problems import Problem
from generator.spec.repository import load_repository

PROJECT = Path(__file__).resolve().parent.parent
EXAMPLES = PROJECT / "environments"

# The two mandatory fields of a version, one line each, so that tests can count lines easily.
VERSION_BODY = (
    '    models: [{name: m, version: 1, uri: "https://models.blob.core.windows.net/m/1"}]\n'
    '    inference_config: {image: "acr.azurecr.io/scoring/demo:1.0", entry_script: score.py}\n'
)


def version(name: str = "blue", extra: str = "") -> str:
    """A minimal valid version: its `- version_name` line, then the `extra` lines, then the two body lines."""
    return f"  - version_name: {name}\n{extra}" + VERSION_BODY


def copy_example_repo(dest: Path) -> Path:
    """Copy the example `environments/` tree into `dest` (created) and return `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(EXAMPLES, dest / "environments")
    return dest


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """Root of a private copy of the example repo (environments/ only)."""
    return copy_example_repo(tmp_path / "repo")


def spec_path(root: Path, name: str, env: str = "dev", suffix: str = ".yaml") -> Path:
    return root / "environments" / env / "endpoints" / f"{name}{suffix}"


def write_spec(root: Path, name: str, text: str, env: str = "dev", suffix: str = ".yaml") -> Path:
    """Write `text` (dedented) as environments/<env>/endpoints/<name><suffix>."""
    path = spec_path(root, name, env, suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def write_env(root: Path, env: str, text: str) -> Path:
    """Replace environments/<env>/environment.yaml with `text` (dedented)."""
    path = root / "environments" / env / "environment.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def patch_spec(root: Path, name: str, change: Callable[[dict[str, Any]], None], env: str = "dev") -> Path:
    """Load an endpoint spec, let `change` edit the data in place, and write it back as YAML."""
    path = spec_path(root, name, env)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def replace_in(path: Path, old: str, new: str) -> None:
    """Replace the one occurrence of `old` in a file (fails loudly when it is not there exactly once)."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def line_of(path: Path, needle: str) -> int:
    """1-based number of the one line of a file that contains `needle`."""
    lines = [i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if needle in line]
    assert len(lines) == 1, f"{needle!r} is on lines {lines} of {path}"
    return lines[0]


def problems(root: Path, envs: Sequence[str] = ("dev",)) -> list[Problem]:
    """Every distinct problem of the selected environments, sorted."""
    return sorted(set(load_repository(root, envs).problems))


def where(problem: Problem) -> tuple[str, int, int, str]:
    """A problem's location: (path, line, col, field)."""
    return problem.path, problem.line, problem.col, problem.field


def only_problem(root: Path, envs: Sequence[str] = ("dev",)) -> Problem:
    """The single problem in the selected environments (fails when there are none or several)."""
    found = problems(root, envs)
    assert len(found) == 1, "expected exactly one problem, got:\n" + "\n".join(map(str, found))
    return found[0]


CRD_SCHEMAS = Path(__file__).resolve().parent.parent / "schema" / "crds"


@pytest.fixture
def run_cli(repo: Path) -> Callable[..., Result]:
    """Run `endpointgen --root <repo> ARGS...` in-process; exceptions propagate (no hidden crashes)."""

    def run(args: Sequence[str]) -> Result:
        env = {"ENDPOINTGEN_SCHEMA_LOCATION": str(CRD_SCHEMAS)}
        return CliRunner().invoke(cli, ["--root", str(repo), *args], catch_exceptions=False, env=env)

    return run
