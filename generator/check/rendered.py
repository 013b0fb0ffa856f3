"""Check what render produced, in memory: one endpoint's objects with its waivers, the
platform's objects, and the schemas they need compiled once before the workers fork.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..problems import Problem
from ..render.objects import HasNamespace, flux_platform, render_platform
from ..render.templates import ALLOWED_KINDS, Manifest
from ..render.views import environment_view
from ..spec.model import Endpoint, Environment
from .manifests import Options, RenderedObject, Report, check_environment, schema_store
from .origins import tracer


def rendered_objects(manifests: Iterable[Manifest]) -> list[RenderedObject]:
    """Objects endpointgen rendered, as the checks take them (their text is endpointgen's own dump)."""
    return [RenderedObject(m.path, m.text, m.obj, rendered=True) for m in manifests]


def check_endpoint(env: Environment, ep: Endpoint, manifests: list[Manifest], options: Options) -> Report:
    """Check one endpoint's objects (its waivers applied) into a new Report."""
    report = Report()
    check_environment(rendered_objects(manifests), env.settings["kubernetes_version"], options, dict([waivers_of(ep)]),
                      report, tracer(env, ep))
    return report


def check_shared(env: Environment, endpoints: Sequence[HasNamespace], options: Options, report: Report) -> None:
    """Check the objects no endpoint owns: the platform folder's and the platform's Flux Kustomization."""
    view = environment_view(env)
    shared = render_platform(env, view, endpoints) + [flux_platform(env, view)]
    check_environment(rendered_objects(shared), env.settings["kubernetes_version"], options, {}, report,
                      tracer(env, None))


def compile_schemas(environments: dict[str, tuple[Environment | None, list[Problem]]], options: Options) -> None:
    """Compile every schema the rendered kinds need before the workers fork, so each does not compile them again."""
    for env, _ in environments.values():
        if env is not None:
            schema_store(env.settings["kubernetes_version"], tuple(options.locations), options.strict,
                         options.cache_dir).warm(ALLOWED_KINDS.items())



def waivers_of(ep: Endpoint) -> tuple[str, dict[str, str]]:
    return ep.name, {w["policy"]: w["reason"] for w in ep.settings.get("waivers", [])}
