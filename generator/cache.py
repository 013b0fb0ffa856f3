"""What the last render wrote, so that a render with nothing changed returns at once.

Per environment, a fingerprint covers everything its output depends on
(endpointgen's code, templates and schemas, the environment file and every
endpoint spec, by content hash) and a digest covers each output file's path,
size and modification time. When both still match, the disk holds what
render would write. `check` never relies on this: it compares real bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .layout import CLUSTERS_DIR, ENVIRONMENT_FILE, ENVIRONMENTS_DIR, RENDERED_DIR, spec_paths
from .writer import write_atomic

if TYPE_CHECKING:
    from .model import Endpoint

CACHE_DIR = ".endpointgen-cache"
STATE_FILE = "render-state.json"
_TOOL = Path(__file__).resolve().parent.parent


def tool_digest() -> str:
    digest = hashlib.sha256(__version__.encode())
    for folder, pattern in (("generator", "*.py"), ("templates", "*"), ("schema", "*.json")):
        for path in sorted((_TOOL / folder).glob(pattern)):
            if path.is_file():
                digest.update(path.name.encode() + b"\0" + path.read_bytes())
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


def output_stats(root: Path, env: str, *, fresh: bool = True) -> dict[str, list[int]]:
    """Size and modification time of every file under rendered/<env> and clusters/<env>.

    With `fresh=False`, the answer this process last computed is reused (within one render, before it writes).
    """
    if not fresh and (root, env) in _stats:
        return _stats[(root, env)]
    stats: dict[str, list[int]] = {}
    prefix = len(str(root)) + 1
    for base in (root / RENDERED_DIR / env, root / CLUSTERS_DIR / env):
        stack = [str(base)] if base.is_dir() else []
        while stack:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    else:
                        info = entry.stat(follow_symlinks=False)
                        stats[entry.path[prefix:] if _POSIX else entry.path[prefix:].replace(os.sep, "/")] = \
                            [info.st_size, info.st_mtime_ns]
    _stats[(root, env)] = stats
    return stats


_stats: dict[tuple[Path, str], dict[str, list[int]]] = {}
_POSIX = os.sep == "/"


def _restat(root: Path, env: str, paths: list[str]) -> dict[str, list[int]]:
    """This run's stats of the environment with only `paths` looked at again."""
    stats = dict(output_stats(root, env, fresh=False))
    for rel in paths:
        try:
            info = (root / rel).stat()
            stats[rel] = [info.st_size, info.st_mtime_ns]
        except FileNotFoundError:
            stats.pop(rel, None)
    _stats[(root, env)] = stats
    return stats


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


def current(root: Path, envs: list[str]) -> list[str]:
    """The environments nothing render depends on changed for since it last wrote them, nor their output."""
    _spec_digests.clear()  # a run starts: specs may have changed since the last one in this process
    state, tool = _load(root), tool_digest()
    return [env for env in envs if _matches(root, env, state.get(env), tool)]


def _matches(root: Path, env: str, entry: Any, tool: str) -> bool:
    stats = output_stats(root, env)  # always, so that this run's later reuse (fresh=False) sees the disk of now
    return isinstance(entry, dict) and entry.get("fingerprint") == fingerprint(root, env, tool) \
        and entry.get("files") == stats_digest(stats)


def stats_digest(stats: dict[str, list[int]]) -> str:
    """A digest of an output listing (path, size and modification time of every file)."""
    listing = "\n".join(sorted(f"{path}\0{size}\0{mtime}" for path, (size, mtime) in stats.items()))
    return hashlib.sha256(listing.encode()).hexdigest()


def output_matches(root: Path, env: str, entry: dict[str, Any]) -> bool:
    """Whether the output on disk is still what the recorded render left (this run's stats of it)."""
    return entry.get("files") == stats_digest(output_stats(root, env, fresh=False))


def record(root: Path, summaries: dict[str, dict[str, dict[str, Any]]],
           touched: dict[str, list[str]] | None = None) -> None:
    """Remember the inputs, output files and endpoint summaries of the environments render just made current.

    `touched` names, per environment, the only files written or removed since this run took its stats.
    """
    state, tool = _load(root), tool_digest()
    for env, endpoints in summaries.items():
        state[env] = {
            "fingerprint": fingerprint(root, env, tool),
            "base": base_digest(root, env, tool),
            "files": stats_digest(_restat(root, env, touched[env]) if touched and env in touched
                                  else output_stats(root, env)),
            "endpoints": endpoints,
        }
    write_atomic(root / CACHE_DIR / STATE_FILE, json.dumps(state, separators=(",", ":")))


def summary(ep: Endpoint) -> dict[str, Any]:
    """What the other endpoints of an environment need to know of this one without loading it."""
    return {"spec": spec_digest(ep.doc.path), "namespace": ep.namespace,
            "objects": sorted(f"{ep.name}-{v.name}" for v in ep.versions)}
