"""Load a YAML file into plain data plus the line and column of every value.

PyYAML's C parser composes the node tree; we build the Python values
ourselves so that we can record positions, refuse duplicate keys, and stop
alias bombs, runaway nesting and non-standard tags before they cost anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .problems import Problem

try:  # the C loader is much faster; fall back to pure Python where libyaml is missing
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader

MAX_FILE_BYTES = 1024 * 1024
MAX_NODES = 100_000
MAX_DEPTH = 64

FieldPath = tuple[str | int, ...]

_STANDARD_TAGS = {
    "tag:yaml.org,2002:" + name
    for name in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp")
}


@dataclass
class Document:
    """A loaded YAML file: its data and where each value (and each mapping key) sits."""

    path: Path
    display: str
    data: Any
    positions: dict[FieldPath, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[FieldPath, tuple[int, int]] = field(default_factory=dict)

    def where(self, path: FieldPath, *, key: bool = False) -> tuple[int, int]:
        """1-based (line, col) of the value at `path`, or of its nearest parent that exists."""
        table = self.key_positions if key else self.positions
        while path not in table and path:
            if key and path in self.positions:
                return self.positions[path]
            path = path[:-1]
        return table.get(path, self.positions.get(path, (1, 1)))

    def problem(self, path: FieldPath, message: str, *, key: bool = False) -> Problem:
        line, col = self.where(path, key=key)
        return Problem(self.display, line, col, format_field(path), message)


class LoadError(Exception):
    """The file cannot be read as YAML data; carries a single positioned problem."""

    def __init__(self, problem: Problem):
        super().__init__(str(problem))
        self.problem = problem


def format_field(path: FieldPath) -> str:
    """`('versions', 1, 'cpu_cores')` -> `versions[1].cpu_cores`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_yaml(path: Path, display: str) -> Document:
    """Read and parse one YAML file; raise LoadError with a clear message on any bad input."""

    def fail(message: str, line: int = 1, col: int = 1) -> LoadError:
        return LoadError(Problem(display, line, col, "", message))

    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise fail(f"file is {size} bytes; specs are limited to {MAX_FILE_BYTES} bytes")
        raw = path.read_bytes()
    except OSError as exc:
        raise fail(f"cannot read file: {exc.strerror or exc}") from None
    if b"\0" in raw:
        raise fail("file is binary (contains NUL bytes); expected a YAML text file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise fail(f"file is not valid UTF-8 (byte {exc.start}); expected a YAML text file") from None
    return parse_yaml(text, path, display)


def parse_yaml(text: str, path: Path, display: str) -> Document:
    """Parse YAML text holding exactly one document into a Document."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        reason = exc.problem or exc.context or "invalid YAML"
        raise LoadError(Problem(display, line, col, "", f"invalid YAML: {reason}")) from None
    except yaml.YAMLError as exc:
        raise LoadError(Problem(display, 1, 1, "", f"invalid YAML: {exc}")) from None
    except RecursionError:
        raise LoadError(Problem(display, 1, 1, "", "invalid YAML: nested too deeply")) from None
    finally:
        loader.dispose()
    if node is None:
        raise LoadError(Problem(display, 1, 1, "", "file is empty; expected a YAML mapping"))
    doc = Document(path, display, None)
    doc.data = _Builder(doc, loader).build(node, (), 0)
    return doc


class _Builder:
    """Turns a composed node tree into plain Python values, recording positions."""

    def __init__(self, doc: Document, loader: yaml.SafeLoader):
        self.doc = doc
        self.loader = loader
        self.nodes = 0

    def fail(self, node: yaml.Node, message: str) -> LoadError:
        mark = node.start_mark
        return LoadError(Problem(self.doc.display, mark.line + 1, mark.column + 1, "", message))

    def build(self, node: yaml.Node, path: FieldPath, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail(node, f"document expands to more than {MAX_NODES} values (alias bomb?)")
        if depth > MAX_DEPTH:
            raise self.fail(node, f"document is nested more than {MAX_DEPTH} levels deep")
        if node.tag not in _STANDARD_TAGS:
            raise self.fail(node, f"unsupported YAML tag {node.tag!r}; use plain YAML values")
        self.doc.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
        try:
            return self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            raise self.fail(node, f"invalid scalar {node.value!r}: {exc}") from None

    def _mapping(self, node: yaml.MappingNode, path: FieldPath, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise self.fail(key_node, "merge keys (<<) are not supported; write the fields out")
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else "a collection"
                raise self.fail(key_node, f"mapping key {shown!r} is not a string; quote it")
            key = key_node.value
            if key in result:
                first = self.doc.key_positions[path + (key,)][0]
                raise self.fail(key_node, f"duplicate key {key!r} (first defined on line {first})")
            mark = key_node.start_mark
            self.doc.key_positions[path + (key,)] = (mark.line + 1, mark.column + 1)
            result[key] = self.build(value_node, path + (key,), depth + 1)
        return result
