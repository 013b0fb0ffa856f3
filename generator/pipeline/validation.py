"""`endpointgen validate`: every rendered object, in memory or as committed, checked in one parallel sweep.

Each worker checks whole endpoints (spec, objects, their folder's kustomization.yaml); the main process then
checks what no endpoint owns: the platform objects, stray files and each environment's root listing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..check.manifests import (Options, Report, Trace, check_environment, objects_from_files, read_documents,
                               schema_store)
from ..check.origins import tracer
from ..check.rendered import check_endpoint, check_shared, compile_schemas, rendered_objects, waivers_of
from ..layout import CLUSTERS_DIR, GENERATED_MARK, RENDERED_DIR
from ..output.writer import owned_files, present_files
from ..problems import Problem, ProblemsFound
from ..render.files import flux_folder, kustomizations
from ..render.objects import endpoint_manifests, render_endpoint, render_flux, render_platform
from ..render.views import environment_view
from ..spec.model import Endpoint, Environment
from ..spec.repository import Repository, endpoint_pairs, load_environments, load_repository
from .parallel import Progress, map_chunks
from .sweep import sweep


def validate_manifests(root: Path, envs: Sequence[str], options: Options, *, from_disk: bool,
                       progress: Progress = None) -> Report:
    """Check every rendered object: in memory (what render would write) or the files on disk.

    Each worker checks whole endpoints (specs, objects and their folder's kustomization.yaml); the main process
    then checks what no endpoint owns: the platform objects, stray files and the environment's root listing.
    """
    schema_store.cache_clear()  # schemas are read afresh by every run (and compiled once in it)
    if options.engine in ("kubeconform", "both"):
        return _validate_with_kubeconform(root, envs, options, from_disk=from_disk, progress=progress)
    environments = load_environments(root, envs)
    compile_schemas(environments, options)
    work = _EndpointOnDisk(root, options) if from_disk else _EndpointInMemory(options)
    done = sweep(root, environments, work, progress)
    if done.problems:
        raise ProblemsFound(done.problems)
    report = Report(endpoints=sum(o.summary is not None for o in done.outcomes), environments=len(environments))
    for name, env in done.environments.items():
        assert env is not None
        results: list[_Checked] = [o.result for o in done.valid(name)]
        for checked in results:
            report.merge(checked.report)
        waivers = dict(checked.waivers for checked in results)
        if from_disk:
            _check_rest_on_disk(root, name, env, results, options, waivers, report)
        else:
            check_shared(env, done.valid(name), options, report)
    report.files.update(p.path for p in report.problems)
    report.invalid.update(p.path for p in report.problems)
    return report


@dataclass
class _Checked:
    """What a worker checked of one endpoint."""

    report: Report
    waivers: tuple[str, dict[str, str]]
    files: list[str] = field(default_factory=list)  # repo-relative
    folder: str = ""  # rendered/<env>/endpoints/<name>, when it holds manifests
    whole: bool = False  # no subfolder in it: every file of the folder was checked


@dataclass
class _EndpointInMemory:
    """Sweep work: render one endpoint's objects (and its Flux Kustomization) and check them."""

    options: Options

    def __call__(self, env: Environment, view: dict[str, Any], ep: Endpoint) -> _Checked:
        return _Checked(check_endpoint(env, ep, endpoint_manifests(env, view, ep), self.options), waivers_of(ep))


@dataclass
class _EndpointOnDisk:
    """Sweep work: check the files of one endpoint's folder (and its Flux Kustomization) as committed."""

    root: Path
    options: Options

    def __call__(self, env: Environment, view: dict[str, Any], ep: Endpoint) -> _Checked:
        part, waivers = Report(), waivers_of(ep)
        folder = f"{RENDERED_DIR}/{env.name}/endpoints/{ep.name}"
        names, whole = _read_folder(self.root / folder)
        files = {f"{folder}/{name}": text for name, text in names}
        flux = f"{CLUSTERS_DIR}/{env.name}/endpoints/{ep.name}.yaml"
        text = _read(self.root / flux)
        if text is not None and text.startswith(GENERATED_MARK):  # a hand-written file there is not ours to judge
            files[flux] = text
        manifests = [rel for rel in files if rel.startswith(folder) and not rel.endswith("/kustomization.yaml")]
        part.problems += kustomization_problems(env.name, manifests, files.get,
                                                only=lambda rel: rel == f"{folder}/kustomization.yaml")
        _check_files(files, env.settings["kubernetes_version"], self.options, dict([waivers]), part,
                     tracer(env, ep))
        return _Checked(part, waivers, list(files), folder if manifests else "", whole)


def _check_rest_on_disk(root: Path, env_name: str, env: Environment, checked: list[_Checked], options: Options,
                        waivers: dict[str, dict[str, str]], report: Report) -> None:
    """The files of an environment no endpoint's worker checked: platform/, strays, the root kustomization.yaml."""
    covered = {rel for c in checked for rel in c.files}
    whole = {c.folder for c in checked if c.folder and c.whole}  # folders a worker checked entirely
    rendered, clusters = present_files(root, env_name, skip=whole)
    files = {rel: text for rel in rendered if rel.endswith(".yaml") and rel not in covered
             and (text := _read(root / rel)) is not None}
    for rel in clusters:
        if rel not in covered and (text := _read(root / rel)) is not None and text.startswith(GENERATED_MARK):
            files[rel] = text
    manifests = [rel for rel in rendered if rel.endswith(".yaml") and not rel.endswith("/kustomization.yaml")]
    done = {f"{folder}/kustomization.yaml" for folder in whole}
    report.problems += kustomization_problems(env_name, manifests, lambda rel: files.get(rel) or _read(root / rel),
                                              only=lambda rel: rel not in done, known=whole)
    _check_files(files, env.settings["kubernetes_version"], options, waivers, report,
                 tracer(env, None))


def _check_files(files: dict[str, str], kubernetes_version: str, options: Options, waivers: dict[str, dict[str, str]],
                 report: Report, trace: Trace) -> None:
    objects, problems = objects_from_files(files)
    report.problems += problems
    report.files.update(p.path for p in problems)
    report.invalid.update(p.path for p in problems)
    check_environment(objects, kubernetes_version, options, waivers, report, trace)


def _read(path: Path) -> str | None:
    """A file's text as text mode would read it (bad UTF-8 replaced, newlines made \\n); None when it is missing."""
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def _read_folder(folder: Path) -> tuple[list[tuple[str, str]], bool]:
    """(name, text) of every .yaml file in a folder, sorted (none when it does not exist), and whether the folder
    has no subfolder."""
    try:
        with os.scandir(folder) as entries:
            found = [(e.name, e.is_dir()) for e in entries]
    except (FileNotFoundError, NotADirectoryError):
        return [], True
    names = sorted(name for name, is_dir in found if name.endswith(".yaml") and not is_dir)
    return [(name, text) for name in names if (text := _read(folder / name)) is not None], \
        not any(is_dir for _, is_dir in found)


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
        manifests = [rel for rel in paths
                     if rel.startswith(f"{RENDERED_DIR}/") and not rel.endswith("/kustomization.yaml")]
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
    pairs = endpoint_pairs(repo)
    views = {env.name: environment_view(env) for env in repo.environments}

    def task(chunk: Sequence[int]) -> Report:
        part = Report()
        for env in repo.environments:  # one check per environment and chunk (one kubeconform run, if that engine)
            mine = [pairs[i][1] for i in chunk if pairs[i][0] is env]
            objects = rendered_objects(m for ep in mine for m in render_endpoint(env, views[env.name], ep))
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
        check_environment(rendered_objects(shared), env.settings["kubernetes_version"], options, {}, report)
    return report


def kustomization_problems(env: str, manifests: list[str], read: Callable[[str], str | None],
                           only: Callable[[str], bool] | None = None, known: Collection[str] = ()) -> list[Problem]:
    """Every kustomization.yaml under rendered/<env> (or those `only` accepts) lists exactly the manifests there.

    `manifests` are the .yaml files (kustomization.yaml files aside) under rendered/<env>, `known` folders that
    hold others; `read` gives a kustomization file's text, or None when it does not exist. A manifest in no Flux
    folder is a problem too.
    """
    problems = [Problem(path, 1, 1, "", "is in no folder a Flux Kustomization applies (platform/ or endpoints/<name>/)",
                        rule="kustomization-resources") for path in manifests
                if flux_folder(env, path) is None]
    for rel, text in kustomizations(env, manifests, only, known).items():
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
