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

import yaml as pyyaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.scalarstring import ScalarString, SingleQuotedScalarString
from ruamel.yaml.tokens import CommentToken

from .loader import LoadError, load_yaml
from .problems import EndpointgenError, ProblemsFound, UsageError, display_path
from .layout import ENDPOINTS_DIR, ENVIRONMENTS_DIR, environment_names
from .repository import load_repository
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
    """environments/<env>/endpoints/<endpoint>.yaml; a name that is not a plain file name is a usage error."""
    if not endpoint or endpoint != Path(endpoint).name or endpoint.startswith("."):
        raise UsageError(f"{endpoint!r} is not an endpoint name")
    return root / ENVIRONMENTS_DIR / env / ENDPOINTS_DIR / f"{endpoint}.yaml"


def yaml_for(text: str) -> YAML:
    """A round-trip YAML instance that writes with the indentation the file already uses."""
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    mapping, sequence, offset = _indentation(text)
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    return yaml


def _indentation(text: str) -> tuple[int, int, int]:
    """(mapping indent, sequence indent, dash offset) as used in the text; (2, 4, 2) when it does not say.

    The sequence indent is where an item's content starts: the dash offset plus the dash and the spaces after it.
    """
    mapping: int | None = None
    sequence, offset = 4, None
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    for current, following in zip(lines, lines[1:]):
        if not current.rstrip().endswith(":"):
            continue
        parent = len(current) - len(current.lstrip(" -"))
        item = following.lstrip(" ")
        child = len(following) - len(item)
        if item.startswith("- ") and offset is None:
            offset = child - parent
            sequence = offset + len(item) - len(item[1:].lstrip(" "))
        elif not item.startswith("- ") and mapping is None and child > parent:
            mapping = child - parent
    return mapping or 2, sequence, offset if offset is not None else 2


# The blank lines, comments and `---` opening a file: kept verbatim (ruamel would drop or move some of them).
_HEAD = re.compile(r"\A(?:(?:[ \t]*(?:#[^\n]*)?|---[ \t]*(?:#[^\n]*)?)\r?\n)*")


def _head(text: str) -> str:
    return _HEAD.match(text).group(0)  # type: ignore[union-attr]  # the pattern matches every text


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
    text = path.read_bytes().decode("utf-8")  # not read_text: that would turn \r\n line ends into \n
    data = yaml_for(text).load(text[len(_head(text)):])
    if not isinstance(data, CommentedMap) or not isinstance(data.get("versions"), CommentedSeq):
        raise EndpointgenError(f"{display_path(path, root)} is not an endpoint spec with a versions list; "
                               "run `endpointgen validate`")
    return path, text, data


def dump(data: Any, like: str) -> str:
    """`data` as YAML in the style of the text `like`: its indentation, line ends and opening lines."""
    out = io.StringIO()
    yaml_for(like).dump(data, out)
    text = out.getvalue()
    if not like.replace("\r\n", "\n").endswith("\n\n"):  # a blank line that ended a deleted version is not the end of the file
        text = text.rstrip("\n") + "\n"
    if "\r\n" in like:
        text = text.replace("\r\n", "\n").replace("\n", "\r\n")
    return _head(like) + text


class EditRefused(ProblemsFound):
    """The edited spec would not validate; nothing was written."""

    summary = "the edit was not written; lines refer to the spec as it would have been"


def check_edit(root: Path, env: str, path: Path, text: str) -> None:
    """EditRefused when `text` at `path` would bring a problem into the environment (in any of its files)."""
    known = {(p.path, p.field, p.message) for p in load_repository(root, [env]).problems}
    after = load_repository(root, [env], overrides={path: text}).problems
    mine = display_path(path, root)
    new = [p for p in after if p.path == mine or (p.path, p.field, p.message) not in known]
    if new:
        raise EditRefused(new)


def save(root: Path, env: str, path: Path, text: str) -> None:
    """Write `text` atomically, unless it brings a problem into the environment (in any of its files)."""
    check_edit(root, env, path, text)
    write_atomic(path, text)


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
