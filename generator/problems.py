"""Problems found in user input, and the error types that carry exit codes."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a file: where it is, which field, and what is expected."""

    path: str
    line: int
    col: int
    field: str
    message: str

    def __str__(self) -> str:
        field = f" {self.field}:" if self.field else ""
        return f"{self.path}:{self.line}:{self.col}:{field} {self.message}"


class EndpointgenError(Exception):
    """A failure the user can fix; printed as one line, never as a traceback."""

    exit_code = EXIT_PROBLEMS


class ProblemsFound(EndpointgenError):
    """Validation found problems; all of them are carried so they print at once."""

    def __init__(self, problems: list[Problem]):
        super().__init__(f"{len(problems)} problem(s) found")
        self.problems = sorted(set(problems))


class UsageError(EndpointgenError):
    """The command line names something that does not exist (exit 2)."""

    exit_code = EXIT_USAGE


def display_path(path: Path, root: Path) -> str:
    """The path as a user should read it: relative to the repo root when inside it."""
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def format_problems(problems: list[Problem], output: str) -> str:
    """Render problems as `text` (path:line:col: field: message), `json` or `github` annotations."""
    if output == "json":
        return json.dumps([asdict(p) for p in problems], indent=2)
    if output == "github":
        return "\n".join(
            f"::error file={_escape(p.path, True)},line={p.line},col={p.col}::"
            f"{_escape(f'{p.field}: {p.message}' if p.field else p.message)}"
            for p in problems
        )
    return "\n".join(str(p) for p in problems)


def _escape(text: str, in_property: bool = False) -> str:
    """Escape text for a GitHub workflow command (`%`, line breaks, and `:`/`,` inside properties)."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if in_property else text
