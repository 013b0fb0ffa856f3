"""Render only what changed: the endpoints whose spec changed since the last render of their environment.

Used when the environment file, endpointgen itself and the output files are
exactly as the last render left them (the cache's record says so). The changed
specs are loaded and validated as usual; the unchanged ones are represented by
their recorded summaries (namespace and object names) for the rules and
objects that span endpoints. Anything unusual falls back to a full render.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..layout import CLUSTERS_DIR, ENDPOINTS_DIR, ENVIRONMENTS_DIR, KEY_AUTH, PLATFORM, RENDERED_DIR
from ..output import cache
from ..output.writer import TreeDiff, write_atomic
from ..problems import Problem, ProblemsFound, display_path
from ..render.files import kustomizations, root_kustomization, shared_folders
from ..render.objects import endpoint_manifests, flux_platform, render_platform
from ..render.views import environment_view
from ..spec.model import Endpoint
from ..spec.identities import accounts, endpoint_row, federated_credentials_within_limit, over_limit
from ..spec.query_load import endpoint_query_hours, query_load_within_limits
from ..spec.repository import Repository, load_repository

if TYPE_CHECKING:  # imported where used: an unchecked render never needs the checks
    from ..check.manifests import Options, Report

MAX_CHANGED = 50  # beyond this a full (parallel) render is as fast


@dataclass
class _Recorded:
    """An unchanged endpoint, as far as platform objects and the name-collision rule need it."""

    name: str
    namespace: str
    key_refs: dict[str, Any] | None = None


@dataclass
class Change:
    """An incremental render of one environment, validated and rendered, not yet written."""

    root: Path
    env: str
    files: dict[str, str]
    changed: list[str]
    removed: list[str]
    summaries: dict[str, dict]
    report: Report | None = None  # the checks of what it renders, when asked for
    checks: str | None = None  # their checks_digest

    def apply(self) -> TreeDiff:
        diff = _apply(self.root, self.env, self.files, self.changed, self.removed)
        cache.record(self.root, {self.env: self.summaries}, self.checks)
        return diff


def plan_changed(root: Path, env: str, options: Options | None = None, checks: str | None = None) -> Change | None:
    """What an incremental render of one environment would write; None when only a full render can tell.

    With `options`, the changed endpoints' objects and the shared ones are checked as `validate` does (the
    unchanged ones passed the same checks, `checks`, in the render the cache recorded; else None)."""
    tool = cache.tool_digest()
    state = cache.entry(root, env)
    if not state or state.get("base") != cache.base_digest(root, env, tool) or "endpoints" not in state:
        return None
    if options is not None and state.get("checks") != checks:
        return None
    folder = root / ENVIRONMENTS_DIR / env / ENDPOINTS_DIR
    paths = {p.stem: p for p in folder.glob("*") if p.is_file()}
    if any(p.suffix != ".yaml" for p in paths.values()) or not cache.output_matches(root, env, state):
        return None
    recorded: dict[str, dict] = state["endpoints"]
    changed = sorted(n for n, p in paths.items() if recorded.get(n, {}).get("spec") != cache.spec_digest(p))
    removed = sorted(set(recorded) - set(paths))
    if len(changed) > MAX_CHANGED:
        return None
    repo = load_repository(root, [env], only=[paths[n] for n in changed])
    unchanged = {n: s for n, s in recorded.items() if n in paths and n not in changed}
    problems = repo.problems + _collisions(repo.endpoints, unchanged)
    if not problems:  # this environment's load (validate, and a full render, add up all environments')
        hours = sum(s["query_hours"] for s in unchanged.values()) + sum(map(endpoint_query_hours, repo.endpoints))
        problems += query_load_within_limits({env: repo.environments[0]}, {env: hours})
        problems += _identity_limits(root, repo, unchanged, paths)
    if problems:
        raise ProblemsFound(problems)
    environment = repo.environments[0]
    view = environment_view(environment)
    fresh = {ep.name: ep for ep in repo.endpoints}
    everyone: list[Endpoint | _Recorded] = [fresh.get(n) or _Recorded(n, recorded[n]["namespace"], recorded[n].get("keys"))
                                            for n in paths]
    manifests = {name: endpoint_manifests(environment, view, ep) for name, ep in fresh.items()}
    files = {m.path: m.text for found in manifests.values() for m in found}  # with their Flux Kustomizations
    files.update({m.path: m.text for m in render_platform(environment, view, everyone)  # type: ignore[arg-type]
                  + [flux_platform(environment, view)]})  # the others' Flux objects depend only on unchanged inputs
    files.update(kustomizations(env, list(files), only=lambda rel: _touched(rel, env, changed)))
    files.update([root_kustomization(env, sorted(paths), shared_folders(everyone))])  # type: ignore[arg-type]
    summaries = {n: s for n, s in recorded.items() if n in paths and n not in fresh}
    summaries.update({n: cache.summary(ep) for n, ep in fresh.items()})
    report = None
    if options is not None:
        from ..check.manifests import Report
        from ..check.rendered import check_endpoint, check_shared

        report = Report(endpoints=len(fresh), environments=1)
        for name, ep in fresh.items():
            report.merge(check_endpoint(environment, ep, manifests[name], options))
        check_shared(environment, everyone, options, report)  # type: ignore[arg-type]
    return Change(root, env, files, changed, removed, summaries, report, checks)


def _identity_limits(root: Path, repo: Repository, unchanged: dict[str, dict], paths: dict[str, Path]
                     ) -> list[Problem]:
    """This environment's identities against Entra ID's federated-credential limit (validate adds up all
    environments'); unchanged specs that set an identity over it are loaded again, for their located problems."""
    environment = repo.environments[0]
    rows = [endpoint_row(ep) for ep in repo.endpoints]
    rows += [(n, s["namespace"], s, s.get("keys") is not None, display_path(paths[n], root)) for n, s in unchanged.items()]
    found = accounts(environment, rows)
    over = over_limit(found)
    if not over:
        return []
    again = sorted(root / a.spec for a in found if a.identity in over and a.spec)
    specs = {ep.doc.display: ep for ep in [*repo.endpoints, *load_repository(root, [environment.name], only=again).endpoints]}
    return list(federated_credentials_within_limit({environment.name: environment}, found, specs))


def _collisions(fresh: list[Endpoint], others: dict[str, dict]) -> list[Problem]:
    owners = {(s["namespace"], obj): name for name, s in others.items() for obj in s["objects"]}
    problems = []
    for ep in fresh:
        for v in ep.versions:
            key = (ep.namespace, f"{ep.name}-{v.name}")
            if key in owners:
                problems.append(ep.problem(("versions", v.index, "version_name"),
                                           f"object name {key[1]!r} in namespace {key[0]!r} is also derived from "
                                           f"{owners[key]}; rename one version"))
            owners.setdefault(key, ep.name)
    return problems


def _rewritten_files(root: Path, env: str, names: set[str]) -> list[str]:
    """The files on disk an incremental render replaces: the shared ones (platform, key-auth) and those of the
    endpoints `names`."""
    folders = [root / RENDERED_DIR / env / PLATFORM, root / RENDERED_DIR / env / KEY_AUTH]
    folders += [root / RENDERED_DIR / env / "endpoints" / n for n in names]
    found = [path for folder in folders for path in folder.rglob("*") if path.is_file()]
    flux = [root / CLUSTERS_DIR / env / f"{KEY_AUTH}.yaml"] + [root / CLUSTERS_DIR / env / "endpoints" / f"{n}.yaml"
                                                               for n in names]
    found += [path for path in flux if path.is_file()]
    return sorted(path.relative_to(root).as_posix() for path in found)


def _touched(rel: str, env: str, changed: list[str]) -> bool:
    """Folder kustomization files an incremental render rewrites: the changed endpoints' and the shared ones."""
    shared = (f"{RENDERED_DIR}/{env}/{folder}/kustomization.yaml" for folder in (PLATFORM, KEY_AUTH))
    return rel in shared or any(rel == f"{RENDERED_DIR}/{env}/endpoints/{name}/kustomization.yaml" for name in changed)


def _apply(root: Path, env: str, files: dict[str, str], changed: list[str], removed: list[str]) -> TreeDiff:
    diff = TreeDiff()
    for rel, text in sorted(files.items()):
        path = root / rel
        if not path.is_file():
            diff.missing.append(rel)
        elif path.read_text(encoding="utf-8") == text:
            continue
        else:
            diff.stale.append(rel)
        write_atomic(path, text)
    for rel in _rewritten_files(root, env, set(changed) | set(removed)):
        if rel not in files:
            (root / rel).unlink(missing_ok=True)
            diff.extra.append(rel)
    for name in removed:
        shutil.rmtree(root / RENDERED_DIR / env / "endpoints" / name, ignore_errors=True)
    return diff
