"""Check rendered manifests: JSON Schema (kubeconform-style), API-server rules and policies.

Input is one environment's objects, from the in-memory render or from the
files on disk; output is a Report of Problems located at file:line:col with
the object and JSON path, policy findings an endpoint waived kept apart.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import fast_yaml
import yaml

from ..problems import EndpointgenError, Problem, UsageError
from ..render.templates import load_documents
from ..spec.loader import Document, LoadError, format_field, parse_yaml
from ..spec.waivers import POLICIES
from . import gotools
from .apiserver import JsonPath, metadata_of, object_rules, set_rules
from .kubeschemas import SchemaError, SchemaStore, as_template, builtin_dir, builtin_schema_file
from .policy import endpoint_policies, object_policies

KUSTOMIZE_CONFIG = "kustomize.config.k8s.io/v1beta1"
UNKNOWN_FIELD = "unknown field "  # messages starting so are located at the key, not at its value
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Options:
    """The kubeconform-like knobs of `endpointgen validate`."""

    locations: list[str] = field(default_factory=list)
    strict: bool = True
    ignore_missing_schemas: bool = False
    skip_kinds: frozenset[str] = frozenset()
    engine: str = "builtin"
    cache_dir: Path | None = None


@dataclass
class RenderedObject:
    """One object and the file it is (or would be) written to."""

    path: str
    text: str
    obj: dict[str, Any]
    rendered: bool = False  # the text is endpointgen's own dump of obj (not a file someone may have edited)

    @property
    def subject(self) -> str:
        meta = metadata_of(self.obj)
        where = f"{meta['namespace']}/" if meta.get("namespace") else ""
        return f"{self.obj.get('kind')} {where}{meta.get('name')}"


Trace = Callable[[Problem, RenderedObject, JsonPath], Problem]


@dataclass
class Report:
    """What checking found, across environments."""

    problems: list[Problem] = field(default_factory=list)
    waived: list[Problem] = field(default_factory=list)
    objects: int = 0
    files: set[str] = field(default_factory=set)
    skipped: int = 0
    invalid: set[str] = field(default_factory=set)
    endpoints: int = 0
    environments: int = 0

    def merge(self, other: Report) -> None:
        """Add another part's results (from a worker) to this report."""
        self.problems += other.problems
        self.waived += other.waived
        self.objects += other.objects
        self.files |= other.files
        self.skipped += other.skipped
        self.invalid |= other.invalid

    def summary(self) -> str:
        valid = self.objects - self.skipped - len(self.invalid)
        return (f"Summary: {self.objects} objects in {len(self.files)} files - valid: {valid}, "
                f"invalid: {len(self.invalid)}, skipped: {self.skipped}, waived findings: {len(self.waived)}")


class KubeconformError(EndpointgenError):
    """The kubeconform engine was asked for but could not run."""


# Plain scalars that YAML 1.1 (Kubernetes' reader, PyYAML) and YAML 1.2 (fast-yaml) read differently, after ": ",
# "- " or a line's leading space. The lookahead lets the regex engine skip most positions fast.
_READ_DIFFERENTLY = re.compile(
    r"(?mi)[:\n-] (?=[-+.0-9yno])(?:y|n|yes|no|on|off|0[0-7]+|0o[0-7]+|[-+]?[0-9][0-9_]*_[0-9_]*|[-+]?[0-9]+(?::[0-5]?[0-9])+"
    r"(?:\.[0-9]*)?|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt ].*)?|[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+)$")


def reads_differently(text: str) -> bool:
    """Whether a YAML 1.1 reader could read some plain scalar of `text` differently from a YAML 1.2 one."""
    return _READ_DIFFERENTLY.search(text) is not None or (text.startswith(" ") and
                                                          _READ_DIFFERENTLY.search("\n" + text) is not None)


def read_documents(text: str) -> list[Any]:
    """The documents of a file as Kubernetes reads them: fast-yaml, or PyYAML where YAML 1.1 differs or on error."""
    if not reads_differently(text):
        try:
            return load_documents(text)
        except (ValueError, fast_yaml.YAMLError):
            pass  # PyYAML below gives the error with its position
    return [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]


def objects_from_files(files: dict[str, str]) -> tuple[list[RenderedObject], list[Problem]]:
    """Parse rendered files (path -> text); every file must hold exactly one object."""
    objects, problems = [], []
    for path, text in sorted(files.items()):
        try:
            documents = read_documents(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            problems.append(Problem(path, line, col, "", f"invalid YAML: {getattr(exc, 'problem', exc)}",
                                    rule="one-object-per-file"))
            continue
        if len(documents) != 1 or not isinstance(documents[0], dict):
            line, col = _second_document(text) if len(documents) > 1 else (1, 1)
            problems.append(Problem(path, line, col, "", f"expected exactly one object, found {len(documents)} "
                                    "document(s)", rule="one-object-per-file"))
            continue
        if documents[0].get("apiVersion") != KUSTOMIZE_CONFIG:
            objects.append(RenderedObject(path, text, documents[0]))
    return objects, problems


def _second_document(text: str) -> tuple[int, int]:
    """Where the second YAML document of `text` starts (its first node)."""
    nodes = [n for n in yaml.compose_all(text, Loader=_Loader) if n is not None and n.tag != "tag:yaml.org,2002:null"]
    mark = nodes[1].start_mark
    return mark.line + 1, mark.column + 1


def check_environment(objects: list[RenderedObject], kubernetes_version: str, options: Options,
                      waivers: dict[str, dict[str, str]], report: Report, trace: Trace | None = None) -> None:
    """Check one environment's objects and add the results to `report`.

    Skipped kinds are not checked, but the cross-object rules still see them (an HPA's Deployment exists).
    `trace` moves a problem to the spec field its value came from (check/origins.py).
    """
    locator = _Locator()
    report.objects += len(objects)
    report.files.update(o.path for o in objects)
    kept = [o for o in objects if o.obj.get("kind") not in options.skip_kinds]
    report.skipped += len(objects) - len(kept)
    found: list[tuple[RenderedObject, JsonPath, str, str]] = []
    if options.engine == "builtin":
        found += schema_violations(kept, kubernetes_version, options)
    elif options.engine == "kubeconform":
        found += run_kubeconform(kept, kubernetes_version, options)
    else:  # both: the built-in findings, and any object the two engines judge differently
        builtin = schema_violations(kept, kubernetes_version, options)
        found += builtin + disagreements(kept, builtin, run_kubeconform(kept, kubernetes_version, options))
    for o in kept:
        try:
            found += [(o, *v) for v in object_rules(o.obj)]
            found += [(o, *v) for v in object_policies(o.obj, o.text if o.rendered else None)]
        except (AttributeError, TypeError, KeyError) as exc:  # a field of the wrong shape; the schema says which
            found.append((o, (), "the API-server rules and policies cannot check this object: a field has the "
                                 f"wrong type ({type(exc).__name__}: {exc})", "malformed-object"))
    checked = {id(o) for o in kept}
    plain = [o.obj for o in objects]
    for cross in (set_rules, endpoint_policies):
        found += [(objects[i], path, message, rule) for i, path, message, rule in cross(plain)
                  if id(objects[i]) in checked]
    for o, path, message, rule in found:
        line, col = locator.where(o, path, key=rule == "schema" and message.startswith(UNKNOWN_FIELD))
        endpoint = (metadata_of(o.obj).get("labels") or {}).get("endpointgen.io/endpoint", "")
        reason = waivers.get(endpoint, {}).get(rule, "") if rule in POLICIES else ""
        problem = Problem(o.path, line, col, format_field(path), message, o.subject, rule, reason)
        problem = trace(problem, o, path) if trace is not None else problem
        (report.waived if reason else report.problems).append(problem)
        if not reason:
            report.invalid.add(o.path)


@cache
def schema_store(kubernetes_version: str, locations: tuple[str, ...], strict: bool, cache_dir: Path | None
                 ) -> SchemaStore:
    """One store per settings and process, so each schema is compiled once per run."""
    return SchemaStore(kubernetes_version, list(locations), strict=strict, cache_dir=cache_dir)


def schema_violations(objects: list[RenderedObject], kubernetes_version: str,
                      options: Options) -> list[tuple[RenderedObject, JsonPath, str, str]]:
    """JSON Schema errors of every object, each schema compiled once."""
    try:
        store = schema_store(kubernetes_version, tuple(options.locations), options.strict, options.cache_dir)
    except SchemaError as exc:
        raise EndpointgenError(str(exc)) from None
    found: list[tuple[RenderedObject, JsonPath, str, str]] = []
    for o in objects:
        api, kind = str(o.obj.get("apiVersion", "")), str(o.obj.get("kind", ""))
        try:
            validator = store.validator(api, kind)
        except SchemaError as exc:
            raise EndpointgenError(str(exc)) from None
        if validator is None:
            if not options.ignore_missing_schemas:
                looked = ", ".join([f"bundled Kubernetes {kubernetes_version} schemas", *options.locations])
                found.append((o, (), f"no schema for {api} {kind} (looked in: {looked}); add a --schema-location "
                              "or pass --ignore-missing-schemas", "schema-missing"))
            continue
        for error in validator.iter_errors(o.obj):
            path = tuple(error.instance_path)
            unexpected = getattr(getattr(error, "kind", None), "unexpected", None)  # additionalProperties: false
            if unexpected:
                found += [(o, path + (key,), f"{UNKNOWN_FIELD}{key!r}: the schema does not define it", "schema")
                          for key in unexpected]
            else:
                found.append((o, path, error.message, "schema"))
    return found


Finding = tuple[RenderedObject, JsonPath, str, str]
SCHEMA_RULES = ("schema", "schema-missing")


def disagreements(objects: list[RenderedObject], builtin: list[Finding], kubeconform: list[Finding]) -> list[Finding]:
    """A finding for each object one schema engine passes and the other does not (--engine both)."""
    def verdicts(found: list[Finding]) -> dict[int, str]:
        out: dict[int, str] = {}
        for o, path, message, rule in found:
            if rule in SCHEMA_RULES:
                out.setdefault(id(o), f"{format_field(path) or '(object)'}: {message}")
        return out

    ours, theirs = verdicts(builtin), verdicts(kubeconform)
    return [(o, (), f"the schema engines disagree: built-in says {ours.get(id(o), 'valid')}; kubeconform says "
                    f"{theirs.get(id(o), 'valid')}", "engines-disagree")
            for o in objects if (id(o) in ours) != (id(o) in theirs)]


def kubeconform_binary() -> str:
    """The pinned kubeconform (tools/kubeconform), built on first use; ENDPOINTGEN_KUBECONFORM names another."""
    configured = os.environ.get("ENDPOINTGEN_KUBECONFORM")
    if configured:
        if not os.access(configured, os.X_OK):
            raise KubeconformError(f"ENDPOINTGEN_KUBECONFORM={configured} is not an executable file")
        return configured
    try:
        return str(gotools.binary("kubeconform"))
    except UsageError as exc:
        raise KubeconformError(f"--engine kubeconform: {exc}") from None


def run_kubeconform(objects: list[RenderedObject], kubernetes_version: str,
                    options: Options) -> list[Finding]:
    """Schema validation by the pinned kubeconform, with the same locations; its findings mapped back."""
    binary = kubeconform_binary()
    builtin = builtin_dir(kubernetes_version, options.strict)
    version = builtin.name[1:].split("-")[0]
    by_path = {o.path: o for o in objects}
    with tempfile.TemporaryDirectory(prefix="endpointgen-kubeconform-") as tmp:
        bundled = Path(tmp) / "bundled-schemas"
        offline_builtin_schemas(builtin, bundled, objects)
        for o in objects:
            target = Path(tmp) / "objects" / o.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(o.text)
        args = [binary, "-output", "json", "-kubernetes-version", version,
                "-schema-location", f"{bundled}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json"]
        for location in options.locations:
            args += ["-schema-location", as_template(location)]
        args += ["-strict"] if options.strict else []
        args += ["-ignore-missing-schemas"] if options.ignore_missing_schemas else []
        args += [str(Path(tmp) / "objects")]
        result = subprocess.run(args, capture_output=True, text=True, check=False, timeout=600)
        try:  # exit 1 only means "invalid resources found" when the JSON report came with it
            resources = json.loads(result.stdout if result.stdout.strip() or result.returncode else "{}")
            resources = resources.get("resources") or []
        except (ValueError, AttributeError):
            raise KubeconformError(f"kubeconform printed no JSON report (exit {result.returncode}): "
                                   f"{result.stderr.strip()[:300]}") from None
        found: list[Finding] = []
        for resource in resources:
            filename = Path(resource.get("filename", "")).resolve()
            folder = (Path(tmp) / "objects").resolve()
            o = by_path.get(filename.relative_to(folder).as_posix()) if filename.is_relative_to(folder) else None
            if o is None or resource.get("status") not in ("statusInvalid", "statusError"):
                continue
            missing = resource.get("status") == "statusError" and str(resource.get("msg")).startswith("could not find")
            found += [(o, path, message, "schema-missing" if missing else "schema")
                      for path, message in kubeconform_errors(resource)]
        return found


def kubeconform_errors(resource: dict[str, Any]) -> list[tuple[JsonPath, str]]:
    """kubeconform's errors of one resource, at the deepest instance paths its message names.

    Its `validationErrors` stop at the first level of the schema (`/spec: validation failed`); the message
    holds the whole tree (`- at '/spec/replicas': got string, want null or integer`), so the leaves come
    from there. Unknown fields are located at their key, as the built-in engine does.
    """
    message = str(resource.get("msg", ""))
    tree = re.findall(r"- at '([^']*)': (.*?)(?= - at '|$)", message)
    leaves = [(p, m) for p, m in tree if not any(q != p and q.startswith(p.rstrip("/") + "/") for q, _ in tree)]
    if not leaves:
        leaves = [(e.get("path", ""), e.get("msg", "")) for e in resource.get("validationErrors") or []] or \
                 [("", message)]
    out: dict[JsonPath, list[str]] = {}  # one finding per path: a oneOf names each alternative at the same path
    for pointer, text in leaves:
        path = tuple(_json_pointer(pointer))
        unknown = re.fullmatch(r"additional propert(?:y|ies) (.+) not allowed", text.strip())
        if unknown:
            for key in re.findall(r"'([^']*)'", unknown.group(1)):
                out.setdefault(path + (key,), []).append(f"{UNKNOWN_FIELD}{key!r}: additional property not allowed")
        else:
            out.setdefault(path, []).append(text.strip())
    return [(path, "; ".join(messages) + " (kubeconform)") for path, messages in out.items()]


BUNDLED_DEFINITIONS = '"$ref": "/api/_definitions.json#'


def offline_builtin_schemas(builtin: Path, target: Path, objects: list[RenderedObject]) -> None:
    """The bundled Kubernetes schemas of these objects' kinds, as kubeconform can read them offline.

    kubernetes-validate's schemas carry `$id: https://kubernetes.io/api/...` and refer to
    `/api/_definitions.json`, which kubeconform would fetch from kubernetes.io; the copies drop the `$id`s and
    refer to the `_definitions.json` beside them (kubeconform's file names: `<kind><-group-version>.json`).
    """
    target.mkdir(parents=True)
    definitions = json.loads((builtin / "_definitions.json").read_text(encoding="utf-8"))
    definitions.pop("$id", None)
    (target / "_definitions.json").write_text(json.dumps(definitions), encoding="utf-8")
    for o in objects:
        group, _, version = str(o.obj.get("apiVersion", "")).rpartition("/")
        name = builtin_schema_file(group, version, str(o.obj.get("kind", "")))
        source, copy = builtin / name, target / name
        if source.is_file() and not copy.exists():
            schema = json.loads(source.read_text(encoding="utf-8").replace(BUNDLED_DEFINITIONS,
                                                                           '"$ref": "_definitions.json#'))
            schema.pop("$id", None)
            copy.write_text(json.dumps(schema), encoding="utf-8")


def _json_pointer(pointer: str) -> Iterable[str | int]:
    for part in pointer.strip("/").split("/") if pointer.strip("/") else []:
        part = part.replace("~1", "/").replace("~0", "~")
        yield int(part) if part.isdigit() else part


class _Locator:
    """Line and column of a JSON path in a rendered file, parsed only when a problem needs it."""

    def __init__(self) -> None:
        self.documents: dict[str, Document | None] = {}

    def where(self, o: RenderedObject, path: JsonPath, *, key: bool = False) -> tuple[int, int]:
        if o.path not in self.documents:
            try:
                self.documents[o.path] = parse_yaml(o.text, Path(o.path), o.path)
            except LoadError:
                self.documents[o.path] = None
        doc = self.documents[o.path]
        return doc.where(path, key=key) if doc is not None else (1, 1)
