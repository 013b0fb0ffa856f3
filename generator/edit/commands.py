"""The spec edits, one per AksEndpoint method (deploy, create/update/delete_version, update), and promote.

Every edit loads the spec with ruamel.yaml's round-trip mode (comments, key
order, quoting and blank lines survive), applies the change, validates the
whole environment with the new text in place of the file, and only then
writes it (temporary file + rename). An invalid edit writes nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from ..layout import environment_names
from ..problems import EndpointgenError, UsageError, display_path
from .changes import (Changes, ENDPOINT_ORDER, EXCLUSIVE_FLAGS, VERSION_ORDER, append_item, apply_changes,
                      clear_exclusive, delete_item, find_version, put, quoted, remove, replace_item)
from .specfile import dump, load_spec, save, spec_file


def new_endpoint(root: Path, env: str, endpoint: str, version: str, endpoint_changes: Changes,
                 version_changes: Changes) -> Path:
    """`AksEndpoint.deploy_configuration` plus the first deploy: a new spec with one (default) version."""
    if env not in environment_names(root):
        raise UsageError(f"unknown environment {env!r}; available: {', '.join(environment_names(root)) or 'none'}")
    path = spec_file(root, env, endpoint)
    if path.exists():
        raise EndpointgenError(f"{display_path(path, root)} already exists; use create-version or update")
    data = CommentedMap([("name", quoted(endpoint))])
    apply_changes(data, endpoint_changes, ENDPOINT_ORDER, "endpoint")
    first = CommentedMap([("version_name", quoted(version))])
    apply_changes(first, version_changes, VERSION_ORDER, f"version {version}")
    data["versions"] = CommentedSeq([first])
    text = f"# Endpoint {endpoint}: created with `endpointgen new`.\n" + dump(data, "a:\n  b: 1\nc:\n  - d: 1\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    save(root, env, path, text)
    return path


def create_version(root: Path, env: str, endpoint: str, version: str, changes: Changes) -> Path:
    """`AksEndpoint.create_version`: append a version."""
    path, text, data = load_spec(root, env, endpoint)
    if any(isinstance(v, Mapping) and v.get("version_name") == version for v in data["versions"]):
        raise EndpointgenError(f"endpoint {endpoint!r} already has a version {version!r}; use update-version")
    item = CommentedMap([("version_name", quoted(version))])
    apply_changes(item, changes, VERSION_ORDER, f"version {version}")
    append_item(data["versions"], item)
    clear_exclusive(data, item, changes)
    save(root, env, path, dump(data, text))
    return path


def update_version(root: Path, env: str, endpoint: str, version: str, changes: Changes) -> Path:
    """`AksEndpoint.update_version`: change the given fields, leave the rest (properties included) alone."""
    path, text, data = load_spec(root, env, endpoint)
    _, item = find_version(data, version)
    apply_changes(item, changes, VERSION_ORDER, f"version {version}")
    clear_exclusive(data, item, changes)
    save(root, env, path, dump(data, text))
    return path


def delete_version(root: Path, env: str, endpoint: str, version: str, new_default: str | None) -> Path:
    """`AksEndpoint.delete_version`: never the last version; the default only with a named successor."""
    path, text, data = load_spec(root, env, endpoint)
    index, item = find_version(data, version)
    if len(data["versions"]) == 1:
        raise EndpointgenError(f"{version!r} is the last version of {endpoint!r}; an endpoint needs at least one "
                               "(remove the spec file to remove the endpoint)")
    flagged = [v for v in data["versions"] if isinstance(v, Mapping) and v.get("is_default") is True]
    is_default = item in flagged or (not flagged and index == 0)
    if is_default and new_default is None:
        raise EndpointgenError(f"{version!r} is the default version of {endpoint!r}; name its successor with "
                               "--new-default VERSION")
    delete_item(data["versions"], index)
    if new_default is not None:
        _, successor = find_version(data, new_default)
        clear_exclusive(data, successor, Changes(values={"is_default": True}))
        put(successor, "is_default", True, VERSION_ORDER)
    save(root, env, path, dump(data, text))
    return path


def update_endpoint(root: Path, env: str, endpoint: str, changes: Changes) -> Path:
    """`AksEndpoint.update`: endpoint-level settings."""
    path, text, data = load_spec(root, env, endpoint)
    apply_changes(data, changes, ENDPOINT_ORDER, "endpoint")
    save(root, env, path, dump(data, text))
    return path


ENV_SPECIFIC = ("namespace", "compute_target_name", "auth_keys")


def promote(root: Path, endpoint: str, version: str, source: str, target: str, changes: Changes) -> Path:
    """Copy a version's block to another environment's spec (creating the spec when it is the first)."""
    _, _, source_data = load_spec(root, source, endpoint)
    _, block = find_version(source_data, version)
    block = copy.deepcopy(block)
    for flag in (*EXCLUSIVE_FLAGS, "traffic_percentile"):
        remove(block, flag)
    apply_changes(block, changes, VERSION_ORDER, f"version {version}")
    path = spec_file(root, target, endpoint)
    if target not in environment_names(root):
        raise UsageError(f"unknown environment {target!r}; available: {', '.join(environment_names(root))}")
    if not path.is_file():
        data = CommentedMap((k, copy.deepcopy(v)) for k, v in source_data.items() if k not in ENV_SPECIFIC)
        data["versions"] = CommentedSeq()
        append_item(data["versions"], block)
        text = (f"# Endpoint {endpoint}: promoted from {source} with `endpointgen promote`.\n"
                + dump(data, "a:\n  b: 1\nc:\n  - d: 1\n"))
        save(root, target, path, text)
        return path
    path, text, data = load_spec(root, target, endpoint)
    existing = [i for i, v in enumerate(data["versions"]) if isinstance(v, Mapping) and v.get("version_name") == version]
    if existing:
        old = data["versions"][existing[0]]
        for flag in (*EXCLUSIVE_FLAGS, "traffic_percentile"):
            if flag in old and flag not in block:
                put(block, flag, old[flag], VERSION_ORDER)
        deployed = old.get("properties") or {}  # deployed in the target: they stay, unchanged
        properties = block.get("properties") or CommentedMap()
        for key, value in deployed.items():
            if key in properties and properties[key] != value:
                raise EndpointgenError(f"version {version} property {key!r} is {value!r} in {target} but "
                                       f"{properties[key]!r} in {source}; properties never change once deployed")
            put(properties, key, value, [])
        if properties:
            put(block, "properties", properties, VERSION_ORDER)
        replace_item(data["versions"], existing[0], block)
    else:
        append_item(data["versions"], block)
    clear_exclusive(data, block, changes)
    save(root, target, path, dump(data, text))
    return path
