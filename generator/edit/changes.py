"""What an edit changes, and the round-trip operations that apply it to a spec's YAML.

Values are put in AksEndpoint's field order; comments, key order, quoting and
blank lines of the rest of the file survive (ruamel.yaml round-trip nodes).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml as pyyaml
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.scalarstring import ScalarString, SingleQuotedScalarString
from ruamel.yaml.tokens import CommentToken

from ..problems import EndpointgenError, UsageError

# The order fields take in a version that endpointgen writes.
VERSION_ORDER = [
    "version_name", "description", "is_default", "is_control_version_type", "traffic_percentile", "tags",
    "properties", "models", "inference_config", "cpu_cores", "memory_gb", "cpu_cores_limit", "memory_gb_limit",
    "gpu_cores", "autoscale_enabled", "autoscale_min_replicas", "autoscale_max_replicas",
    "autoscale_refresh_seconds", "autoscale_target_utilization", "num_replicas", "scoring_timeout_ms",
    "scoring_retries", "replica_max_concurrent_requests", "max_request_wait_time", "period_seconds",
    "initial_delay_seconds", "timeout_seconds", "success_threshold", "failure_threshold", "collect_model_data",
    "run_as_user", "run_as_group", "image_entrypoint", "scoring_workload_identity",
]
ENDPOINT_ORDER = [
    "name", "namespace", "description", "tags", "properties", "auth_enabled", "token_auth_enabled", "auth_keys",
    "required_roles", "required_scopes", "enable_app_insights", "workload_identity_client_id", "compute_target_name", "waivers", "versions",
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


def find_version(data: Any, version: str) -> tuple[int, CommentedMap]:
    for index, item in enumerate(data["versions"]):
        if isinstance(item, Mapping) and item.get("version_name") == version:
            return index, item
    names = ", ".join(str(v.get("version_name")) for v in data["versions"] if isinstance(v, Mapping))
    raise UsageError(f"no version {version!r} in endpoint {data.get('name')!r} (have: {names})")


# ruamel keeps the blank and comment lines that follow a block node on the node's last scalar entry. Adding or
# removing an entry at the end of a mapping or sequence would leave those lines in the wrong place (a blank
# line that separated two versions would end up inside the first), so these helpers move them along.

def _end(holder: Any, key: Any) -> tuple[Any, Any]:
    """The (collection, key) of the last scalar entry of holder[key]: where the lines after it are kept."""
    node = holder[key]
    while isinstance(node, (CommentedMap, CommentedSeq)) and len(node) and not node.fa.flow_style():
        holder, key = node, (list(node)[-1] if isinstance(node, CommentedMap) else len(node) - 1)
        node = holder[key]
    return holder, key


def _take_lines(holder: Any, key: Any) -> str:
    """Remove and return the blank and comment lines after holder[key] (an inline comment stays)."""
    holder, key = _end(holder, key)
    slot = 2 if isinstance(holder, CommentedMap) else 0
    entry = holder.ca.items.get(key)
    token = entry[slot] if entry and len(entry) > slot else None
    if token is None or "\n" not in token.value:
        return ""
    inline, _, lines = token.value.partition("\n")
    if inline:
        token.value = inline + "\n"
    else:
        entry[slot] = None
    return lines


def _give_lines(holder: Any, key: Any, lines: str) -> None:
    """Write blank and comment lines after holder[key]."""
    if not lines:
        return
    holder, key = _end(holder, key)
    slot = 2 if isinstance(holder, CommentedMap) else 0
    entry = holder.ca.items.setdefault(key, [None, None, None, None])
    if entry[slot] is None:
        entry[slot] = CommentToken("\n" + lines, CommentMark(0), None)
    else:
        entry[slot].value += lines


_YAML11 = pyyaml.resolver.Resolver()


def quoted(value: Any) -> Any:
    """`value` with quotes on each string that YAML 1.1 would read as something else (`on`, `no`, `1:30`).

    ruamel writes YAML 1.2 and quotes only what 1.2 would misread, but specs are read as YAML 1.1 (PyYAML).
    """
    if isinstance(value, str) and not isinstance(value, ScalarString):
        plain = _YAML11.resolve(pyyaml.ScalarNode, value, (True, False)) == "tag:yaml.org,2002:str"
        return value if plain else SingleQuotedScalarString(value)
    if isinstance(value, Mapping) and not isinstance(value, CommentedMap):
        return CommentedMap((quoted(k), quoted(v)) for k, v in value.items())
    if isinstance(value, list) and not isinstance(value, CommentedSeq):
        return CommentedSeq(quoted(v) for v in value)
    return value


def put(mapping: CommentedMap, key: str, value: Any, order: list[str]) -> None:
    """Set a key (new values are quoted as YAML 1.1 needs); a new key goes where `order` puts it."""
    key, value = quoted(key), quoted(value)
    if key in mapping:
        lines = _take_lines(mapping, key)
        mapping[key] = value
        _give_lines(mapping, key, lines)
        return
    rank = order.index(key) if key in order else len(order)
    position = len(mapping)
    for index, existing in enumerate(mapping):
        if (order.index(existing) if existing in order else len(order)) > rank:
            position = index
            break
    lines = _take_lines(mapping, list(mapping)[-1]) if position == len(mapping) and mapping else ""
    mapping.insert(position, key, value)
    _give_lines(mapping, key, lines)


def remove(mapping: CommentedMap, key: str) -> None:
    """Delete a key if it is there; the lines after it stay where they were."""
    if key not in mapping:
        return
    index = list(mapping).index(key)
    lines = _take_lines(mapping, key)
    del mapping[key]
    if index > 0:
        _give_lines(mapping, list(mapping)[index - 1], lines)


def append_item(items: CommentedSeq, item: Any) -> None:
    """Append to a sequence: the lines after the old last item (say, a closing comment) follow the new one."""
    lines = _take_lines(items, len(items) - 1) if items else ""
    items.append(item)
    _take_lines(items, len(items) - 1)  # a copied item's lines belonged to the sequence it came from
    _give_lines(items, len(items) - 1, lines)


def delete_item(items: CommentedSeq, index: int) -> None:
    """Delete a sequence item with the comment lines just above it; the lines after it stay."""
    before = _take_lines(items, index - 1).splitlines(keepends=True) if index else []
    after = _take_lines(items, index).splitlines(keepends=True)
    del items[index]
    if index:
        blank = max((i for i, row in enumerate(before) if not row.strip()), default=-1)
        kept = before[:blank + 1] + after[next((i for i, row in enumerate(after) if row.strip()), len(after)):]
        _give_lines(items, index - 1, "".join(kept))


def replace_item(items: CommentedSeq, index: int, item: Any) -> None:
    """Replace a sequence item; the lines after the old one follow the new one."""
    lines = _take_lines(items, index)
    items[index] = item
    _take_lines(items, index)
    _give_lines(items, index, lines)


def apply_changes(target: CommentedMap, changes: Changes, order: list[str], what: str) -> None:
    """Apply one command's changes to a version (or endpoint) mapping."""
    for name in changes.unset:
        if name not in order:
            raise UsageError(f"--unset {name}: no such field (fields: {', '.join(order)})")
        if name in ("version_name", "inference_config", "name", "versions"):
            raise EndpointgenError(f"{name} is required and cannot be unset")
        if name == "properties" and target.get("properties"):
            raise EndpointgenError(f"{what} properties cannot be unset: a property, once deployed, never "
                                   "disappears")
        remove(target, name)
    for key, value in changes.values.items():
        put(target, key, value, order)
    if changes.tags or changes.remove_tags:
        tags = target.get("tags") or CommentedMap()
        for key in changes.remove_tags:
            remove(tags, key)
        for key, value in changes.tags.items():
            put(tags, key, value, [])
        if tags:
            put(target, "tags", tags, order)
        else:
            remove(target, "tags")
    if changes.properties:
        properties = target.get("properties") or CommentedMap()
        for key, value in changes.properties.items():
            if key in properties and properties[key] != value:
                raise EndpointgenError(f"{what} property {key!r} is {properties[key]!r}; properties never change "
                                       "once deployed (add a new key instead)")
            put(properties, key, value, [])
        put(target, "properties", properties, order)
    if changes.models:
        put(target, "models", changes.models, order)
    if changes.inference or changes.environment_variables:
        config = target.get("inference_config") or CommentedMap()
        for key, value in changes.inference.items():
            put(config, key, value, ["image", "entry_script", "source_directory", "environment_variables"])
        if changes.environment_variables:
            variables = config.get("environment_variables") or CommentedMap()
            for key, value in changes.environment_variables.items():
                put(variables, key, value, [])
            put(config, "environment_variables", variables, ["image", "entry_script", "source_directory",
                                                             "environment_variables"])
        put(target, "inference_config", config, order)


def clear_exclusive(data: Any, chosen: CommentedMap, changes: Changes) -> None:
    """Setting is_default or is_control_version_type on one version clears it on the others (as the SDK does)."""
    for flag in EXCLUSIVE_FLAGS:
        if changes.values.get(flag) is True:
            for other in data["versions"]:
                if other is not chosen and isinstance(other, CommentedMap):
                    remove(other, flag)


MODEL = re.compile(r"^(?P<name>[^:=]+):(?P<version>[^=]+)=(?P<uri>.+)$")


def split_model(text: str, expected: str) -> tuple[str, str, str]:
    """`--model name:version=value` -> (name, version, value); a usage error showing `expected` otherwise."""
    match = MODEL.match(text)
    if not match:
        raise UsageError(f"--model {text!r}: expected {expected}")
    return match["name"], match["version"], match["uri"]


def parse_model(text: str) -> dict[str, Any]:
    """`name:version=uri` -> {name, version, uri} (a numeric version becomes an integer)."""
    name, version, uri = split_model(text, "name:version=uri")
    return {"name": name, "version": int(version) if version.isdigit() else version, "uri": uri}


def parse_pair(text: str, option: str) -> tuple[str, str]:
    """`key=value` -> (key, value)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"{option} {text!r}: expected key=value")
    return key, value
