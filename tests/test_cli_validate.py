"""The `validate` and `effective` commands: exit codes, output formats, and the traffic report."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from conftest import PROJECT, VERSION_BODY, patch_spec, replace_in, spec_path, write_spec

from click.testing import CliRunner

from generator import cli as cli_module
from generator.cli import cli
from generator.layout import find_root
from render_helpers import copy_examples

Run = Callable[[list[str]], Result]
PROBLEM_LINE = re.compile(r"^(?P<path>[^:\s]+):(?P<line>\d+):(?P<col>\d+): (?:(?P<field>[^:\s]+): )?(?P<message>.+)$")


def break_two_specs(repo: Path) -> None:
    """One problem in a dev spec and one in a prod spec."""
    replace_in(spec_path(repo, "sentiment", "dev"), "traffic_percentile: 50", "traffic_percentile: 150")
    replace_in(spec_path(repo, "image-classifier", "prod"), "gpu_cores: 1", "gpu_cores: 1.5")


def table_rows(output: str) -> list[list[str]]:
    lines = output.strip().splitlines()
    return [re.split(r"\s{2,}", line.strip()) for line in lines[2:]]


# --- validate --------------------------------------------------------------------------------------

def test_validate_examples_ok(run_cli: Run) -> None:
    result = run_cli(["validate"])
    assert result.exit_code == 0, result.stderr
    assert re.fullmatch(r"ok: \d+ endpoint\(s\) in \d+ environment\(s\) are valid; \d+ rendered object\(s\) pass the "
                        r"schema, API-server and policy checks\n", result.stdout)
    assert result.stderr == ""


def test_validate_one_environment(run_cli: Run, repo: Path) -> None:
    replace_in(spec_path(repo, "sentiment", "prod"), "traffic_percentile: 10\n", "traffic_percentile: 110\n")
    assert run_cli(["validate", "--env", "dev"]).exit_code == 0
    assert run_cli(["validate", "--env", "prod"]).exit_code == 1


def test_validate_reports_every_problem_on_stderr(run_cli: Run, repo: Path) -> None:
    break_two_specs(repo)
    result = run_cli(["validate"])
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == "endpointgen: 2 problem(s) found"
    problems = [PROBLEM_LINE.match(line) for line in lines[:-1]]
    assert all(problems), lines
    assert [(m["path"], m["field"]) for m in problems] == [  # type: ignore[index]
        ("environments/dev/endpoints/sentiment.yaml", "versions[1].traffic_percentile"),
        ("environments/prod/endpoints/image-classifier.yaml", "versions[0].gpu_cores"),
    ]
    assert lines[0].endswith(": versions[1].traffic_percentile: must be <= 100, got 150")
    assert "Traceback" not in result.stderr


def test_validate_text_location_is_exact(run_cli: Run, repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\nversions:\n  - version_name: blue\n    num_replicas: 0\n" + VERSION_BODY)
    result = run_cli(["validate", "--env", "dev"])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        "environments/dev/endpoints/demo.yaml:4:19: versions[0].num_replicas: must be >= 1, got 0")


def test_validate_unknown_env_is_a_usage_error(run_cli: Run) -> None:
    result = run_cli(["validate", "--env", "staging"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "endpointgen: error: unknown environment(s) staging; available: dev, prod"


def test_validate_root_without_environments_is_a_usage_error(tmp_path: Path) -> None:
    from click.testing import CliRunner

    result = CliRunner().invoke(cli_module.cli, ["--root", str(tmp_path), "validate"], catch_exceptions=False)
    assert result.exit_code == 2
    assert result.stderr.startswith("endpointgen: error: no environments found")


def test_validate_json_output(run_cli: Run, repo: Path) -> None:
    break_two_specs(repo)
    result = run_cli(["validate", "--output", "json"])
    assert result.exit_code == 1
    assert result.stderr == ""
    problems = json.loads(result.stdout)
    assert len(problems) == 2
    assert [sorted(p) for p in problems] == [["col", "context", "field", "line", "message", "path", "rule", "subject", "waiver"]] * 2
    first = problems[0]
    assert first["path"] == "environments/dev/endpoints/sentiment.yaml"
    assert first["field"] == "versions[1].traffic_percentile"
    assert first["message"] == "must be <= 100, got 150"
    assert isinstance(first["line"], int) and isinstance(first["col"], int)


def test_validate_json_output_when_valid_is_an_empty_list(run_cli: Run) -> None:
    result = run_cli(["validate", "--output", "json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []


def test_validate_github_output(run_cli: Run, repo: Path) -> None:
    break_two_specs(repo)
    result = run_cli(["validate", "--output", "github"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    pattern = re.compile(r"^::error file=(?P<file>[^,]+),line=(?P<line>\d+),col=(?P<col>\d+)::(?P<text>.+)$")
    matches = [pattern.match(line) for line in lines[:-1]]
    assert all(matches), lines
    assert matches[0]["file"] == "environments/dev/endpoints/sentiment.yaml"  # type: ignore[index]
    assert matches[0]["text"] == "versions[1].traffic_percentile: must be <= 100, got 150"  # type: ignore[index]


def test_github_output_escapes_percent_and_omits_an_empty_field(run_cli: Run, repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\nversions:\n  - version_name: blue\n    traffic_percentile: 60\n"
               + VERSION_BODY + "  - version_name: green\n    is_default: true\n" + VERSION_BODY
               + "  - version_name: red\n    traffic_percentile: 50\n" + VERSION_BODY)
    write_spec(repo, "empty", "")
    result = run_cli(["validate", "--env", "dev", "--output", "github"])
    lines = result.stderr.strip().splitlines()
    assert lines[0] == ("::error file=environments/dev/endpoints/demo.yaml,line=3,col=3::versions: "
                        "traffic_percentile of the non-default versions sums to 110%25 (blue 60 + red 50), more than "
                        "100%25; the default version 'green' takes what the others leave")
    assert lines[1] == ("::error file=environments/dev/endpoints/empty.yaml,line=1,col=1::"
                        "file is empty; expected a YAML mapping")


def test_validate_broken_yaml_is_one_line_not_a_traceback(run_cli: Run, repo: Path) -> None:
    spec_path(repo, "broken").write_bytes(b"name: broken\nversions: [\x00\n")
    write_spec(repo, "bomb", "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdefg", "bcdefgh")))
    result = run_cli(["validate", "--env", "dev"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "environments/dev/endpoints/bomb.yaml:1:35: document expands to more than 100000 values (alias bomb?)",
        "environments/dev/endpoints/broken.yaml:1:1: file is binary (contains NUL bytes); expected a YAML text file",
        "endpointgen: 2 problem(s) found",
    ]


# --- effective -------------------------------------------------------------------------------------

MSFT_STEP_1 = """\
name: msft
versions:
  - version_name: aaa
    is_default: true
    traffic_percentile: 20
{body}  - version_name: bbb
    traffic_percentile: 10
{body}"""

MSFT_STEP_2 = """\
name: msft
versions:
  - version_name: aaa
    traffic_percentile: 20
{body}  - version_name: bbb
    is_default: true
    traffic_percentile: 40
{body}"""


def test_effective_microsoft_example_step_1_table(run_cli: Run, repo: Path) -> None:
    write_spec(repo, "msft", MSFT_STEP_1.format(body=VERSION_BODY))
    result = run_cli(["effective", "msft", "--env", "dev"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == "endpoint msft (environment dev, namespace ml-endpoints-dev)"
    assert table_rows(result.stdout) == [
        ["aaa", "default", "20", "90%", "90"],
        ["bbb", "-", "10", "10%", "10"],
    ]


def test_effective_microsoft_example_step_2_table(run_cli: Run, repo: Path) -> None:
    write_spec(repo, "msft", MSFT_STEP_2.format(body=VERSION_BODY))
    result = run_cli(["effective", "msft", "--env", "dev"])
    assert result.exit_code == 0, result.stderr
    assert table_rows(result.stdout) == [
        ["aaa", "-", "20", "20%", "20"],
        ["bbb", "default", "40", "80%", "80"],
    ]


@pytest.mark.parametrize(("template", "shares"), [(MSFT_STEP_1, [90, 10]), (MSFT_STEP_2, [20, 80])],
                         ids=["a-default", "b-default"])
def test_effective_microsoft_example_json(run_cli: Run, repo: Path, template: str, shares: list[int]) -> None:
    write_spec(repo, "msft", template.format(body=VERSION_BODY))
    result = run_cli(["effective", "msft", "--env", "dev", "--output", "json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["endpoint"] == "msft" and data["environment"] == "dev"
    assert [(v["version_name"], v["effective_percent"], v["route_weight"]) for v in data["versions"]] == [
        ("aaa", shares[0], shares[0]), ("bbb", shares[1], shares[1])]
    assert [v["is_default"] for v in data["versions"]] == [template is MSFT_STEP_1, template is MSFT_STEP_2]


def test_effective_microsoft_example_on_the_example_spec(run_cli: Run, repo: Path) -> None:
    """The same two steps applied to the dev sentiment spec: blue plays a, green plays b."""
    def step_1(spec: dict[str, Any]) -> None:
        blue, green = spec["versions"]
        blue.update(is_default=True, traffic_percentile=20)
        green["traffic_percentile"] = 10

    def step_2(spec: dict[str, Any]) -> None:
        blue, green = spec["versions"]
        del blue["is_default"]
        green.update(is_default=True, traffic_percentile=40)

    patch_spec(repo, "sentiment", step_1)
    first = json.loads(run_cli(["effective", "sentiment", "--env", "dev", "--output", "json"]).stdout)
    assert [(v["version_name"], v["effective_percent"]) for v in first["versions"]] == [("blue", 90), ("green", 10)]
    patch_spec(repo, "sentiment", step_2)
    second = json.loads(run_cli(["effective", "sentiment", "--env", "dev", "--output", "json"]).stdout)
    assert [(v["version_name"], v["effective_percent"]) for v in second["versions"]] == [("blue", 20), ("green", 80)]


def test_effective_fractional_shares_round_to_100(run_cli: Run, repo: Path) -> None:
    write_spec(repo, "thirds", "name: thirds\nversions:\n  - version_name: aaa\n" + VERSION_BODY
               + "  - version_name: bbb\n    traffic_percentile: 33.3\n" + VERSION_BODY
               + "  - version_name: ccc\n    traffic_percentile: 33.3\n    is_control_version_type: true\n"
               + VERSION_BODY)
    result = run_cli(["effective", "thirds", "--env", "dev"])
    assert result.exit_code == 0, result.stderr
    assert table_rows(result.stdout) == [
        ["aaa", "default", "-", "33.4%", "34"],
        ["bbb", "-", "33.3", "33.3%", "33"],
        ["ccc", "control", "33.3", "33.3%", "33"],
    ]


def test_effective_unknown_endpoint_is_a_usage_error(run_cli: Run) -> None:
    result = run_cli(["effective", "nope", "--env", "dev"])
    assert result.exit_code == 2
    assert "no endpoint 'nope' in environment 'dev' (have: image-classifier, sentiment)" in result.stderr


def test_effective_unknown_env_is_a_usage_error(run_cli: Run) -> None:
    result = run_cli(["effective", "sentiment", "--env", "staging"])
    assert result.exit_code == 2
    assert "unknown environment(s) staging" in result.stderr


def test_effective_needs_env(run_cli: Run) -> None:
    result = run_cli(["effective", "sentiment"])
    assert result.exit_code == 2
    assert "Missing option '--env'" in result.stderr


def test_effective_on_an_invalid_environment_reports_the_problems(run_cli: Run, repo: Path) -> None:
    replace_in(spec_path(repo, "sentiment", "dev"), "traffic_percentile: 50", "traffic_percentile: 150")
    result = run_cli(["effective", "sentiment", "--env", "dev"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == "endpointgen: 1 problem(s) found"


# --- entry points ------------------------------------------------------------------------------------

def test_python_dash_m_help() -> None:
    result = subprocess.run([sys.executable, "-m", "generator", "--help"], cwd=PROJECT,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "Usage: endpointgen" in result.stdout
    assert "validate" in result.stdout and "effective" in result.stdout


def test_python_dash_m_validate_on_a_repo(repo: Path) -> None:
    replace_in(spec_path(repo, "sentiment", "dev"), "traffic_percentile: 50", "traffic_percentile: 150")
    result = subprocess.run([sys.executable, "-m", "generator", "--root", str(repo), "validate"], cwd=PROJECT,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert result.stderr.splitlines()[0].startswith("environments/dev/endpoints/sentiment.yaml:")


def test_unexpected_errors_exit_3_with_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                                repo: Path) -> None:
    def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("generator.spec.repository.load_repository", explode)
    monkeypatch.setattr("generator.pipeline.validation.validate_manifests", explode)
    monkeypatch.delenv("ENDPOINTGEN_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["endpointgen", "--root", str(repo), "validate"])
    with pytest.raises(SystemExit) as info:
        cli_module.main()
    assert info.value.code == 3
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "endpointgen: internal error: RuntimeError: disk on fire (set ENDPOINTGEN_DEBUG=1 for the traceback)"]


def test_a_command_run_in_a_subfolder_works_on_the_repository_above(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """As git finds its repository: the nearest folder upward with environments/; --root still wins."""
    repo = copy_examples(tmp_path / "repo")
    assert CliRunner().invoke(cli, ["--root", str(repo), "render"]).exit_code == 0
    deep = repo / "environments" / "prod" / "endpoints"
    monkeypatch.chdir(deep)
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 0, result.stderr
    assert find_root(deep) == Path("../../..")
    (repo / "environments/prod/endpoints/sentiment.yaml").write_text("name: [")
    result = CliRunner().invoke(cli, ["validate", "--specs-only"])
    assert result.exit_code == 1 and "environments/prod/endpoints/sentiment.yaml:2:1: invalid YAML" in result.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert find_root(elsewhere) == Path(".")
    monkeypatch.chdir(elsewhere)
    assert CliRunner().invoke(cli, ["--root", str(repo), "check", "--env", "dev"]).exit_code == 0
    assert "no environments found" in CliRunner().invoke(cli, ["check"]).stderr
