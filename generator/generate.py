"""The render and check pipelines: validate, render every environment in memory, then write or compare."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import cache, incremental
from .manifests import (Options, RenderedObject, Report, check_environment, objects_from_files, read_documents,
                        schema_store)
from .model import Endpoint, Environment
from .parallel import map_chunks
from .problems import EndpointgenError, Problem, ProblemsFound
from .render import (ALLOWED_KINDS, CLUSTERS_DIR, GENERATED_MARK, RENDERED_DIR, Manifest, endpoint_files, endpoint_manifests,
                     flux_folder, flux_platform, kustomizations, render_endpoint, render_flux, render_platform, shared_files)
from .repository import Repository, environment_names, load_environments, load_repository, select_environments
from .sweep import sweep
from .views import environment_view
from .writer import Files, OutputTree, TreeDiff, owned_files, present_files




class StaleOutput(EndpointgenError):
    """The committed output differs from what render would write."""


Progress = Callable[[int, int], None] | None  # (items just done, total items)


def _pairs(repo: Repository) -> list[tuple[Environment, Endpoint]]:
    return [(env, ep) for env in repo.environments for ep in sorted(repo.endpoints_of(env.name), key=lambda e: e.name)]


def render_texts(repo: Repository, progress: Progress = None) -> dict[str, Files]:
    """Every file of every environment, the endpoints rendered in parallel."""
    pairs = _pairs(repo)
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
    """Rendered objects failed the manifest checks (render --validate); nothing was written."""

    def __init__(self, report: Report):
        super().__init__(f"{len(report.problems)} problem(s) found in rendered manifests; nothing was written")
        self.report = report


def full_render(root: Path, envs: Sequence[str], progress: Progress = None, *, stage: bool,
                options: Options | None = None) -> Output:
    """Validate and render every endpoint of `envs` in parallel, each worker staging (or comparing) its files.

    With `options`, every rendered object is also checked as `validate` does (InvalidManifests when one fails).
    Raises ProblemsFound, with nothing staged left behind, when any spec is invalid.
    """
    environments = load_environments(root, envs)
    made = root / RENDERED_DIR if stage and not (root / RENDERED_DIR).exists() else None
    out = Output({name: OutputTree(root, name, stage=stage) for name in environments}, made=made)
    try:
        if options is not None:
            _compile_schemas(environments, options)
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
                shared = render_platform(env, view, valid) + [flux_platform(env, view)]
                check_environment([RenderedObject(m.path, m.text, m.obj) for m in shared],
                                  env.settings["kubernetes_version"], options, {}, out.report)
        if out.report is not None and out.report.problems:
            raise InvalidManifests(out.report)
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
        report = _check_endpoint(env, ep, manifests, self.options) if self.options is not None else None
        return self.trees[env.name].add(endpoint_files(env, ep, manifests)), report


def _check_endpoint(env: Environment, ep: Endpoint, manifests: list[Manifest], options: Options) -> Report:
    report = Report()
    check_environment([RenderedObject(m.path, m.text, m.obj) for m in manifests], env.settings["kubernetes_version"],
                      options, dict([_waivers(ep)]), report)
    return report


def _compile_schemas(environments: dict[str, tuple[Environment | None, list[Problem]]], options: Options) -> None:
    """Compile every schema the rendered kinds need before the workers fork, so each does not compile them again."""
    for env, _ in environments.values():
        if env is not None:
            schema_store(env.settings["kubernetes_version"], tuple(options.locations), options.strict,
                         options.cache_dir).warm(ALLOWED_KINDS.items())


def render(root: Path, envs: Sequence[str] = (), progress: Progress = None,
           options: Options | None = None, findings: Report | None = None) -> dict[str, TreeDiff]:
    """Bring rendered/ and clusters/ up to date; nothing is written if any spec is invalid or any file in the way
    was not generated by endpointgen.

    With `options` (render --validate), every object is rendered and checked, the cache aside, and nothing is
    written unless all pass; `findings` receives what the checks found (waived findings included).
    """
    selected = select_environments(root, envs)
    current = cache.current(root, selected) if options is None else []
    if len(current) == len(selected) and (envs or not _orphan_folders(root)):
        return {env: TreeDiff() for env in selected}
    stale = [env for env in selected if env not in current]
    try:
        changes = {env: change for env in stale
                   if options is None and (change := incremental.plan_changed(root, env)) is not None}
    except ProblemsFound:
        changes = {}  # the full render below reports every problem of every environment at once
    stale = [env for env in stale if env not in changes]
    out = full_render(root, stale, progress, stage=True, options=options) if stale else Output()
    if findings is not None and out.report is not None:
        findings.merge(out.report)
        findings.endpoints, findings.environments = out.report.endpoints, out.report.environments
    try:
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
            cache.record(root, out.summaries)
    finally:
        out.discard()
    return {**{env: TreeDiff() for env in current}, **done, **found}


def _orphans(root: Path, envs: Sequence[str]) -> dict[str, TreeDiff]:
    """With no environment named, the leftover output of environments that are gone (render removes it)."""
    found = {}
    for env in [] if envs else _orphan_folders(root):
        ours, foreign = owned_files(root, env)
        found[env] = TreeDiff(extra=ours, foreign=foreign)
    return found


def _orphan_folders(root: Path) -> list[str]:
    """Folders in rendered/ or clusters/ holding our files for an environment that is gone (render removes them)."""
    names = set(environment_names(root))
    return sorted({p.name for base in (root / RENDERED_DIR, root / CLUSTERS_DIR) if base.is_dir()
                   for p in base.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in names
                   and any(owned_files(root, p.name))})


def check(root: Path, envs: Sequence[str] = (), progress: Progress = None) -> list[str]:
    """Lines describing every stale, missing, leftover or foreign file; empty when current."""
    out = full_render(root, select_environments(root, envs), progress, stage=False)
    return [line for d in {**out.diffs, **_orphans(root, envs)}.values() for line in d.lines()]


def validate_manifests(root: Path, envs: Sequence[str], options: Options, *, from_disk: bool,
                       progress: Progress = None) -> Report:
    """Check every rendered object: in memory (what render would write) or the files on disk.

    Each worker checks whole endpoints (specs, objects and their folder's kustomization.yaml); the main process
    then checks what no endpoint owns: the platform objects, stray files and the environment's root listing.
    """
    schema_store.cache_clear()  # schemas are read afresh by every run (and compiled once in it)
    if options.engine == "kubeconform":
        return _validate_with_kubeconform(root, envs, options, from_disk=from_disk, progress=progress)
    environments = load_environments(root, envs)
    _compile_schemas(environments, options)
    work = _EndpointOnDisk(root, options) if from_disk else _EndpointInMemory(options)
    done = sweep(root, environments, work, progress)
    if done.problems:
        raise ProblemsFound(done.problems)
    report = Report(endpoints=sum(o.summary is not None for o in done.outcomes), environments=len(environments))
    for name, env in done.environments.items():
        assert env is not None
        results = [o.result for o in done.valid(name)]
        for part, _, _ in results:
            report.merge(part)
        waivers = {endpoint: w for _, _, (endpoint, w) in results}
        covered = {rel for _, rels, _ in results for rel in rels}
        if from_disk:
            _check_rest_on_disk(root, name, env, covered, options, waivers, report)
        else:
            shared = render_platform(env, environment_view(env), done.valid(name)) + [flux_platform(env, environment_view(env))]
            check_environment([RenderedObject(m.path, m.text, m.obj) for m in shared], env.settings["kubernetes_version"],
                              options, {}, report)
    report.files.update(p.path for p in report.problems)
    report.invalid.update(p.path for p in report.problems)
    return report


def _waivers(ep: Endpoint) -> tuple[str, dict[str, str]]:
    return ep.name, {w["policy"]: w["reason"] for w in ep.settings.get("waivers", [])}


@dataclass
class _EndpointInMemory:
    """Sweep work: render one endpoint's objects (and its Flux Kustomization) and check them."""

    options: Options

    def __call__(self, env: Environment, view: dict[str, Any], ep: Endpoint) -> tuple[Report, list[str], Any]:
        return _check_endpoint(env, ep, endpoint_manifests(env, view, ep), self.options), [], _waivers(ep)


@dataclass
class _EndpointOnDisk:
    """Sweep work: check the files of one endpoint's folder (and its Flux Kustomization) as committed."""

    root: Path
    options: Options

    def __call__(self, env: Environment, view: dict[str, Any], ep: Endpoint) -> tuple[Report, list[str], Any]:
        part, waivers = Report(), _waivers(ep)
        folder = f"{RENDERED_DIR}/{env.name}/endpoints/{ep.name}"
        files = {f"{folder}/{name}": text for name, text in _read_folder(self.root / folder)}
        flux = f"{CLUSTERS_DIR}/{env.name}/endpoints/{ep.name}.yaml"
        text = _read(self.root / flux)
        if text is not None and text.startswith(GENERATED_MARK):  # a hand-written file there is not ours to judge
            files[flux] = text
        manifests = [rel for rel in files if rel.startswith(folder) and not rel.endswith("/kustomization.yaml")]
        part.problems += kustomization_problems(env.name, manifests, files.get, only={f"{folder}/kustomization.yaml"})
        _check_files(files, env.settings["kubernetes_version"], self.options, dict([waivers]), part)
        return part, list(files), waivers


def _check_rest_on_disk(root: Path, env_name: str, env: Environment, covered: set[str], options: Options,
                        waivers: dict[str, dict[str, str]], report: Report) -> None:
    """The files of an environment no endpoint's worker checked: platform/, strays, the root kustomization.yaml."""
    rendered, clusters = present_files(root, env_name)
    rest = [rel for rel in rendered if rel.endswith(".yaml") and rel not in covered]
    files = {rel: text for rel in rest if (text := _read(root / rel)) is not None}
    for rel in clusters:
        if rel not in covered and (text := _read(root / rel)) is not None and text.startswith(GENERATED_MARK):
            files[rel] = text
    manifests = [rel for rel in rendered if rel.endswith(".yaml") and not rel.endswith("/kustomization.yaml")]
    checked = {rel for rel in covered if rel.endswith("/kustomization.yaml")}
    wanted = set(kustomizations(env_name, manifests)) - checked
    report.problems += kustomization_problems(env_name, manifests, lambda rel: files.get(rel) or _read(root / rel),
                                              only=wanted)
    _check_files(files, env.settings["kubernetes_version"], options, waivers, report)


def _check_files(files: dict[str, str], kubernetes_version: str, options: Options, waivers: dict[str, dict[str, str]],
                 report: Report) -> None:
    objects, problems = objects_from_files(files)
    report.problems += problems
    report.files.update(p.path for p in problems)
    report.invalid.update(p.path for p in problems)
    check_environment(objects, kubernetes_version, options, waivers, report)


def _read(path: Path) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def _read_folder(folder: Path) -> list[tuple[str, str]]:
    """(name, text) of every .yaml file in a folder, sorted; none when it does not exist."""
    try:
        with os.scandir(folder) as entries:
            names = sorted(e.name for e in entries if e.name.endswith(".yaml") and e.is_file())
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [(name, text) for name in names if (text := _read(folder / name)) is not None]


def _validate_with_kubeconform(root: Path, envs: Sequence[str], options: Options, *, from_disk: bool,
                               progress: Progress) -> Report:
    """Validation with the kubeconform engine: one kubeconform run per environment (on disk) or per chunk."""
    repo = load_repository(root, envs)
    if repo.problems:
        raise ProblemsFound(repo.problems)
    waivers = {(ep.env.name, ep.name): {w["policy"]: w["reason"] for w in ep.settings.get("waivers", [])}
               for ep in repo.endpoints}
    if not from_disk:
        return _validate_in_memory(repo, options, waivers, progress)
    return _validate_on_disk(root, repo, options, waivers, progress)


def _validate_on_disk(root: Path, repo: Repository, options: Options, waivers: dict[tuple[str, str], dict[str, str]],
                      progress: Progress) -> Report:
    """Check the committed files, one environment at a time (one kubeconform run each), then its structure."""
    report = Report(endpoints=len(repo.endpoints), environments=len(repo.environments))
    groups: list[tuple[str, str, list[str]]] = []  # (env, endpoint or "", files)
    for env in repo.environments:
        ours, foreign = owned_files(root, env.name)
        paths = sorted(rel for rel in ours + foreign if rel.endswith(".yaml"))
        groups.append((env.name, "", paths))
        manifests = [rel for rel in paths if rel.startswith(f"{RENDERED_DIR}/") and not rel.endswith("/kustomization.yaml")]
        report.problems += kustomization_problems(env.name, manifests, lambda rel: _read(root / rel))
    versions = {env.name: env.settings["kubernetes_version"] for env in repo.environments}

    def task(chunk: Sequence[int]) -> Report:
        part = Report()
        for i in chunk:
            env, name, paths = groups[i]
            files = {rel: (root / rel).read_text(encoding="utf-8", errors="replace") for rel in paths}
            objects, problems = objects_from_files(files)
            part.problems += problems
            part.files.update(p.path for p in problems)
            part.invalid.update(p.path for p in problems)
            mine = {ep: w for (e, ep), w in waivers.items() if e == env and (ep == name or not name)}
            check_environment(objects, versions[env], options, mine, part)
        return part

    for part in map_chunks(task, len(groups), progress):
        report.merge(part)
    report.files.update(p.path for p in report.problems)
    report.invalid.update(p.path for p in report.problems)
    return report


def _validate_in_memory(repo: Repository, options: Options, waivers: dict[tuple[str, str], dict[str, str]],
                        progress: Progress) -> Report:
    """Render and check each endpoint's objects in parallel (the rules never cross endpoints), then the shared ones."""
    pairs = _pairs(repo)
    views = {env.name: environment_view(env) for env in repo.environments}

    def task(chunk: Sequence[int]) -> Report:
        part = Report()
        for env in repo.environments:  # one check per environment and chunk (one kubeconform run, if that engine)
            mine = [pairs[i][1] for i in chunk if pairs[i][0] is env]
            objects = [RenderedObject(m.path, m.text, m.obj) for ep in mine for m in render_endpoint(env, views[env.name], ep)]
            if objects:
                check_environment(objects, env.settings["kubernetes_version"], options,
                                  {ep.name: waivers.get((env.name, ep.name), {}) for ep in mine}, part)
        return part

    report = Report(endpoints=len(repo.endpoints), environments=len(repo.environments))
    for part in map_chunks(task, len(pairs), progress):
        report.merge(part)
    for env in repo.environments:
        endpoints = repo.endpoints_of(env.name)
        shared = render_platform(env, views[env.name], endpoints) + render_flux(env, [ep.name for ep in endpoints])
        check_environment([RenderedObject(m.path, m.text, m.obj) for m in shared], env.settings["kubernetes_version"],
                          options, {}, report)
    return report


def kustomization_problems(env: str, manifests: list[str], read: Callable[[str], str | None],
                           only: Collection[str] | None = None) -> list[Problem]:
    """Every kustomization.yaml under rendered/<env> (or those in `only`) lists exactly the manifests there.

    `manifests` are the .yaml files (kustomization.yaml files aside) under rendered/<env>; `read` gives a
    kustomization file's text, or None when it does not exist. A manifest in no Flux folder is a problem too.
    """
    problems = [Problem(path, 1, 1, "", "is in no folder a Flux Kustomization applies (platform/ or endpoints/<name>/)",
                        rule="kustomization-resources") for path in manifests
                if flux_folder(env, path) is None]
    for rel, text in kustomizations(env, manifests).items():
        if only is not None and rel not in only:
            continue
        expected = set(_resources(text))
        found = read(rel)
        if found is None:
            problems.append(Problem(rel, 1, 1, "", "missing: Flux builds this folder from it; run `make render`",
                                    rule="kustomization-resources"))
            continue
        listed = _resources(found)
        problems += [Problem(rel, 1, 1, "resources", f"lists {name!r}, which does not exist",
                             rule="kustomization-resources") for name in listed if name not in expected]
        problems += [Problem(rel, 1, 1, "resources", f"does not list {name!r}, so Flux would not apply it",
                             rule="kustomization-resources") for name in sorted(expected - set(listed))]
    return problems


def _resources(text: str) -> list[str]:
    try:
        documents = read_documents(text)
    except yaml.YAMLError:
        return []  # reported as invalid YAML by objects_from_files
    data = documents[0] if len(documents) == 1 else None
    return [str(r) for r in (data.get("resources") or [])] if isinstance(data, dict) else []
