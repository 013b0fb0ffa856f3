"""An endpoint spec file as the edits read and write it: round-trip YAML in its own style, validated, atomic."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from ..layout import ENDPOINTS_DIR, ENVIRONMENTS_DIR, environment_names
from ..output.writer import write_atomic
from ..problems import EndpointgenError, Problem, ProblemsFound, UsageError, display_path
from ..spec.loader import LoadError, load_yaml
from ..spec.repository import load_repository


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


def check_edit(root: Path, env: str, path: Path, text: str,
               tolerated: Callable[[Problem], bool] = lambda problem: False) -> None:
    """EditRefused when `text` at `path` would bring a problem into the environment (in any of its files), other
    than those `tolerated` says the edit may bring."""
    known = {(p.path, p.field, p.message) for p in load_repository(root, [env]).problems}
    after = load_repository(root, [env], overrides={path: text}).problems
    mine = display_path(path, root)
    new = [p for p in after if (p.path == mine or (p.path, p.field, p.message) not in known) and not tolerated(p)]
    if new:
        raise EditRefused(new)


def save(root: Path, env: str, path: Path, text: str,
         tolerated: Callable[[Problem], bool] = lambda problem: False) -> None:
    """Write `text` atomically, unless it brings a problem into the environment (in any of its files) other than
    those `tolerated` says the edit may bring."""
    check_edit(root, env, path, text, tolerated)
    write_atomic(path, text)
