"""Vendor the JSON Schemas of the custom resources endpointgen renders into schema/crds/.

The repository validates its output offline with these files, so a fresh
clone needs nothing from the network. `endpointgen vendor-schemas --from
LOCATION` refreshes them from a catalog: a folder laid out as
`{group}/{kind}_{version}.json` (the datreeio CRDs-catalog layout), a
kubeconform template, or an http(s) template. Every schema is read before
anything is written, so a catalog that lacks one leaves schema/crds as it was.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..output.writer import write_atomic
from ..problems import EndpointgenError
from ..render.templates import ALLOWED_KINDS
from .kubeschemas import SchemaError, SchemaStore, expand, is_builtin


def custom_resource_kinds() -> list[tuple[str, str]]:
    """(apiVersion, kind) of every custom resource endpointgen can render, sorted."""
    return sorted((api, kind) for kind, api in ALLOWED_KINDS.items() if not is_builtin(api.rpartition("/")[0]))


def schema_path(folder: Path, api_version: str, kind: str) -> Path:
    """Where a kind's schema lives in the kubeconform layout: {group}/{kind}_{version}.json."""
    group, _, version = api_version.rpartition("/")
    return folder / group / f"{kind.lower()}_{version}.json"


def vendor_schemas(location: str, target: Path) -> list[Path]:
    """Copy each rendered custom resource's schema from `location` into `target`; return the files written.

    Schemas of kinds endpointgen no longer renders are removed, so the folder holds exactly what it validates.
    """
    store = SchemaStore("1.33", [location], strict=True)
    found: dict[Path, str] = {}
    missing = []
    for api_version, kind in custom_resource_kinds():
        group, _, version = api_version.rpartition("/")
        source = expand(location, group, version, kind, "1.33", True)
        try:
            schema = store.read(source)
        except SchemaError as exc:
            raise EndpointgenError(str(exc)) from None
        if schema is None:
            missing.append(f"{api_version} {kind} (looked for {source})")
        else:  # a local file is copied byte for byte; a fetched one is written as the JSON it parsed to
            text = Path(source).read_text(encoding="utf-8") if Path(source).is_file() else json.dumps(schema, indent=2)
            found[schema_path(target, api_version, kind)] = text
    if missing:
        raise EndpointgenError("the catalog has no schema for " + "; ".join(missing) + "; nothing was written")
    for path, text in found.items():
        write_atomic(path, text)
    for stale in sorted(set(target.glob("*/*.json")) - set(found)):
        stale.unlink()
    for folder in sorted(p for p in target.iterdir() if p.is_dir() and not any(p.iterdir())):
        folder.rmdir()
    licence = Path(location) / "LICENSE"
    if "{{" not in location and licence.is_file():
        shutil.copyfile(licence, target / "LICENSE")
    return sorted(found)
