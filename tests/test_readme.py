"""README's walkthrough is what the commands print: each block's `$ endpointgen ...` lines are run in order on a
copy of the example repository (rendered and committed as main), and their output must be the lines under them
(`…` stands for any lines). Each block is one pull request, merged into main before the next."""

from __future__ import annotations

import re
import shlex
import textwrap
from pathlib import Path

from render_helpers import PROJECT, copy_examples, run_cli
from test_edit_cli import git

ELIDED = "…"


def walkthrough() -> list[list[tuple[list[str], list[str]]]]:
    """Per code block of README's walkthrough: each command's argv and the output lines shown under it."""
    text = (PROJECT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Walkthrough:", 1)[1].split("\n## ", 1)[0]
    blocks = []
    for body in re.findall(r"^   ```\n(.*?)^   ```$", section, re.S | re.M):
        steps: list[tuple[list[str], list[str]]] = []
        command: list[str] = []
        for line in textwrap.dedent(body).splitlines():
            if command and command[-1].endswith("\\"):
                command[-1] = command[-1][:-1] + line.strip()
            elif line.startswith("$ "):
                command = [line[2:]]
                steps.append((command, []))
            else:
                steps[-1][1].append(line)
        blocks.append([(shlex.split(cmd[0]), output) for cmd, output in steps])
    return blocks


def shows(expected: list[str], printed: str) -> bool:
    """Whether the printed text is the expected lines, each `…` standing for any number of lines."""
    pattern = "".join(r"(?:.*\n)*?" if line == ELIDED else re.escape(line) + r"\n" for line in expected)
    return re.fullmatch(pattern, printed) is not None


def test_the_walkthrough_is_what_the_commands_print(tmp_path: Path) -> None:
    blocks = walkthrough()
    assert len(blocks) == 5 and all(blocks)
    repo = copy_examples(tmp_path / "repo")
    assert run_cli(repo, "render").exit_code == 0
    git(repo, "init", "-q", "-b", "main")
    for number, block in enumerate(blocks, 1):
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "--allow-empty", "-m", f"before step {number}")
        for argv, expected in block:
            assert argv[0] == "endpointgen", argv
            result = run_cli(repo, *argv[1:])
            assert result.exit_code == 0, (argv, result.output)
            assert shows(expected, result.output), f"step {number}: {shlex.join(argv)} printed:\n{result.output}"


def test_an_elision_stands_for_lines_not_for_anything() -> None:
    assert shows(["a", ELIDED, "d"], "a\nb\nc\nd\n") and shows(["a", ELIDED], "a\n")
    assert not shows(["a", "d"], "a\nb\nd\n") and not shows(["a", ELIDED, "d"], "a\nb\nd e\n")
