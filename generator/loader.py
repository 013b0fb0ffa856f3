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
MAX_SHOWN = 60  # characters of a bad value quoted in a message

FieldPath = tuple[str | int, ...]

_STR = "tag:yaml.org,2002:str"
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
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        shown = part if part.isprintable() and part.strip() == part and part else repr(part)
        out += f".{shown}" if out else shown
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
        raise LoadError(Problem(display, line, col, "", f"invalid YAML: {_reason(exc)}")) from None
    except yaml.reader.ReaderError as exc:
        line, col = _position(text, text.find(chr(exc.character)))
        message = f"invalid YAML: {exc.reason} (character {exc.character:#06x})"
        raise LoadError(Problem(display, line, col, "", message)) from None
    except yaml.YAMLError as exc:
        raise LoadError(Problem(display, 1, 1, "", f"invalid YAML: {_first_line(exc)}")) from None
    except RecursionError:
        raise LoadError(Problem(display, 1, 1, "", "invalid YAML: nested too deeply")) from None
    finally:
        loader.dispose()
    if node is None:
        raise LoadError(Problem(display, 1, 1, "", "file is empty; expected a YAML mapping"))
    doc = Document(path, display, None)
    doc.data = _Builder(doc, loader).build(node, (), 0)
    return doc


def _reason(exc: yaml.MarkedYAMLError) -> str:
    """PyYAML's problem text, with its context when the problem alone reads as half a sentence."""
    problem, context = exc.problem or "", exc.context or ""
    if context and (not problem or problem.startswith("but ")):
        return f"{context}, {problem}" if problem else context
    return problem or "invalid YAML"


def _first_line(exc: Exception) -> str:
    """The first line of an exception's text (PyYAML appends the input's position on later lines)."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _position(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, col) of a character offset (1:1 when unknown)."""
    if offset < 0:
        return 1, 1
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _shown(value: str) -> str:
    """A value quoted for a message, shortened so a huge value cannot flood the output."""
    return repr(value) if len(value) <= MAX_SHOWN else repr(value[:MAX_SHOWN]) + "..."


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
        if node.tag == _STR:
            return node.value
        kind = node.tag.rsplit(":", 1)[-1]
        try:
            value = self.loader.construct_object(node, deep=True)
        except Exception as exc:  # PyYAML raises KeyError, IndexError... for explicitly tagged junk
            detail = _reason(exc) if isinstance(exc, yaml.MarkedYAMLError) else (
                _first_line(exc) if isinstance(exc, (ValueError, OverflowError)) else "")
            message = f"invalid {kind} value {_shown(node.value)}" + (f": {detail}" if detail else "")
            raise self.fail(node, message) from None
        if isinstance(value, float) and value != value:
            raise self.fail(node, f"{_shown(node.value)} is NaN (not a number); write a number")
        return value

    def _mapping(self, node: yaml.MappingNode, path: FieldPath, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise self.fail(key_node, "merge keys (<<) are not supported; write the fields out")
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                shown = _shown(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "'a collection'"
                raise self.fail(key_node, f"mapping key {shown} is not a string; quote it")
            key = key_node.value
            if key in result:
                first = self.doc.key_positions[path + (key,)][0]
                raise self.fail(key_node, f"duplicate key {_shown(key)} (first defined on line {first})")
            mark = key_node.start_mark
            self.doc.key_positions[path + (key,)] = (mark.line + 1, mark.column + 1)
            result[key] = self.build(value_node, path + (key,), depth + 1)
        return result
