"""How edits write a spec: exactly the lines that change, in the file's own style; nothing when invalid; atomically.

Every test compares the whole text of the file before and after an edit.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import Result
from conftest import spec_path, write_spec
from test_edit_cli import BODY, PROD_SENTIMENT, base, changed, load, ok  # noqa: F401 - base is a fixture

from generator.edit.changes import parse_model, parse_pair
from generator.edit.specfile import EditRefused, _indentation
from generator.output import writer
from generator.problems import UsageError

Run = Callable[[list[str]], Result]


def edit(root: Path, run_cli: Run, name: str, env: str, args: list[str]) -> tuple[str, str]:
    """Run an edit command that must succeed on one spec; (text before, text after)."""
    path = spec_path(root, name, env)
    before = path.read_bytes().decode("utf-8")
    result = run_cli(args)
    assert result.exit_code == 0, result.stderr
    return before, path.read_bytes().decode("utf-8")


def replaced(text: str, old: str, new: str) -> str:
    """`text` with its one occurrence of `old` replaced."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


# --- the example spec: one edit, one line -----------------------------------------------------------

def test_changing_a_value_changes_exactly_one_line(base: Path, run_cli: Run) -> None:
    before, after = edit(base, run_cli, "sentiment", "prod",
                         ["update-version", "sentiment", "green", "--env", "prod", "--traffic-percentile", "20"])
    assert after == replaced(before, "    traffic_percentile: 10\n", "    traffic_percentile: 20\n")
    assert changed(base) == [f" M {PROD_SENTIMENT}"]


def test_a_new_version_field_goes_in_its_place(base: Path, run_cli: Run) -> None:
    before, after = edit(base, run_cli, "sentiment", "prod",
                         ["update-version", "sentiment", "green", "--env", "prod", "--tag", "stage=canary",
                          "--scoring-timeout-ms", "5000"])
    expected = replaced(before, "    traffic_percentile: 10\n", "    traffic_percentile: 10\n    tags:\n"
                                                               "      stage: canary\n")
    expected = replaced(expected, "    memory_gb_limit: 4\n    collect_model_data: true\n",
                        "    memory_gb_limit: 4\n    scoring_timeout_ms: 5000\n    collect_model_data: true\n")
    assert after == expected


def test_a_field_added_at_the_end_of_a_version_stays_above_the_blank_line(base: Path, run_cli: Run) -> None:
    before, after = edit(base, run_cli, "sentiment", "prod",
                         ["update-version", "sentiment", "blue", "--env", "prod", "--scoring-timeout-ms", "5000",
                          "--collect-model-data"])
    assert after == replaced(before, "    autoscale_target_utilization: 60\n\n",
                             "    autoscale_target_utilization: 60\n    scoring_timeout_ms: 5000\n"
                             "    collect_model_data: true\n\n")


def test_endpoint_edits_keep_quoting_and_comments(base: Path, run_cli: Run) -> None:
    before, after = edit(base, run_cli, "sentiment", "prod",
                         ["update", "sentiment", "--env", "prod", "--tag", "owner=ml", "--property", "tier=gold",
                          "--description", "Review sentiment"])
    expected = replaced(before, '  cost-center: "4711"\n', '  cost-center: "4711"\n  owner: ml\n')
    expected = replaced(expected, "  owner: reviews-ml@contoso.com\n", "  owner: reviews-ml@contoso.com\n  tier: gold\n")
    expected = replaced(expected, "description: Sentiment of customer reviews (positive / neutral / negative)\n",
                        "description: Review sentiment\n")
    assert after == expected


def test_exclusive_flags_change_only_their_lines(base: Path, run_cli: Run) -> None:
    before, after = edit(base, run_cli, "sentiment", "prod",
                         ["update-version", "sentiment", "green", "--env", "prod", "--is-control-version-type"])
    expected = replaced(before, "    is_default: true\n    is_control_version_type: true\n", "    is_default: true\n")
    expected = replaced(expected, "    description: Same model retrained with 2026 reviews\n",
                        "    description: Same model retrained with 2026 reviews\n    is_control_version_type: true\n")
    assert after == expected


def test_deleting_the_last_version_leaves_no_blank_line_at_the_end(base: Path, run_cli: Run) -> None:
    before, after = edit(base, run_cli, "sentiment", "prod", ["delete-version", "sentiment", "green", "--env", "prod"])
    assert after == before[:before.index("\n  - version_name: green")]


# --- a spec full of comments ------------------------------------------------------------------------

COMMENTED = """\
# Leading comment.

# Second paragraph of the leading comment.
name: commented
description: "double quoted"   # inline comment
tags:
  cost-center: "4711"
  flag: 'yes'
properties:
  owner: someone   # never changes

versions:
  # the default version
  - version_name: alpha
    traffic_percentile: 0   # the default takes the rest
    models:
      - {name: m, version: 1, uri: "https://models.example.com/m/1"}
    inference_config:
      image: acr.azurecr.io/scoring/demo:1.0   # pinned
      entry_script: score.py

  # the canary
  - version_name: beta
    traffic_percentile: 10
    cpu_cores: 0.5
    models:
      - name: m
        version: 2
        uri: https://models.example.com/m/2
    inference_config:
      image: acr.azurecr.io/scoring/demo:1.1
      entry_script: score.py
# trailing comment
"""
ALPHA_END = "      entry_script: score.py\n\n  # the canary\n"
BETA = COMMENTED[COMMENTED.index("  # the canary\n"):COMMENTED.index("# trailing comment")]
GAMMA = """\
  - version_name: gamma
    models:
      - name: fraud-gbm
        version: 3
        uri: https://models.example.com/fraud-gbm/3
    inference_config:
      image: acr.azurecr.io/scoring/fraud:1.0
      entry_script: score.py
"""


@pytest.mark.parametrize("args, expected", [
    (["update-version", "commented", "beta", "--traffic-percentile", "25"],
     replaced(COMMENTED, "    traffic_percentile: 10\n", "    traffic_percentile: 25\n")),
    (["update-version", "commented", "alpha", "--cpu-cores", "2"],
     replaced(COMMENTED, ALPHA_END, "      entry_script: score.py\n    cpu_cores: 2\n\n  # the canary\n")),
    (["update-version", "commented", "alpha", "--env-var", "MODE=fast"],
     replaced(COMMENTED, ALPHA_END, "      entry_script: score.py\n      environment_variables:\n"
                                    "        MODE: fast\n\n  # the canary\n")),
    (["update-version", "commented", "beta", "--scoring-workload-identity"],
     replaced(COMMENTED, "# trailing comment\n", "    scoring_workload_identity: true\n# trailing comment\n")),
    (["update-version", "commented", "alpha", "--unset", "traffic_percentile"],
     replaced(COMMENTED, "    traffic_percentile: 0   # the default takes the rest\n", "")),
    (["update-version", "commented", "beta", "--is-default"],
     replaced(COMMENTED, "  - version_name: beta\n", "  - version_name: beta\n    is_default: true\n")),
    (["update", "commented", "--tag", "owner=me", "--remove-tag", "flag"],
     replaced(COMMENTED, "  flag: 'yes'\n", "  owner: me\n")),
    (["update", "commented", "--property", "tier=gold"],
     replaced(COMMENTED, "  owner: someone   # never changes\n",
              "  owner: someone   # never changes\n  tier: gold\n")),
    (["create-version", "commented", "gamma", *BODY],
     replaced(COMMENTED, "# trailing comment\n", GAMMA + "# trailing comment\n")),
    (["delete-version", "commented", "beta"],
     replaced(COMMENTED, BETA, "")),
], ids=lambda value: " ".join(value[:4]) if isinstance(value, list) else "")
def test_comments_quotes_and_blank_lines_survive(base: Path, run_cli: Run, args: list[str], expected: str) -> None:
    write_spec(base, "commented", COMMENTED)
    _, after = edit(base, run_cli, "commented", "dev", [*args, "--env", "dev"])
    assert after == expected


# --- other indentation styles -----------------------------------------------------------------------

FLAT = """\
# Sequences not indented, mappings by two.
name: flat
tags: {team: risk}   # flow style stays
versions:
- version_name: alpha
  # the first
  models:
  - name: m
    version: 1
    uri: 'https://models.example.com/m/1'
  inference_config:
    image: acr.azurecr.io/scoring/demo:1.0
    entry_script: score.py
- version_name: beta
  traffic_percentile: 10
  models: [{name: m, version: 2, uri: "https://models.example.com/m/2"}]
  inference_config: {image: "acr.azurecr.io/scoring/demo:1.1", entry_script: score.py}
"""
WIDE = """\
---
name: wide
tags:
    team: risk

versions:
    - version_name: alpha
      models:
          - name: m
            version: 1
            uri: https://models.example.com/m/1
      inference_config:
          image: acr.azurecr.io/scoring/demo:1.0
          entry_script: score.py
    - version_name: beta
      traffic_percentile: 10
      models:
          - name: m
            version: 2
            uri: https://models.example.com/m/2
      inference_config:
          image: acr.azurecr.io/scoring/demo:1.1
          entry_script: score.py
"""


@pytest.mark.parametrize("name, text, edits", [
    ("flat", FLAT, [
        ("    entry_script: score.py\n- version_name: beta\n",
         "    entry_script: score.py\n    environment_variables:\n      MODE: fast\n  cpu_cores: 2\n"
         "- version_name: beta\n"),
        ("  traffic_percentile: 10\n", "  traffic_percentile: 25\n"),
    ]),
    ("wide", WIDE, [
        ("          entry_script: score.py\n    - version_name: beta\n",
         "          entry_script: score.py\n          environment_variables:\n              MODE: fast\n"
         "      cpu_cores: 2\n    - version_name: beta\n"),
        ("      traffic_percentile: 10\n", "      traffic_percentile: 25\n"),
    ]),
])
def test_other_indentation_styles_are_kept(base: Path, run_cli: Run, name: str, text: str,
                                           edits: list[tuple[str, str]]) -> None:
    write_spec(base, name, text)
    _, after = edit(base, run_cli, name, "dev", ["update-version", name, "alpha", "--env", "dev", "--cpu-cores", "2",
                                                 "--env-var", "MODE=fast"])
    _, after = edit(base, run_cli, name, "dev", ["update-version", name, "beta", "--env", "dev",
                                                 "--traffic-percentile", "25"])
    expected = text
    for old, new in edits:
        expected = replaced(expected, old, new)
    assert after == expected


def test_a_new_version_follows_the_file_style(base: Path, run_cli: Run) -> None:
    write_spec(base, "flat", FLAT)
    before, after = edit(base, run_cli, "flat", "dev", ["create-version", "flat", "gamma", "--env", "dev", *BODY])
    assert after == before + (
        "- version_name: gamma\n"
        "  models:\n"
        "  - name: fraud-gbm\n"
        "    version: 3\n"
        "    uri: https://models.example.com/fraud-gbm/3\n"
        "  inference_config:\n"
        "    image: acr.azurecr.io/scoring/fraud:1.0\n"
        "    entry_script: score.py\n")


def test_crlf_line_ends_and_a_leading_document_marker_survive(base: Path, run_cli: Run) -> None:
    text = "# opening comment\r\n\r\n--- # the document\r\n" + COMMENTED.replace("\n", "\r\n")
    path = spec_path(base, "commented", "dev")
    path.write_bytes(text.encode())
    _, after = edit(base, run_cli, "commented", "dev",
                    ["update-version", "commented", "beta", "--env", "dev", "--traffic-percentile", "25"])
    assert after == replaced(text, "    traffic_percentile: 10\r\n", "    traffic_percentile: 25\r\n")


def test_indentation_is_read_from_the_file() -> None:
    assert _indentation("a:\n  b: 1\nc:\n  - d: 1\n") == (2, 4, 2)
    assert _indentation("a:\n  b: 1\nc:\n- d: 1\n") == (2, 2, 0)
    assert _indentation("a:\n    b: 1\nc:\n    - d: 1\n") == (4, 6, 4)
    assert _indentation("a:\n    b: 1\nc:\n-   d: 1\n") == (4, 4, 0)
    assert _indentation("a: 1\n") == (2, 4, 2)


# --- values YAML 1.1 would misread ------------------------------------------------------------------

def test_strings_that_yaml_1_1_reads_as_something_else_are_quoted(base: Path, run_cli: Run) -> None:
    before, after = edit(base, run_cli, "sentiment", "prod",
                         ["update-version", "sentiment", "green", "--env", "prod", "--env-var", "FEATURE=on",
                          "--env-var", "MODE=0777", "--env-var", "WINDOW=1:30", "--tag", "yes=no", "--tag", "null=~",
                          "--description", "off"])
    green = next(v for v in yaml.safe_load(after)["versions"] if v["version_name"] == "green")
    assert green["inference_config"]["environment_variables"] == {"LOG_LEVEL": "info", "FEATURE": "on",
                                                                  "MODE": "0777", "WINDOW": "1:30"}
    assert green["tags"] == {"yes": "no", "null": "~"}
    assert green["description"] == "off"
    assert "        FEATURE: 'on'\n" in after
    assert run_cli(["validate", "--env", "prod", "--specs-only"]).exit_code == 0


# --- invalid edits write nothing --------------------------------------------------------------------

REFUSED = f"endpointgen: 1 problem(s) found; {EditRefused.summary}\n"


@pytest.mark.parametrize("args, exit_code, message", [
    (["update-version", "sentiment", "green", "--traffic-percentile", "300"], 1,
     "environments/prod/endpoints/sentiment.yaml:40:25: versions[1].traffic_percentile: must be <= 100, got 300\n"
     + REFUSED),
    (["create-version", "sentiment", "amber", *BODY, "--traffic-percentile", "95"], 1,
     "environments/prod/endpoints/sentiment.yaml:17:3: versions: traffic_percentile of the non-default versions sums "
     "to 105% (green 10 + amber 95), more than 100%; the default version 'blue' takes what the others leave\n"
     + REFUSED),
    (["update-version", "sentiment", "blue", "--num-replicas", "3", "--autoscale-enabled"], 1,
     "environments/prod/endpoints/sentiment.yaml:38:19: versions[0].num_replicas: num_replicas cannot be set "
     "together with autoscale_enabled: true\n" + REFUSED),
    (["update-version", "sentiment", "blue", "--cpu-cores-limit", "0.5"], 1,
     "environments/prod/endpoints/sentiment.yaml:32:22: versions[0].cpu_cores_limit: cpu_cores_limit (0.5) is below "
     "cpu_cores (1)\n" + REFUSED),
    (["update-version", "sentiment", "green", "--unset", "inference_config"], 1,
     "endpointgen: error: inference_config is required and cannot be unset\n"),
    (["update", "sentiment", "--token-auth-enabled"], 1, "environments/prod/endpoints/sentiment.yaml:"),
    (["update-version", "sentiment", "green", "--model", "distilbert"], 2,
     "endpointgen: error: --model 'distilbert': expected name:version=uri\n"),
    (["update-version", "sentiment", "green", "--env-var", "=x"], 2,
     "endpointgen: error: --env-var '=x': expected key=value\n"),
])
def test_an_invalid_edit_leaves_the_file_byte_identical(base: Path, run_cli: Run, args: list[str], exit_code: int,
                                                        message: str) -> None:
    folder = spec_path(base, "sentiment", "prod").parent
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    result = run_cli([*args, "--env", "prod"])
    assert result.exit_code == exit_code
    assert result.stdout == ""
    assert result.stderr.startswith(message)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == files  # no change, no temporary file left
    assert changed(base) == []


def test_problems_name_the_file_line_and_column(base: Path, run_cli: Run) -> None:
    result = run_cli(["update-version", "sentiment", "green", "--env", "prod", "--traffic-percentile", "-5",
                      "--cpu-cores", "0"])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[-1] == "endpointgen: 2 problem(s) found; " + EditRefused.summary
    assert all(line.startswith("environments/prod/endpoints/sentiment.yaml:") for line in lines[:-1])
    assert [line.split(": ")[1] for line in lines[:-1]] == ["versions[1].traffic_percentile", "versions[1].cpu_cores"]


def test_an_edit_is_refused_when_the_spec_is_already_broken(base: Path, run_cli: Run) -> None:
    path = spec_path(base, "sentiment", "prod")
    path.write_text(path.read_text(encoding="utf-8").replace("traffic_percentile: 10", "traffic_percentile: [10"))
    text = path.read_bytes()
    result = run_cli(["update-version", "sentiment", "blue", "--env", "prod", "--cpu-cores", "2"])
    assert result.exit_code == 1
    assert result.stderr.startswith("environments/prod/endpoints/sentiment.yaml:")
    assert path.read_bytes() == text


# --- writes are atomic ------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["update-version", "sentiment", "green", "--env", "prod", "--traffic-percentile", "20"],
    ["new", "fraud", "--env", "prod", "--version-name", "gbm-v3", *BODY],
])
def test_a_failed_write_leaves_the_spec_unchanged(base: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch,
                                                  args: list[str]) -> None:
    folder = spec_path(base, "sentiment", "prod").parent
    files = {p.name: p.read_bytes() for p in folder.iterdir()}

    def fail(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer.os, "replace", fail)
    with pytest.raises(OSError, match="No space left"):
        run_cli(args)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == files
    assert changed(base) == []


def test_a_written_spec_keeps_its_permissions(base: Path, run_cli: Run) -> None:
    path = spec_path(base, "sentiment", "prod")
    mode = path.stat().st_mode
    ok(run_cli(["update-version", "sentiment", "green", "--env", "prod", "--traffic-percentile", "20"]),
       PROD_SENTIMENT)
    assert path.stat().st_mode == mode


# --- option parsing ---------------------------------------------------------------------------------

def test_parse_model() -> None:
    assert parse_model("distilbert:7=https://m.example/d/7?sv=1&x=a:b") == {
        "name": "distilbert", "version": 7, "uri": "https://m.example/d/7?sv=1&x=a:b"}
    assert parse_model("distilbert:v7=azureml://registries/r/models/d/versions/7")["version"] == "v7"
    for bad in ("distilbert", "distilbert:7", ":7=https://x", "distilbert:=https://x", "distilbert:7="):
        with pytest.raises(UsageError):
            parse_model(bad)


def test_parse_pair() -> None:
    assert parse_pair("a=b=c", "--tag") == ("a", "b=c")
    assert parse_pair("a=", "--tag") == ("a", "")
    for bad in ("a", "=b"):
        with pytest.raises(UsageError):
            parse_pair(bad, "--tag")


def test_no_temporary_files_after_a_run_of_edits(base: Path, run_cli: Run) -> None:
    for args in (["update-version", "sentiment", "green", "--traffic-percentile", "20"],
                 ["update-version", "sentiment", "green", "--traffic-percentile", "200"],
                 ["create-version", "sentiment", "amber", *BODY],
                 ["delete-version", "sentiment", "amber"]):
        run_cli([*args, "--env", "prod"])
    leftovers = [p for p in base.rglob(".*") if ".git" not in p.parts and ".endpointgen-cache" not in p.parts]
    assert leftovers == []
    assert sorted(os.listdir(spec_path(base, "sentiment", "prod").parent)) == ["image-classifier.yaml",
                                                                               "sentiment.yaml"]
    assert load(base, "sentiment", "prod")["versions"][1]["traffic_percentile"] == 20
