"""Find and compile JSON Schemas for Kubernetes objects, kubeconform-style, offline by default.

Built-in kinds use the strict schemas that the `kubernetes-validate` package
bundles for each Kubernetes minor version. Custom resources use schema
locations: a folder (laid out as `{group}/{kind}_{version}.json`), or a
kubeconform template such as `dir/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json`.
An http(s) location is fetched only because the user named it, and cached.
Each schema is read and compiled once per run (jsonschema-rs).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs

from ..layout import VENDORED_SCHEMAS
from ..spec.defaults import kubernetes_minor

VENDORED_DIR = VENDORED_SCHEMAS
DEFAULT_TEMPLATE = "{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"
# The schemas kubernetes-validate bundles, found without importing it (its import is slow).
BUILTIN_ROOT = Path(importlib.util.find_spec("kubernetes_validate").origin).resolve().parent / "kubernetes-json-schema"  # type: ignore[arg-type,union-attr]
_VARIABLE = re.compile(r"\{\{\s*\.(\w+)\s*\}\}")


class SchemaError(Exception):
    """A schema location or file is unusable (not a missing schema: that is reported per object)."""


@cache
def builtin_versions() -> list[tuple[int, int]]:
    found = {tuple(int(x) for x in re.findall(r"\d+", p.name)[:2]) for p in BUILTIN_ROOT.glob("v*-local")}
    return sorted(found)  # type: ignore[arg-type]


def builtin_dir(kubernetes_version: str, strict: bool) -> Path:
    """The bundled schema folder for the newest version not newer than `kubernetes_version`."""
    wanted = kubernetes_minor(kubernetes_version)
    candidates = [v for v in builtin_versions() if v <= wanted]
    if not candidates:
        raise SchemaError(f"no bundled Kubernetes schemas for {kubernetes_version}; oldest is "
                          f"{'.'.join(map(str, builtin_versions()[0]))}")
    major, minor = candidates[-1]
    return BUILTIN_ROOT / f"v{major}.{minor}.0-local{'-strict' if strict else ''}"


class SchemaStore:
    """Compiled validators by (apiVersion, kind), loaded on first use."""

    def __init__(self, kubernetes_version: str, locations: list[str], *, strict: bool = True,
                 cache_dir: Path | None = None):
        self.kubernetes_version = kubernetes_version
        self.locations = locations
        self.strict = strict
        self.cache_dir = cache_dir
        self.builtin = builtin_dir(kubernetes_version, strict)
        self._validators: dict[tuple[str, str], Any] = {}
        self._definitions: Any = None

    def validator(self, api_version: str, kind: str) -> Any | None:
        """The compiled validator for this apiVersion and kind, or None when no schema exists."""
        key = (api_version, kind)
        if key not in self._validators:
            self._validators[key] = self._compile(api_version, kind)
        return self._validators[key]

    def warm(self, kinds: Iterable[tuple[str, str]]) -> None:
        """Compile the validators of these (kind, apiVersion) pairs now; a schema that fails is reported on use."""
        for kind, api_version in kinds:
            try:
                self.validator(api_version, kind)
            except SchemaError:
                pass

    def _compile(self, api_version: str, kind: str) -> Any | None:
        group, _, version = api_version.rpartition("/")
        schema = self._builtin_schema(group, version, kind) if is_builtin(group) else None
        source = str(self.builtin)
        if schema is None:
            for location in self.locations:
                source = expand(location, group, version, kind, self.kubernetes_version, self.strict)
                schema = self.read(source)
                if schema is not None:
                    break
        if schema is None:
            return None
        try:
            return jsonschema_rs.validator_for(schema, retriever=self._retrieve)
        except Exception as exc:  # jsonschema-rs raises ValueError and friends for broken schemas
            raise SchemaError(f"schema {source} for {api_version}/{kind} does not compile: {exc}") from None

    def _builtin_schema(self, group: str, version: str, kind: str) -> Any | None:
        path = self.builtin / builtin_schema_file(group, version, kind)
        return json.loads(path.read_text()) if path.is_file() else None

    def _retrieve(self, uri: str) -> Any:
        if uri.endswith("_definitions.json"):
            if self._definitions is None:
                self._definitions = json.loads((self.builtin / "_definitions.json").read_text())
            return self._definitions
        raise SchemaError(f"schema refers to {uri}, which is not available offline")

    def read(self, source: str) -> Any | None:
        """The schema at a file path or http(s) URL; None when there is none."""
        if source.startswith(("http://", "https://")):
            return self._fetch(source)
        path = Path(source)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise SchemaError(f"cannot read schema {source}: {exc}") from None

    def _fetch(self, url: str) -> Any | None:
        cached = self.cache_dir / (hashlib.sha256(url.encode()).hexdigest() + ".json") if self.cache_dir else None
        if cached is not None and cached.is_file():
            text = cached.read_text()
            return None if text == "null" else json.loads(text)
        try:
            with urllib.request.urlopen(url, timeout=15) as response:  # noqa: S310 - the user named this URL
                schema = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise SchemaError(f"cannot fetch schema {url}: HTTP {exc.code}") from None
            schema = None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise SchemaError(f"cannot fetch schema {url}: {exc}") from None
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_text(json.dumps(schema))
        return schema


def builtin_schema_file(group: str, version: str, kind: str) -> str:
    """A bundled Kubernetes schema's file name (kubeconform's too): deployment-apps-v1.json, service-v1.json."""
    short = group.split(".")[0]
    return f"{kind.lower()}-{short + '-' if short else ''}{version}.json"


def is_builtin(group: str) -> bool:
    """Kinds of the core API and *.k8s.io groups: schemas bundled with kubernetes-validate, not CRDs."""
    return "." not in group or group.endswith(".k8s.io")


def as_template(location: str) -> str:
    """The location as a kubeconform template: a plain folder or URL gets the `{group}/{kind}_{version}.json` layout.

    (kubeconform itself would give a plain location the kubernetes-json-schema layout instead.)
    """
    if "{{" not in location and not location.endswith(".json"):
        return location.rstrip("/") + "/" + DEFAULT_TEMPLATE
    return location


def expand(location: str, group: str, version: str, kind: str, kubernetes_version: str, strict: bool) -> str:
    """Fill a kubeconform schema-location template; a plain folder gets the default layout."""
    location = as_template(location)
    normalized = f"v{kubernetes_version}.0" if kubernetes_version.count(".") == 1 else f"v{kubernetes_version}"
    values = {
        "Group": group,
        "ResourceKind": kind.lower(),
        "ResourceAPIVersion": version,
        "KindSuffix": f"-{group.split('.')[0]}-{version}" if group else f"-{version}",
        "NormalizedKubernetesVersion": normalized,
        "StrictSuffix": "-strict" if strict else "",
    }

    def replace(match: re.Match[str]) -> str:
        if match.group(1) not in values:
            raise SchemaError(f"unknown variable {{{{ .{match.group(1)} }}}} in schema location {location}")
        return values[match.group(1)]

    return _VARIABLE.sub(replace, location)
