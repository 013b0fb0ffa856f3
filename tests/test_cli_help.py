"""The help a user reads: one-liners written whole, and each edit command's options with their units, defaults,
what is required, and an example that works on the example repository."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import click
import pytest

from render_helpers import PROJECT, copy_examples, run_cli

from generator.cli import cli
from generator.cli.edit import VERSION_FIELDS

EDIT_COMMANDS = ["new", "create-version", "update-version", "delete-version", "update", "promote", "import"]
COLUMNS = 80  # the terminal CliRunner reports
# Version fields measured in a unit: the option's help names it
UNITS = {"cpu_cores": "CPU cores", "memory_gb": "GB", "cpu_cores_limit": "CPU cores", "memory_gb_limit": "GB",
         "gpu_cores": "GPUs", "scoring_timeout_ms": "Milliseconds", "max_request_wait_time": "Milliseconds",
         "autoscale_refresh_seconds": "Seconds", "period_seconds": "Seconds", "initial_delay_seconds": "Seconds",
         "timeout_seconds": "Seconds", "autoscale_target_utilization": "Percent", "traffic_percentile": "Percent"}


def help_of(*command: str) -> str:
    result = run_cli(PROJECT, *command, "--help")
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_every_one_liner_is_written_whole_and_fits_a_line() -> None:
    listing = help_of().split("Commands:\n", 1)[1].splitlines()
    assert len(listing) == len(cli.commands)  # one line each: nothing wrapped
    for line in listing:
        name, short = line.split(None, 1)
        command = cli.commands[name]
        assert short == command.short_help, name  # written, not cut from the docstring
        assert not short.endswith("...") and len(line) <= COLUMNS, line


@pytest.mark.parametrize("name", EDIT_COMMANDS)
def test_edit_help_says_what_is_required_and_every_default(name: str) -> None:
    text = help_of(name)
    command = cli.commands[name]
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden and param.name != "help":
            assert param.help, f"{name} {param.opts[0]} has no help"
            if param.required:
                assert f"{param.opts[0]}" in text.split("Options:")[0], f"{name}: {param.opts[0]} not said required"
    for field in set(VERSION_FIELDS) & {p.name for p in command.params}:
        option = next(p for p in command.params if p.name == field)
        assert re.search(r" Default: .+\.$", option.help), field
        if field in UNITS:
            assert UNITS[field].lower() in option.help.lower(), field
    assert "Required:" in text and f"\n  Example:\n    endpointgen {name} " in text


@pytest.mark.parametrize("name", EDIT_COMMANDS)
def test_each_edit_commands_example_works(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    example = help_of(name).split("\n  Example:\n", 1)[1]
    args = shlex.split(example.replace("\\\n", " "))
    assert args[:2] == ["endpointgen", name]
    repo = copy_examples(tmp_path / "repo")
    monkeypatch.chdir(tmp_path)  # import's example reads serialize.json here: the SDK's own, for churn-endpoint
    shutil.copy(PROJECT / "tests/fixtures/sdkv1/endpoints/churn-endpoint/serialize.json", tmp_path)
    result = run_cli(repo, *args[1:])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("wrote environments/")
