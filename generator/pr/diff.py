"""`endpointgen diff`: what a change does, per endpoint in words, then the manifest diff."""

from __future__ import annotations

import difflib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..layout import CLUSTERS_DIR, ENDPOINTS_DIR, RENDERED_DIR
from ..pipeline.generate import render_texts
from ..problems import EndpointgenError, ProblemsFound
from ..spec.repository import Repository, load_repository
from .describe import EndpointChange, describe
from .history import load_base
from .platform import PlatformChange, platform_change, rolled
from .upgrades import revision_warnings


@dataclass
class Diff:
    changes: list[EndpointChange]
    files: dict[str, tuple[str, str]]  # path -> (before, after), only files that differ
    warnings: list[str] = field(default_factory=list)  # steps of an Istio add-on upgrade taken out of order
    base: str = "HEAD"  # the git ref compared with
    platform: list[PlatformChange] = field(default_factory=list)  # per environment, outside its endpoints

    @property
    def described(self) -> list[EndpointChange | PlatformChange]:
        """Every change in words: the endpoints', then each environment's platform."""
        return [*self.changes, *self.platform]


def diff(root: Path, ref: str, envs: Sequence[str] = ()) -> Diff:
    """Render base and head in memory and describe the difference."""
    head = load_repository(root, envs)
    if head.problems:
        raise ProblemsFound(head.problems)
    with tempfile.TemporaryDirectory(prefix="endpointgen-base-") as tmp:
        base = load_base(root, ref, Path(tmp), envs)
        if base.problems:
            raise EndpointgenError(f"the specs on {ref} are not valid, so there is nothing to compare with: "
                                   + "; ".join(str(p) for p in base.problems[:3]))
        old_files, new_files = _rendered(base), _rendered(head)
        warnings = revision_warnings(base, head, ref)
    changed = {path: (old_files.get(path, ""), new_files.get(path, ""))
               for path in sorted(set(old_files) | set(new_files)) if old_files.get(path) != new_files.get(path)}
    before = {(ep.env.name, ep.name): ep for ep in base.endpoints}
    after = {(ep.env.name, ep.name): ep for ep in head.endpoints}
    changes = []
    for key in sorted(set(before) | set(after)):
        change = describe(before.get(key), after.get(key), key)
        owned = {path: texts for path, texts in changed.items() if endpoint_owns(path, *key)}
        if not change.sentences and owned:
            names = ", ".join(path.rsplit("/", 1)[-1] for path in list(owned)[:3]) + (
                f" and {len(owned) - 3} more" if len(owned) > 3 else "")
            change.sentences.append(f"{names} change{'s' if len(owned) == 1 else ''} with no change to its spec "
                                    "(from the environment's settings or endpointgen's templates)")
        if pods := rolled(owned):  # Deployments are named <endpoint>-<version>
            change.sentences.append(f"rolls the pods of {', '.join(p.removeprefix(key[1] + '-') for p in pods)}")
        if change.sentences:
            changes.append(change)
    old_envs = {e.name: e for e in base.environments}
    new_envs = {e.name: e for e in head.environments}
    platform = [change for name in sorted(set(old_envs) | set(new_envs))
                if (change := platform_change(old_envs.get(name), new_envs.get(name), changed)).sentences]
    return Diff(changes, changed, warnings, ref, platform)


def endpoint_owns(path: str, env: str, endpoint: str) -> bool:
    """The endpoint's rendered folder and its Flux Kustomization."""
    return (path.startswith(f"{RENDERED_DIR}/{env}/{ENDPOINTS_DIR}/{endpoint}/")
            or path == f"{CLUSTERS_DIR}/{env}/{ENDPOINTS_DIR}/{endpoint}.yaml")


def _rendered(repo: Repository) -> dict[str, str]:
    """Every file render would write for the repo, all environments together (rendered in parallel)."""
    return {path: text for files in render_texts(repo).values() for path, text in files.items()}


def unified(path: str, before: str, after: str) -> str:
    lines = difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                 fromfile=f"a/{path}" if before else "/dev/null",
                                 tofile=f"b/{path}" if after else "/dev/null")
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def no_endpoint_changes(d: Diff) -> str:
    if d.files:
        return (f"no endpoint spec changes, but {len(d.files)} manifest file(s) change "
                "(environment settings or templates)")
    return "no endpoint changes"


def as_text(d: Diff) -> str:
    lines = [f"{c.title}: " + "; ".join(c.sentences) for c in d.changes] or [no_endpoint_changes(d)]
    lines += [f"{c.title}: " + "; ".join(c.sentences) for c in d.platform]
    lines += d.warnings
    patches = [unified(path, a, b) for path, (a, b) in d.files.items()]
    return "\n".join(lines) + ("\n\n" + "".join(patches) if patches else "\n")
