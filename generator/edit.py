"""Edit endpoint specs as AksEndpoint's methods change a service: comments kept, validated, atomic.

Every edit loads the spec with ruamel.yaml's round-trip mode (comments, key
order, quoting and blank lines survive), applies the change, validates the
whole environment with the new text in place of the file, and only then
writes it (temporary file + rename). An invalid edit writes nothing.
"""

from __future__ import annotations

import copy
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from .loader import LoadError, load_yaml
from .problems import EndpointgenError, ProblemsFound, UsageError, display_path
from .repository import ENDPOINTS_DIR, ENVIRONMENTS_DIR, environment_names, load_repository
from .writer import write_atomic

# The order fields take in a version that endpointgen writes.
VERSION_ORDER = [
    "version_name", "description", "is_default", "is_control_version_type", "traffic_percentile", "tags",
    "properties", "models", "inference_config", "cpu_cores", "memory_gb", "cpu_cores_limit", "memory_gb_limit",
    "gpu_cores", "autoscale_enabled", "autoscale_min_replicas", "autoscale_max_replicas",
    "autoscale_refresh_seconds", "autoscale_target_utilization", "num_replicas", "scoring_timeout_ms",
    "scoring_retries", "replica_max_concurrent_requests", "max_request_wait_time", "period_seconds",
    "initial_delay_seconds", "timeout_seconds", "success_threshold", "failure_threshold", "collect_model_data",
]
ENDPOINT_ORDER = [
    "name", "namespace", "description", "tags", "properties", "auth_enabled", "token_auth_enabled", "auth_keys",
    "enable_app_insights", "compute_target_name", "waivers", "versions",
]
EXCLUSIVE_FLAGS = ("is_default", "is_control_version_type")


@dataclass
class Changes:
    """What an edit command asks for: plain values plus map edits, already typed."""

    values: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    remove_tags: list[str] = field(default_factory=list)
    properties: dict[str, str] = field(default_factory=dict)
    inference: dict[str, Any] = field(default_factory=dict)
    environment_variables: dict[str, str] = field(default_factory=dict)
    models: list[dict[str, Any]] = field(default_factory=list)
    unset: list[str] = field(default_factory=list)


def spec_file(root: Path, env: str, endpoint: str) -> Path:
    return root / ENVIRONMENTS_DIR / env / ENDPOINTS_DIR / f"{endpoint}.yaml"


def yaml_for(text: str) -> YAML:
    """A round-trip YAML instance that writes with the indentation the file already uses."""
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    mapping, offset = _indentation(text)
    yaml.indent(mapping=mapping, sequence=mapping + offset, offset=offset)
    return yaml


def _indentation(text: str) -> tuple[int, int]:
    """(mapping indent, sequence dash offset) as used in the text; (2, 2) when it does not say."""
    mapping: int | None = None
    offset: int | None = None
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    for current, following in zip(lines, lines[1:]):
        if not current.rstrip().endswith(":"):
            continue
        parent = len(current) - len(current.lstrip(" -"))
        child = len(following) - len(following.lstrip(" "))
        if following.lstrip().startswith("- ") and offset is None:
            offset = child - parent
        elif not following.lstrip().startswith("- ") and mapping is None and child > parent:
            mapping = child - parent
    return mapping or 2, offset if offset is not None else 2


def load_spec(root: Path, env: str, endpoint: str) -> tuple[Path, str, Any]:
    """The spec's path, text and round-trip data; a missing spec is a usage error."""
    if env not in environment_names(root):
        raise UsageError(f"unknown environment {env!r}; available: {', '.join(environment_names(root)) or 'none'}")
    path = spec_file(root, env, endpoint)
    if not path.is_file():
        raise UsageError(f"no endpoint {endpoint!r} in environment {env!r} (expected {display_path(path, root)})")
    try:
        load_yaml(path, display_path(path, root))  # the same safety checks as validate, before ruamel reads it
    except LoadError as exc:
        raise ProblemsFound([exc.problem]) from None
    text = path.read_text(encoding="utf-8")
    data = yaml_for(text).load(text)
    if not isinstance(data, CommentedMap) or not isinstance(data.get("versions"), CommentedSeq):
        raise EndpointgenError(f"{display_path(path, root)} is not an endpoint spec with a versions list; "
                               "run `endpointgen validate`")
    return path, text, data


def dump(data: Any, like: str) -> str:
    out = io.StringIO()
    yaml_for(like).dump(data, out)
    return out.getvalue()


def save(root: Path, env: str, path: Path, text: str) -> None:
    """Validate the environment with `text` as the file's content, then write it atomically."""
    repo = load_repository(root, [env], overrides={path: text})
    mine = display_path(path, root)
    env_file = display_path(root / ENVIRONMENTS_DIR / env / "environment.yaml", root)
    problems = [p for p in repo.problems if p.path in (mine, env_file)]
    if problems:
        raise ProblemsFound(problems)
    write_atomic(path, text)


def find_version(data: Any, version: str) -> tuple[int, CommentedMap]:
    for index, item in enumerate(data["versions"]):
        if isinstance(item, Mapping) and item.get("version_name") == version:
            return index, item
    names = ", ".join(str(v.get("version_name")) for v in data["versions"] if isinstance(v, Mapping))
    raise UsageError(f"no version {version!r} in endpoint {data.get('name')!r} (have: {names})")


def put(mapping: CommentedMap, key: str, value: Any, order: list[str]) -> None:
    """Set a key; a new key goes where `order` puts it among the keys already there."""
    if key in mapping:
        mapping[key] = value
        return
    rank = order.index(key) if key in order else len(order)
    position = len(mapping)
    for index, existing in enumerate(mapping):
        if (order.index(existing) if existing in order else len(order)) > rank:
            position = index
            break
    mapping.insert(position, key, value)


def apply_changes(target: CommentedMap, changes: Changes, order: list[str], what: str) -> None:
    """Apply one command's changes to a version (or endpoint) mapping."""
    for name in changes.unset:
        if name in ("version_name", "models", "inference_config", "name", "versions"):
            raise EndpointgenError(f"{name} is required and cannot be unset")
        target.pop(name, None)
    for key, value in changes.values.items():
        put(target, key, value, order)
    if changes.tags or changes.remove_tags:
        tags = target.get("tags") or CommentedMap()
        for key in changes.remove_tags:
            tags.pop(key, None)
        tags.update(changes.tags)
        if tags:
            put(target, "tags", tags, order)
        else:
            target.pop("tags", None)
    if changes.properties:
        properties = target.get("properties") or CommentedMap()
        for key, value in changes.properties.items():
            if key in properties and properties[key] != value:
                raise EndpointgenError(f"{what} property {key!r} is {properties[key]!r}; properties never change "
                                       "once deployed (add a new key instead)")
            properties[key] = value
        put(target, "properties", properties, order)
    if changes.models:
        put(target, "models", CommentedSeq(CommentedMap(m) for m in changes.models), order)
    if changes.inference or changes.environment_variables:
        config = target.get("inference_config") or CommentedMap()
        for key, value in changes.inference.items():
            put(config, key, value, ["image", "entry_script", "source_directory", "environment_variables"])
        if changes.environment_variables:
            variables = config.get("environment_variables") or CommentedMap()
            variables.update(changes.environment_variables)
            put(config, "environment_variables", variables, ["image", "entry_script", "source_directory",
                                                             "environment_variables"])
        put(target, "inference_config", config, order)


def clear_exclusive(data: Any, chosen: CommentedMap, changes: Changes) -> None:
    """Setting is_default or is_control_version_type on one version clears it on the others (as the SDK does)."""
    for flag in EXCLUSIVE_FLAGS:
        if changes.values.get(flag) is True:
            for other in data["versions"]:
                if other is not chosen and isinstance(other, Mapping) and flag in other:
                    del other[flag]


def new_endpoint(root: Path, env: str, endpoint: str, version: str, endpoint_changes: Changes,
                 version_changes: Changes) -> Path:
    """`AksEndpoint.deploy_configuration` plus the first deploy: a new spec with one (default) version."""
    if env not in environment_names(root):
        raise UsageError(f"unknown environment {env!r}; available: {', '.join(environment_names(root)) or 'none'}")
    path = spec_file(root, env, endpoint)
    if path.exists():
        raise EndpointgenError(f"{display_path(path, root)} already exists; use create-version or update")
    data = CommentedMap([("name", endpoint)])
    apply_changes(data, endpoint_changes, ENDPOINT_ORDER, "endpoint")
    first = CommentedMap([("version_name", version)])
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
    item = CommentedMap([("version_name", version)])
    apply_changes(item, changes, VERSION_ORDER, f"version {version}")
    data["versions"].append(item)
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
    del data["versions"][index]
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
        block.pop(flag, None)
    apply_changes(block, changes, VERSION_ORDER, f"version {version}")
    path = spec_file(root, target, endpoint)
    if target not in environment_names(root):
        raise UsageError(f"unknown environment {target!r}; available: {', '.join(environment_names(root))}")
    if not path.is_file():
        data = CommentedMap((k, copy.deepcopy(v)) for k, v in source_data.items() if k not in ENV_SPECIFIC)
        data["versions"] = CommentedSeq([block])
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
        data["versions"][existing[0]] = block
    else:
        data["versions"].append(block)
    clear_exclusive(data, block, changes)
    save(root, target, path, dump(data, text))
    return path


MODEL = re.compile(r"^(?P<name>[^:=]+):(?P<version>[^=]+)=(?P<uri>.+)$")


def parse_model(text: str) -> dict[str, Any]:
    """`name:version=uri` -> {name, version, uri} (a numeric version becomes an integer)."""
    match = MODEL.match(text)
    if not match:
        raise UsageError(f"--model {text!r}: expected name:version=uri")
    version: Any = match["version"]
    return {"name": match["name"], "version": int(version) if version.isdigit() else version, "uri": match["uri"]}


def parse_pair(text: str, option: str) -> tuple[str, str]:
    """`key=value` -> (key, value)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"{option} {text!r}: expected key=value")
    return key, value
