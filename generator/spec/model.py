"""The loaded repository: environments and endpoints with their effective settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..problems import Problem
from .defaults import effective_endpoint, effective_version, key_references
from .loader import Document, FieldPath
from .traffic import default_index, effective_shares


@dataclass
class Environment:
    """One environment (one AKS cluster), from environments/<name>/environment.yaml."""

    name: str
    doc: Document

    @property
    def settings(self) -> dict[str, Any]:
        return self.doc.data  # type: ignore[no-any-return]

    @property
    def defaults(self) -> dict[str, Any]:
        return self.settings.get("defaults", {})  # type: ignore[no-any-return]


@dataclass
class Version:
    """One version of an endpoint: what the spec says and its effective settings."""

    index: int
    name: str
    spec: dict[str, Any]
    settings: dict[str, Any]
    is_default: bool
    share: Decimal


@dataclass
class Endpoint:
    """One endpoint spec in one environment, with defaults applied."""

    env: Environment
    doc: Document
    settings: dict[str, Any]
    versions: list[Version] = field(default_factory=list)

    @classmethod
    def build(cls, env: Environment, doc: Document) -> Endpoint:
        spec: dict[str, Any] = doc.data
        settings = effective_endpoint(spec, env.settings["namespace"])
        specs = spec["versions"]
        default = default_index(specs)
        shares = effective_shares(specs)
        versions = [
            Version(i, v["version_name"], v, effective_version(v, env.defaults), i == default, shares[i])
            for i, v in enumerate(specs)
        ]
        return cls(env, doc, settings, versions)

    @property
    def name(self) -> str:
        return self.settings["name"]  # type: ignore[no-any-return]

    @property
    def namespace(self) -> str:
        return self.settings["namespace"]  # type: ignore[no-any-return]

    @property
    def key_refs(self) -> dict[str, Any] | None:
        """The Key Vault and secret names of the scoring keys (None without key auth)."""
        return key_references(self.name, self.settings, self.env.settings)

    def problem(self, path: FieldPath, message: str) -> Problem:
        """A problem at a field of the spec (or its nearest parent)."""
        return self.doc.problem(path, message)

    def version_problem(self, version: Version, field_name: str, message: str) -> Problem:
        """A problem with a version's effective field, located where its value came from.

        A value set in the version points at the spec; one inherited from the
        environment's defaults points at the environment file; a built-in
        default points at the version itself.
        """
        if field_name in version.spec:
            return self.doc.problem(("versions", version.index, field_name), message)
        if field_name in self.env.defaults:
            located = self.env.doc.problem(("defaults", field_name), message)
            field_path = f"versions[{version.index}].{field_name} (from defaults.{field_name})"
            inherited = f"{message} (in {self.doc.display})"  # several endpoints may inherit the same entry
            return Problem(located.path, located.line, located.col, field_path, inherited)
        return self.doc.problem(("versions", version.index, field_name), f"{message} (default value)")
