"""Problems found in user input, and the error types that carry exit codes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable
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
    subject: str = ""  # the Kubernetes object, for problems in rendered manifests: Kind namespace/name
    rule: str = ""  # the rule or policy id, for problems in rendered manifests
    waiver: str = ""  # the reason an endpoint gave for waiving this policy
    context: str = ""  # for a rendered object's problem traced to a spec: where it was rendered (or the spec)

    def __str__(self) -> str:
        field = f" {self.field}:" if self.field else ""
        text = f"{self.path}:{self.line}:{self.col}:{field} {self.message}"
        text += f" [{self.rule}]" if self.rule else ""
        about = "; ".join(part for part in (self.subject, self.context) if part)
        text += f" ({about})" if about else ""
        return text + (f" -- waived: {self.waiver}" if self.waiver else "")


class EndpointgenError(Exception):
    """A failure the user can fix; printed as one line, never as a traceback."""

    exit_code = EXIT_PROBLEMS


class ProblemsFound(EndpointgenError):
    """Validation found problems; all of them are carried so they print at once."""

    summary = ""  # said after the count, e.g. that nothing was written

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
    if output == "junit":
        return junit(problems)
    if output == "github":
        return "\n".join(
            f"::{'notice' if p.waiver else 'error'} file={_escape(p.path, True)},line={p.line},col={p.col}::"
            f"{_escape(f'{p.field}: {p.message}' if p.field else p.message)}"
            + (_escape(f" ({p.context})") if p.context else "")
            + (_escape(f" [{p.rule}] waived: {p.waiver}") if p.waiver else "")
            for p in problems
        )
    return "\n".join(str(p) for p in problems)


def _escape(text: str, in_property: bool = False) -> str:
    """Escape text for a GitHub workflow command (`%`, line breaks, and `:`/`,` inside properties)."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if in_property else text


def junit(problems: list[Problem], files: Iterable[str] = ()) -> str:
    """JUnit XML: a testsuite per file, a testcase per object, a failure per problem."""
    by_file: dict[str, dict[str, list[Problem]]] = {}
    for p in problems:
        by_file.setdefault(p.path, {}).setdefault(p.subject or p.path, []).append(p)
    for path in sorted(files):
        by_file.setdefault(path, {})
    suites = ET.Element("testsuites", name="endpointgen", tests=str(max(len(by_file), 1)),
                        failures=str(len(problems)))
    for path, cases in sorted(by_file.items()):
        suite = ET.SubElement(suites, "testsuite", name=path, tests=str(max(len(cases), 1)),
                              failures=str(sum(len(c) for c in cases.values())))
        if not cases:
            ET.SubElement(suite, "testcase", name=path, classname=path)
        for subject, found in sorted(cases.items()):
            case = ET.SubElement(suite, "testcase", name=subject, classname=path)
            for p in found:
                failure = ET.SubElement(case, "failure", message=f"{p.field}: {p.message}" if p.field else p.message,
                                        type=p.rule or "spec")
                failure.text = str(p)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True)
