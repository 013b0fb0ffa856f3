"""Where in the specs a finding in a rendered object comes from, so that it names the line a user wrote.

A rendered string that is exactly a string a spec sets is traced there, searching outward from the object: its
version's entry, the endpoint's own fields, the other versions, the environment's defaults, the rest of the
environment file. The first place with a match decides; one match names the spec's file:line:col and field, with
the rendered file as context. A value endpointgen computes (a number, a name it derives) or one that several
fields of that place share stays at the rendered file, with the spec named as context.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from ..problems import Problem
from ..spec.loader import Document, FieldPath
from ..spec.model import Endpoint, Environment
from .apiserver import JsonPath, metadata_of
from .manifests import RenderedObject, Trace

VERSION_LABEL = "endpointgen.io/version"


def traced(problem: Problem, o: RenderedObject, path: JsonPath, env: Environment, ep: Endpoint | None) -> Problem:
    """The problem at the spec field its rendered value came from, or at the rendered file with the spec named."""
    value = _value_at(o.obj, path)
    version = _version_index(o.obj, ep)
    if isinstance(value, str) and value:
        for doc, places in _places(env, ep, version):
            found = [field for field, v in places if v == value]
            if len(found) == 1:
                located = doc.problem(found[0], problem.message)
                return replace(problem, path=located.path, line=located.line, col=located.col, field=located.field,
                               context=f"in {problem.path}:{problem.line}:{problem.col}"
                                       + (f" at {problem.field}" if problem.field else ""))
            if found:
                break
    if ep is None:
        return replace(problem, context=f"from {env.doc.display}")
    return replace(problem, context=f"from {ep.doc.display}" + (f" versions[{version}]" if version is not None else ""))


def tracer(env: Environment, ep: Endpoint | None) -> Trace:
    """The Trace check_environment takes, for one endpoint's objects (or, with no endpoint, the shared ones)."""
    return lambda problem, o, path: traced(problem, o, path, env, ep)


def _places(env: Environment, ep: Endpoint | None, version: int | None
            ) -> Iterator[tuple[Document, list[tuple[FieldPath, Any]]]]:
    """The spec's scalars, in the order a rendered value is looked for: nearest to the object first."""
    if ep is not None:
        versions = ep.doc.data.get("versions", [])
        if version is not None:
            yield ep.doc, list(_scalars(versions[version], ("versions", version)))
        yield ep.doc, [p for key, value in ep.doc.data.items() if key != "versions" for p in _scalars(value, (key,))]
        yield ep.doc, [p for i, v in enumerate(versions) if i != version for p in _scalars(v, ("versions", i))]
    yield env.doc, list(_scalars(env.defaults, ("defaults",)))
    yield env.doc, [p for key, value in env.settings.items() if key != "defaults" for p in _scalars(value, (key,))]


def _scalars(value: Any, path: FieldPath) -> Iterator[tuple[FieldPath, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _scalars(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _scalars(item, (*path, i))
    else:
        yield path, value


def _value_at(obj: Any, path: JsonPath) -> Any:
    for part in path:
        try:
            obj = obj[part]
        except (KeyError, IndexError, TypeError):
            return None
    return obj


def _version_index(obj: dict[str, Any], ep: Endpoint | None) -> int | None:
    """The index of the version whose object this is (its label names it), if it is one version's."""
    name = (metadata_of(obj).get("labels") or {}).get(VERSION_LABEL)
    if ep is None or name is None:
        return None
    return next((v.index for v in ep.versions if v.name == name), None)
