"""The render and check pipelines: validate, render every environment in memory, then write or compare."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..layout import CLUSTERS_DIR, RENDERED_DIR, select_environments
from ..output import cache
from ..output.writer import Files, OutputTree, TreeDiff, orphan_environments, owned_files
from ..problems import EndpointgenError, ProblemsFound
from ..render.files import endpoint_files, kustomizations, shared_files
from ..render.objects import endpoint_manifests, render_endpoint, render_flux, render_platform
from ..render.views import environment_view
from ..spec.model import Endpoint, Environment
from ..spec.repository import Repository, endpoint_pairs, load_environments, load_repository
from . import incremental
from .parallel import Progress, map_chunks

if TYPE_CHECKING:  # the checks are imported where used: a render with one spec changed never needs them
    from ..check.manifests import Options, Report


class StaleOutput(EndpointgenError):
    """The committed output differs from what render would write."""


def render_texts(repo: Repository, progress: Progress = None) -> dict[str, Files]:
    """Every file of every environment, the endpoints rendered in parallel."""
    pairs = endpoint_pairs(repo)
    views = {env.name: environment_view(env) for env in repo.environments}

    def task(chunk: Sequence[int]) -> Files:
        return {m.path: m.text for i in chunk for m in render_endpoint(pairs[i][0], views[pairs[i][0].name], pairs[i][1])}

    texts: Files = {}
    for part in map_chunks(task, len(pairs), progress):
        texts.update(part)
    files: dict[str, Files] = {}
    for env in repo.environments:
        endpoints = repo.endpoints_of(env.name)
        shared = render_platform(env, views[env.name], endpoints) + render_flux(env, [ep.name for ep in endpoints])
        prefixes = (f"{RENDERED_DIR}/{env.name}/", f"{CLUSTERS_DIR}/{env.name}/")
        mine = {path: text for path, text in texts.items() if path.startswith(prefixes)}
        mine.update({m.path: m.text for m in shared})
        mine.update(kustomizations(env.name, list(mine)))
        files[env.name] = dict(sorted(mine.items()))
    return files


@dataclass
class Plan:
    """What render would write, per environment, held in memory (for diff, tests and tools)."""

    repo: Repository
    files: dict[str, Files]


def plan(root: Path, envs: Sequence[str] = (), progress: Progress = None) -> Plan:
    """Validate and render in memory; raise ProblemsFound if any spec is invalid."""
    repo = load_repository(root, envs)
    if repo.problems:
        raise ProblemsFound(repo.problems)
    return Plan(repo, render_texts(repo, progress))


@dataclass
class Output:
    """A full render of some environments, staged beside the current output or compared with it; not committed."""

    trees: dict[str, OutputTree] = field(default_factory=dict)
    diffs: dict[str, TreeDiff] = field(default_factory=dict)
    summaries: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    report: Report | None = None  # the manifest checks, when asked for
    made: Path | None = None  # rendered/, when staging created it

    def discard(self) -> None:
        for tree in self.trees.values():
            tree.discard()
        if self.made is not None and self.made.is_dir() and not any(self.made.iterdir()):
            self.made.rmdir()  # a render that wrote nothing leaves no empty rendered/ behind


class InvalidManifests(EndpointgenError):
    """Rendered objects failed the manifest checks; nothing was written."""

    def __init__(self, report: Report):
        super().__init__(f"{len(report.problems)} problem(s) found in rendered manifests; nothing was written")
        self.report = report


def full_render(root: Path, envs: Sequence[str], progress: Progress = None, *, stage: bool,
                options: Options | None = None) -> Output:
    """Validate and render every endpoint of `envs` in parallel, each worker staging (or comparing) its files.

    With `options`, every rendered object is also checked as `validate` does, into `report`.
    Raises ProblemsFound, with nothing staged left behind, when any spec is invalid.
    """
    from .sweep import sweep  # imported here: a render with one spec changed never needs it

    environments = load_environments(root, envs)
    made = root / RENDERED_DIR if stage and not (root / RENDERED_DIR).exists() else None
    out = Output({name: OutputTree(root, name, stage=stage) for name in environments}, made=made)
    try:
        if options is not None:
            from ..check.manifests import Report
            from ..check.rendered import check_shared, compile_schemas

            compile_schemas(environments, options)
        done = sweep(root, environments, _StageEndpoint(out.trees, options), progress)
        if done.problems:
            raise ProblemsFound(done.problems)
        out.report = Report(endpoints=sum(o.summary is not None for o in done.outcomes),
                            environments=len(environments)) if options is not None else None
        for name, env in done.environments.items():
            assert env is not None
            valid = done.valid(name)
            statuses = {rel: status for o in valid for rel, status in o.result[0].items()}
            view = environment_view(env)
            statuses.update(out.trees[name].add(shared_files(env, view, valid)))
            out.diffs[name] = out.trees[name].diff(statuses)
            out.summaries[name] = {o.name: o.summary for o in valid if o.summary is not None}
            if out.report is not None and options is not None:
                for o in valid:
                    out.report.merge(o.result[1])
                check_shared(env, valid, options, out.report)
        return out
    except BaseException:
        out.discard()
        raise


@dataclass
class _StageEndpoint:
    """Sweep work of render and check: render one endpoint, optionally check its objects, stage or compare its files."""

    trees: dict[str, OutputTree]
    options: Options | None

    def __call__(self, env: Environment, view: dict[str, Any], ep: Endpoint) -> tuple[dict[str, str], Report | None]:
        manifests = endpoint_manifests(env, view, ep)
        report = None
        if self.options is not None:
            from ..check.rendered import check_endpoint

            report = check_endpoint(env, ep, manifests, self.options)
        return self.trees[env.name].add(endpoint_files(env, ep, manifests)), report


def render(root: Path, envs: Sequence[str] = (), progress: Progress = None, options: Options | None = None,
           findings: Report | None = None, current: list[str] | None = None,
           force: bool = False) -> dict[str, TreeDiff]:
    """Bring rendered/ and clusters/ up to date; nothing is written if any spec is invalid or any file in the way
    was not generated by endpointgen.

    With `options` (what `endpointgen render` always gives), every object rendered is also checked as `validate`
    does, and nothing is written unless all pass (InvalidManifests); `findings` receives what the checks found
    (waived findings included). An environment whose inputs, output and checks are as the last checked render
    left them is not rendered again; a few changed specs are rendered and checked alone.
    `current` is cache.current() of the environments, when the caller already asked; `force` sets the cache
    aside (everything is rendered and compared with the disk).
    """
    selected = select_environments(root, envs)
    checks = None if options is None else cache.checks_digest(
        options.locations, options.strict, options.ignore_missing_schemas, options.skip_kinds)
    if force:
        current = []
    elif current is None:
        current = cache.current(root, selected, checks)
    if len(current) == len(selected) and (envs or not orphan_environments(root)):
        return {env: TreeDiff() for env in selected}
    stale = [env for env in selected if env not in current]
    try:
        changes = {env: change for env in stale
                   if not force and (change := incremental.plan_changed(root, env, options, checks)) is not None}
    except ProblemsFound:
        changes = {}  # the full render below reports every problem of every environment at once
    stale = [env for env in stale if env not in changes]
    out = full_render(root, stale, progress, stage=True, options=options) if stale else Output()
    try:
        report = _all_checks(out, changes, options)
        if findings is not None and report is not None:
            findings.merge(report)
            findings.endpoints, findings.environments = report.endpoints, report.environments
        if report is not None and report.problems:
            raise InvalidManifests(report)
        found = {**out.diffs, **_orphans(root, envs)}
        foreign = [path for d in found.values() for path in d.foreign]
        if foreign:
            raise EndpointgenError("refusing to render: these files in rendered/ or clusters/ were not generated by "
                                   "endpointgen; move them elsewhere: " + ", ".join(foreign))
        done = {env: change.apply() for env, change in changes.items()}  # nothing is written before all is validated
        for env, tree in out.trees.items():
            tree.commit(out.diffs[env])
        for env, diff in found.items():
            if env not in out.diffs:  # an environment that is gone
                shutil.rmtree(root / RENDERED_DIR / env, ignore_errors=True)
                for rel in diff.extra:
                    (root / rel).unlink(missing_ok=True)
        if out.summaries:
            cache.record(root, out.summaries, checks)
    finally:
        out.discard()
    return {**{env: TreeDiff() for env in current}, **done, **found}


def _all_checks(out: Output, changes: dict[str, incremental.Change], options: Options | None) -> Report | None:
    """The checks of the full render and of the incremental ones together (None when none were asked for)."""
    if options is None:
        return None
    from ..check.manifests import Report

    report = Report()
    for part in [out.report, *(change.report for change in changes.values())]:
        if part is not None:
            report.merge(part)
            report.endpoints += part.endpoints
            report.environments += part.environments
    return report


def _orphans(root: Path, envs: Sequence[str]) -> dict[str, TreeDiff]:
    """With no environment named, the leftover output of environments that are gone (render removes it)."""
    found = {}
    for env in [] if envs else orphan_environments(root):
        ours, foreign = owned_files(root, env)
        found[env] = TreeDiff(extra=ours, foreign=foreign)
    return found


def check(root: Path, envs: Sequence[str] = (), progress: Progress = None) -> list[str]:
    """Lines describing every stale, missing, leftover or foreign file; empty when current."""
    out = full_render(root, select_environments(root, envs), progress, stage=False)
    return [line for d in {**out.diffs, **_orphans(root, envs)}.values() for line in d.lines()]
