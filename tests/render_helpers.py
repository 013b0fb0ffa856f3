"""Helpers shared by the render, writer and golden tests.

Kept apart from conftest.py on purpose: these tests build their own throw-away
repos (a copy of the example `environments/`) and read rendered objects back.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner, Result

from generator.cli import cli
from generator.pipeline.generate import plan

PROJECT = Path(__file__).resolve().parent.parent
EXAMPLES = PROJECT / "environments"
CRD_SCHEMAS = PROJECT / "schema" / "crds"
EXAMPLE_ENVS = sorted(p.parent.name for p in EXAMPLES.glob("*/environment.yaml"))
BUILTIN_API_VERSIONS = {"v1", "apps/v1", "autoscaling/v2", "policy/v1", "networking.k8s.io/v1"}

LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Snapshot = dict[str, bytes]


def copy_examples(dest: Path) -> Path:
    """A fresh repo at `dest` holding a copy of the example environments/ (nothing rendered yet)."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(EXAMPLES, dest / "environments")
    return dest


def spec_file(root: Path, env: str, name: str) -> Path:
    return root / "environments" / env / "endpoints" / f"{name}.yaml"


def edit_spec(root: Path, env: str, name: str, change: Callable[[dict[str, Any]], None]) -> Path:
    """Load a spec, let `change` edit it in place, write it back."""
    path = spec_file(root, env, name)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def version_spec(name: str, **fields: Any) -> dict[str, Any]:
    """A minimal valid version (one model) with extra fields."""
    return {
        "version_name": name,
        "models": [{"name": "m", "version": 1, "uri": "https://models.blob.core.windows.net/m/1"}],
        "inference_config": {"image": "acr.azurecr.io/scoring/demo:1.0", "entry_script": "score.py"},
        **fields,
    }


def write_endpoint(root: Path, env: str, name: str, versions: Sequence[dict[str, Any]], **fields: Any) -> Path:
    """Write a spec built from data: name, endpoint-level fields, versions."""
    path = spec_file(root, env, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"name": name, **fields, "versions": list(versions)}
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def rendered_files(root: Path, envs: Sequence[str] = ()) -> dict[str, str]:
    """Every file render would write (repo-relative path -> text), rendered in memory."""
    return {rel: text for files in plan(root, envs).files.values() for rel, text in files.items()}


def manifests(files: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The Kubernetes objects among `files` (every file but the kustomize kustomization.yaml)."""
    out = {}
    for rel, text in files.items():
        if rel.startswith("rendered/") and rel.endswith("/kustomization.yaml"):
            continue
        out[rel] = yaml.load(text, Loader=LOADER)
    return out


def of_kind(objects: dict[str, dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """Objects of one kind, keyed by metadata.name (names are unique per kind in one namespace here)."""
    return {o["metadata"]["name"]: o for o in objects.values() if o["kind"] == kind}


def in_env(objects: dict[str, dict[str, Any]], env: str) -> dict[str, dict[str, Any]]:
    return {rel: o for rel, o in objects.items() if rel.split("/")[1] == env}


def walk(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every (path, value) in a nested structure, mapping keys included as the last path element."""
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from walk(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk(item, path + (index,))


def snapshot(root: Path) -> Snapshot:
    """Every file under rendered/ and clusters/ (hidden ones included), path -> bytes."""
    out: Snapshot = {}
    for top in ("rendered", "clusters"):
        base = root / top
        if base.is_dir():
            for path in sorted(base.rglob("*")):
                if path.is_file():
                    out[path.relative_to(root).as_posix()] = path.read_bytes()
    return out


def leftovers(root: Path) -> list[str]:
    """Temporary folders or files a write may leave behind (.<name>.new-*, .<name>.old-*, .<file>.*)."""
    found = []
    for top in ("rendered", "clusters"):
        base = root / top
        if base.is_dir():
            found += [p.relative_to(root).as_posix() for p in base.rglob(".*")]
    return sorted(found)


def run_cli(root: Path, *args: str) -> Result:
    """`endpointgen --root <root> ARGS...` in-process; exceptions propagate."""
    return CliRunner().invoke(cli, ["--root", str(root), *args], catch_exceptions=False)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for servers the tests start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
