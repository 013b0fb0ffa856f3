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

from ..problems import Problem

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


@dataclass
class Document:
    """A loaded YAML file: its data and where each value (and each mapping key) sits.

    The positions are worked out (from the text, parsed again) the first time a problem asks for one: a
    valid file never needs them.
    """

    path: Path
    display: str
    data: Any
    text: str | None = field(default=None, repr=False, compare=False)
    _positions: dict[FieldPath, tuple[int, int]] | None = field(default=None, repr=False, compare=False)
    _key_positions: dict[FieldPath, tuple[int, int]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def positions(self) -> dict[FieldPath, tuple[int, int]]:
        """1-based (line, col) of every value, by its path."""
        if self._positions is None:
            self._positions = {}
            if self.text is not None:
                loader = _Loader(self.text)
                try:
                    _locate(loader.get_single_node(), (), self._positions, self._key_positions)
                finally:
                    loader.dispose()
        return self._positions

    @property
    def key_positions(self) -> dict[FieldPath, tuple[int, int]]:
        """1-based (line, col) of every mapping key, by the path of its value."""
        self.positions  # noqa: B018 - computes both tables
        return self._key_positions

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
    doc = Document(path, display, None, text=text)
    doc.data = _Builder(doc, loader).build(node, 0)
    return doc


def _locate(node: yaml.Node, path: FieldPath, positions: dict[FieldPath, tuple[int, int]],
            key_positions: dict[FieldPath, tuple[int, int]]) -> None:
    """Record where `node` (at `path`) and everything under it start (node trees of valid documents only)."""
    positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            mark = key_node.start_mark
            key_positions.setdefault(path + (key_node.value,), (mark.line + 1, mark.column + 1))
            _locate(value_node, path + (key_node.value,), positions, key_positions)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _locate(item, path + (index,), positions, key_positions)


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

    def build(self, node: yaml.Node, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail(node, f"document expands to more than {MAX_NODES} values (alias bomb?)")
        if depth > MAX_DEPTH:
            raise self.fail(node, f"document is nested more than {MAX_DEPTH} levels deep")
        tag, kind = node.tag, type(node)
        if kind is yaml.ScalarNode and tag == _STR:
            return node.value
        construct = _SCALARS.get(tag) if kind is yaml.ScalarNode else None
        if construct is None:
            if kind is yaml.MappingNode and tag == _MAP:
                return self._mapping(node, depth)
            if kind is yaml.SequenceNode and tag == _SEQ:
                return [self.build(item, depth + 1) for item in node.value]
            if tag in (_MAP, _SEQ):
                found = {yaml.ScalarNode: "scalar", yaml.SequenceNode: "sequence"}.get(kind, "mapping")
                shown = f" {_shown(node.value)}" if kind is yaml.ScalarNode else ""
                raise self.fail(node, f"invalid {tag.rsplit(':', 1)[-1]} value{shown}: expected a "
                                      f"{'mapping' if tag == _MAP else 'sequence'} node, but found {found}")
            raise self.fail(node, f"unsupported YAML tag {tag!r}; use plain YAML values")
        try:
            value = construct(self.loader, node)
        except Exception as exc:  # PyYAML raises KeyError, IndexError... for explicitly tagged junk
            detail = _reason(exc) if isinstance(exc, yaml.MarkedYAMLError) else (
                _first_line(exc) if isinstance(exc, (ValueError, OverflowError)) else "")
            message = f"invalid {tag.rsplit(':', 1)[-1]} value {_shown(node.value)}" + (f": {detail}" if detail else "")
            raise self.fail(node, message) from None
        if isinstance(value, float) and value != value:
            raise self.fail(node, f"{_shown(node.value)} is NaN (not a number); write a number")
        return value

    def _mapping(self, node: yaml.MappingNode, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag != _STR or not isinstance(key_node, yaml.ScalarNode):
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise self.fail(key_node, "merge keys (<<) are not supported; write the fields out")
                shown = _shown(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "'a collection'"
                raise self.fail(key_node, f"mapping key {shown} is not a string; quote it")
            key = key_node.value
            if key in result:
                first = next(k for k, _ in node.value if k.value == key).start_mark.line + 1
                raise self.fail(key_node, f"duplicate key {_shown(key)} (first defined on line {first})")
            result[key] = self.build(value_node, depth + 1)
        return result


_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_SCALARS: dict[str, Any] = {  # how PyYAML's SafeConstructor builds each standard scalar tag
    "tag:yaml.org,2002:int": yaml.constructor.SafeConstructor.construct_yaml_int,
    "tag:yaml.org,2002:float": yaml.constructor.SafeConstructor.construct_yaml_float,
    "tag:yaml.org,2002:bool": yaml.constructor.SafeConstructor.construct_yaml_bool,
    "tag:yaml.org,2002:null": yaml.constructor.SafeConstructor.construct_yaml_null,
    "tag:yaml.org,2002:timestamp": yaml.constructor.SafeConstructor.construct_yaml_timestamp,
}
