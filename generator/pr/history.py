"""The pull-request rules that need the base branch (`check --base`), and the base itself.

The base is read straight from git (`git archive REF environments`), loaded
and rendered in memory with the current templates, so what a reviewer sees is
exactly what the change to the specs does.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..layout import ENVIRONMENTS_DIR
from ..problems import Problem, ProblemsFound, UsageError
from ..spec.model import Endpoint
from ..spec.repository import Repository, load_repository
from .upgrades import revision_warnings


def extract_base(root: Path, ref: str, into: Path) -> None:
    """Write the `environments/` folder of git revision `ref` into `into`."""
    try:
        subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd=root, check=True,
                       capture_output=True)
    except (subprocess.CalledProcessError, FileNotFoundError):
        raise UsageError(f"--base {ref!r} is not a commit in the git repository at {root}") from None
    result = subprocess.run(["git", "archive", "--format=tar", f"{ref}:./{ENVIRONMENTS_DIR}"], cwd=root,
                            capture_output=True, check=False)
    if result.returncode != 0:  # the base has no environments/ yet: an empty base
        return
    with tarfile.open(fileobj=io.BytesIO(result.stdout)) as archive:
        archive.extractall(into / ENVIRONMENTS_DIR, filter="data")


def load_base(root: Path, ref: str, tmp: Path, envs: Sequence[str]) -> Repository:
    """The base revision's repository (only the environments that exist there)."""
    extract_base(root, ref, tmp)
    present = [e for e in envs if (tmp / ENVIRONMENTS_DIR / e / "environment.yaml").is_file()] if envs else []
    if not (tmp / ENVIRONMENTS_DIR).is_dir() or (envs and not present):
        return Repository(tmp)
    return load_repository(tmp, present)


def history_findings(root: Path, ref: str, envs: Sequence[str] = ()) -> tuple[list[Problem], list[str]]:
    """What a change breaks that only the base shows: as problems, changed or removed properties and a changed
    namespace; as warnings, an Istio add-on upgrade step taken out of order."""
    head = load_repository(root, envs)
    if head.problems:
        raise ProblemsFound(head.problems)
    with tempfile.TemporaryDirectory(prefix="endpointgen-base-") as tmp:
        base = load_base(root, ref, Path(tmp), envs)
        before = {(ep.env.name, ep.name): ep for ep in base.endpoints}
        problems: list[Problem] = []
        for ep in head.endpoints:
            old = before.get((ep.env.name, ep.name))
            if old is not None:
                problems += _compare(old, ep, ref)
        return problems, revision_warnings(base, head, ref)


def _compare(old: Endpoint, new: Endpoint, ref: str) -> Iterator[Problem]:
    if old.namespace != new.namespace:
        path = ("namespace",) if "namespace" in new.doc.data else ("name",)
        yield new.problem(path, f"namespace changed from {old.namespace!r} (on {ref}) to {new.namespace!r}; an "
                                "endpoint's namespace cannot change: create a new endpoint instead")
    yield from _properties(old.settings.get("properties", {}), new.settings.get("properties", {}), new,
                           ("properties",), ref)
    versions = {v.name: v for v in new.versions}
    for v in old.versions:
        if v.name in versions:
            yield from _properties(v.spec.get("properties", {}), versions[v.name].spec.get("properties", {}), new,
                                   ("versions", versions[v.name].index, "properties"), ref)


def _properties(old: dict[str, str], new: dict[str, str], ep: Endpoint, path: tuple[Any, ...],
                ref: str) -> Iterator[Problem]:
    for key, value in old.items():
        if key not in new:
            yield ep.problem(path, f"property {key!r} (= {value!r} on {ref}) was removed; properties may gain keys "
                                   "but never lose or change one")
        elif new[key] != value:
            yield ep.problem(path + (key,), f"property {key!r} changed from {value!r} (on {ref}) to {new[key]!r}; "
                                            "properties never change once deployed")
