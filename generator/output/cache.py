"""What the last render wrote, so that a render with nothing changed returns at once.

Per environment, a fingerprint covers everything its output depends on
(endpointgen's code, templates and schemas, the environment file and every
endpoint spec, by content hash), and a digest covers the modification time of
every output folder, which changes whenever a file in it is added, removed,
renamed or replaced (as editors that save by rename, git checkouts and
endpointgen itself do). When both still match, render has nothing to do. A
generated file edited in place is not noticed here: `render --force` rewrites
everything, and `check` (which never relies on this) compares real bytes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..layout import CLUSTERS_DIR, ENVIRONMENTS_DIR, ENVIRONMENT_FILE, RENDERED_DIR, TOOL_DIR, spec_paths
from ..spec import identities
from ..spec.query_load import endpoint_query_hours
from .writer import write_atomic

if TYPE_CHECKING:
    from ..spec.model import Endpoint

CACHE_DIR = ".endpointgen-cache"
STATE_FILE = "render-state.json"


def tool_digest() -> str:
    """A digest of endpointgen itself: its version, code (every subpackage, the Rego policy too), templates, schemas."""
    digest = hashlib.sha256(__version__.encode())
    for folder, pattern in (("generator", "**/*.py"), ("generator", "**/*.rego"), ("templates", "*"),
                            ("schema", "*.json")):
        for path in sorted((TOOL_DIR / folder).glob(pattern)):
            if path.is_file():
                digest.update(path.relative_to(TOOL_DIR).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def checks_digest(locations: Sequence[str], strict: bool, ignore_missing_schemas: bool,
                  skip_kinds: Iterable[str]) -> str:
    """A digest of the manifest checks a render ran: the schema options, the installed kubernetes-validate whose
    schemas the built-in kinds use (its folder and when it was installed), and every schema file in the folders
    named (path, size, modification time). An http(s) location counts by its address (fetched once, cached)."""
    found = importlib.util.find_spec("kubernetes_validate")
    package = Path(found.origin).parent if found is not None and found.origin else None
    installed = [str(package), package.stat().st_mtime_ns] if package is not None else []
    digest = hashlib.sha256(json.dumps([list(locations), strict, ignore_missing_schemas, sorted(skip_kinds),
                                        installed]).encode())
    for location in locations:
        folder = Path(location.split("{{")[0])  # a kubeconform template: the folder before its first variable
        if "://" in location or not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.json")):
            info = path.stat()
            digest.update(f"\0{path}\0{info.st_size}\0{info.st_mtime_ns}".encode())
    return digest.hexdigest()


def base_digest(root: Path, env: str, tool: str) -> str:
    """A digest of what every endpoint of the environment depends on: the tool and the environment file."""
    env_file = root / ENVIRONMENTS_DIR / env / ENVIRONMENT_FILE
    return hashlib.sha256(tool.encode() + b"\0" + (env_file.read_bytes() if env_file.is_file() else b"")).hexdigest()


def spec_digest(path: Path) -> str:
    """The content hash of a spec, read once per run while its size and modification time stay the same."""
    info = path.stat()
    key = (str(path), info.st_size, info.st_mtime_ns)
    if key not in _spec_digests:
        _spec_digests[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _spec_digests[key]


_spec_digests: dict[tuple[str, int, int], str] = {}


def fingerprint(root: Path, env: str, tool: str) -> str:
    """A digest of every input of one environment's output."""
    digest = hashlib.sha256(tool.encode())
    env_dir = root / ENVIRONMENTS_DIR / env
    env_file = env_dir / ENVIRONMENT_FILE
    digest.update(env_file.read_bytes() if env_file.is_file() else b"")
    for path in spec_paths(env_dir):
        digest.update(b"\0" + path.name.encode() + b"\0" + spec_digest(path).encode())
    return digest.hexdigest()


def output_folders(root: Path, env: str) -> dict[str, int]:
    """The modification time of every folder of an environment's output: rendered/<env> and clusters/<env>
    (flux bootstrap's clusters/<env>/flux-system aside), by repo-relative path."""
    folders: dict[str, int] = {}
    prefix = len(str(root)) + 1
    for base in (root / RENDERED_DIR / env, root / CLUSTERS_DIR / env):
        stack = [str(base)] if base.is_dir() else []
        while stack:
            folder = stack.pop()
            folders[folder[prefix:] if _POSIX else folder[prefix:].replace(os.sep, "/")] = os.stat(folder).st_mtime_ns
            with os.scandir(folder) as entries:
                stack += [e.path for e in entries if e.is_dir(follow_symlinks=False) and e.name != "flux-system"]
    return folders


def folders_digest(root: Path, env: str) -> str:
    """A digest of output_folders(): changes when any file of the output is added, removed or replaced."""
    listing = "\n".join(f"{path}\0{mtime}" for path, mtime in sorted(output_folders(root, env).items()))
    return hashlib.sha256(listing.encode()).hexdigest()


_POSIX = os.sep == "/"


_loaded: dict[Path, tuple[tuple[int, int], dict[str, Any]]] = {}  # parsed state by file, with its stat


def _load(root: Path) -> dict[str, Any]:
    """The recorded state (parsed once per process while the file stays the same)."""
    path = root / CACHE_DIR / STATE_FILE
    try:
        info = path.stat()
    except OSError:
        return {}
    key = (info.st_size, info.st_mtime_ns)
    if path not in _loaded or _loaded[path][0] != key:
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            state = {}
        _loaded[path] = (key, state if isinstance(state, dict) else {})
    return _loaded[path][1]


def entry(root: Path, env: str) -> dict[str, Any] | None:
    """The recorded state of one environment, if any."""
    found = _load(root).get(env)
    return found if isinstance(found, dict) else None


def current(root: Path, envs: list[str], checks: str | None = None) -> list[str]:
    """The environments nothing render depends on changed for since it last wrote them, nor their output; with
    `checks` (a checks_digest), only those the last render also checked so."""
    _spec_digests.clear()  # a run starts: specs may have changed since the last one in this process
    state, tool = _load(root), tool_digest()
    return [env for env in envs if _matches(root, env, state.get(env), tool, checks)]


def _matches(root: Path, env: str, entry: Any, tool: str, checks: str | None) -> bool:
    return isinstance(entry, dict) and entry.get("fingerprint") == fingerprint(root, env, tool) \
        and (checks is None or entry.get("checks") == checks) and output_matches(root, env, entry)


def output_matches(root: Path, env: str, entry: dict[str, Any]) -> bool:
    """Whether the output folders are still as the recorded render left them."""
    return entry.get("folders") == folders_digest(root, env)


def record(root: Path, summaries: dict[str, dict[str, dict[str, Any]]], checks: str | None = None) -> None:
    """Remember the inputs, output folders and endpoint summaries of the environments render just made current,
    and the checks (a checks_digest) every object of theirs passed, if any."""
    state, tool = _load(root), tool_digest()
    for env, endpoints in summaries.items():
        state[env] = {
            "fingerprint": fingerprint(root, env, tool),
            "base": base_digest(root, env, tool),
            "folders": folders_digest(root, env),
            "endpoints": endpoints,
            "checks": checks,
        }
    write_atomic(root / CACHE_DIR / STATE_FILE, json.dumps(state, separators=(",", ":")))


def summary(ep: Endpoint) -> dict[str, Any]:
    """What the other endpoints of an environment need to know of this one without loading it."""
    return {"spec": spec_digest(ep.doc.path), "namespace": ep.namespace,
            "objects": sorted(f"{ep.name}-{v.name}" for v in ep.versions), "keys": ep.key_refs,
            "query_hours": endpoint_query_hours(ep), **identities.summary(ep)}
