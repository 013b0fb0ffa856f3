"""The spec-editing commands, one per AksEndpoint method, driven through the CLI on a committed git repo.

Each test starts from the example repo, rendered and committed (the `base` fixture), so `git status` shows
exactly what a command wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result
from conftest import spec_path

Run = Callable[[list[str]], Result]

# Everything a version needs besides its name.
BODY = ["--model", "fraud-gbm:3=https://models.example.com/fraud-gbm/3",
        "--image", "acr.azurecr.io/scoring/fraud:1.0", "--entry-script", "score.py"]
PROD_IMAGE = "mlacrprod.azurecr.io/scoring/sentiment"


def git(root: Path, *args: str) -> str:
    """Run git in `root` with a fixed identity and no user or system configuration."""
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", "-c", "user.name=endpointgen tests", "-c", "user.email=tests@example.com", *args],
                          cwd=root, env=env, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def base(repo: Path, run_cli: Run) -> Path:
    """The example repo, rendered and committed as the base of a change."""
    result = run_cli(["render"])
    assert result.exit_code == 0, result.stderr
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    return repo


def changed(root: Path) -> list[str]:
    """`git status --porcelain` lines: every file a command wrote, created or left behind."""
    return git(root, "status", "--porcelain", "--untracked-files=all").splitlines()


def load(root: Path, name: str, env: str) -> dict[str, Any]:
    return yaml.safe_load(spec_path(root, name, env).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def version_of(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return next(v for v in spec["versions"] if v["version_name"] == name)


def effective(run_cli: Run, endpoint: str, env: str) -> dict[str, tuple[float, bool]]:
    """version -> (effective percent, is default), from `effective --output json`."""
    result = run_cli(["effective", endpoint, "--env", env, "--output", "json"])
    assert result.exit_code == 0, result.stderr
    return {v["version_name"]: (v["effective_percent"], v["is_default"]) for v in json.loads(result.stdout)["versions"]}


def ok(result: Result, path: str) -> None:
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"wrote {path}; run `make render` (endpointgen render) and commit both\n"


PROD_SENTIMENT = "environments/prod/endpoints/sentiment.yaml"


# --- new ------------------------------------------------------------------------------------------

def test_new_writes_a_valid_spec_with_one_default_version(base: Path, run_cli: Run) -> None:
    result = run_cli(["new", "fraud", "--env", "dev", "--version-name", "gbm-v3", *BODY, "--traffic-percentile", "20",
                      "--description", "Card fraud", "--tag", "team=risk", "--property", "owner=risk@contoso.com",
                      "--primary-key-secret", "fraud-primary", "--namespace", "fraud-dev", "--cpu-cores", "0.5"])
    ok(result, "environments/dev/endpoints/fraud.yaml")
    assert changed(base) == ["?? environments/dev/endpoints/fraud.yaml"]
    text = spec_path(base, "fraud", "dev").read_text(encoding="utf-8")
    assert text.startswith("# Endpoint fraud: created with `endpointgen new`.\nname: fraud\n")
    spec = load(base, "fraud", "dev")
    assert list(spec) == ["name", "namespace", "description", "tags", "properties", "auth_keys", "versions"]
    assert spec["auth_keys"] == {"primary_key_secret": "fraud-primary"}
    assert spec["versions"] == [{
        "version_name": "gbm-v3", "traffic_percentile": 20,
        "models": [{"name": "fraud-gbm", "version": 3, "uri": "https://models.example.com/fraud-gbm/3"}],
        "inference_config": {"image": "acr.azurecr.io/scoring/fraud:1.0", "entry_script": "score.py"},
        "cpu_cores": 0.5,
    }]
    assert effective(run_cli, "fraud", "dev") == {"gbm-v3": (100.0, True)}
    assert run_cli(["validate", "--env", "dev"]).exit_code == 0


def test_new_refuses_an_existing_endpoint(base: Path, run_cli: Run) -> None:
    result = run_cli(["new", "sentiment", "--env", "dev", "--version-name", "gbm-v3", *BODY])
    assert result.exit_code == 1
    assert result.stderr == ("endpointgen: error: environments/dev/endpoints/sentiment.yaml already exists; "
                             "use create-version or update\n")
    assert changed(base) == []


def test_new_in_an_unknown_environment_is_a_usage_error(base: Path, run_cli: Run) -> None:
    result = run_cli(["new", "fraud", "--env", "staging", "--version-name", "gbm-v3", *BODY])
    assert result.exit_code == 2
    assert result.stderr == "endpointgen: error: unknown environment 'staging'; available: dev, prod\n"
    assert changed(base) == []


def test_new_with_an_invalid_value_writes_nothing(base: Path, run_cli: Run) -> None:
    result = run_cli(["new", "fraud", "--env", "dev", "--version-name", "v1", *BODY])
    assert result.exit_code == 1
    assert result.stderr.startswith("environments/dev/endpoints/fraud.yaml:4:19: versions[0].version_name: expected "
                                    "3 to 32 characters")
    assert changed(base) == []


@pytest.mark.parametrize("name", ["../fraud", "../endpoints/fraud", "sub/fraud", ".fraud", ""])
def test_new_refuses_a_name_that_is_a_path(base: Path, run_cli: Run, name: str) -> None:
    result = run_cli(["new", name, "--env", "dev", "--version-name", "gbm-v3", *BODY])
    assert result.exit_code == 2
    assert result.stderr == f"endpointgen: error: {name!r} is not an endpoint name\n"
    assert changed(base) == []


def test_a_name_that_is_a_path_cannot_dodge_validation(base: Path, run_cli: Run) -> None:
    """`../endpoints/sentiment` is the real file, but the edit would be validated against the old text."""
    result = run_cli(["update-version", "../endpoints/sentiment", "green", "--env", "prod",
                      "--traffic-percentile", "300"])
    assert result.exit_code == 2
    assert changed(base) == []


# --- create-version -------------------------------------------------------------------------------

def test_create_version_appends_a_version(base: Path, run_cli: Run) -> None:
    before = load(base, "sentiment", "prod")
    result = run_cli(["create-version", "sentiment", "amber", "--env", "prod", *BODY, "--traffic-percentile", "5",
                      "--description", "Gradient boosting", "--tag", "stage=canary", "--property", "experiment=42",
                      "--env-var", "LOG_LEVEL=warning", "--memory-gb", "2"])
    ok(result, PROD_SENTIMENT)
    after = load(base, "sentiment", "prod")
    assert after["versions"][:2] == before["versions"]
    assert {k: v for k, v in after.items() if k != "versions"} == {k: v for k, v in before.items() if k != "versions"}
    assert after["versions"][2] == {
        "version_name": "amber", "description": "Gradient boosting", "traffic_percentile": 5,
        "tags": {"stage": "canary"}, "properties": {"experiment": "42"},
        "models": [{"name": "fraud-gbm", "version": 3, "uri": "https://models.example.com/fraud-gbm/3"}],
        "inference_config": {"image": "acr.azurecr.io/scoring/fraud:1.0", "entry_script": "score.py",
                             "environment_variables": {"LOG_LEVEL": "warning"}},
        "memory_gb": 2,
    }
    assert effective(run_cli, "sentiment", "prod") == {"blue": (85.0, True), "green": (10.0, False),
                                                      "amber": (5.0, False)}


def test_create_version_refuses_an_existing_version(base: Path, run_cli: Run) -> None:
    result = run_cli(["create-version", "sentiment", "green", "--env", "prod", *BODY])
    assert result.exit_code == 1
    assert result.stderr == ("endpointgen: error: endpoint 'sentiment' already has a version 'green'; "
                             "use update-version\n")
    assert changed(base) == []


def test_create_version_of_an_unknown_endpoint_is_a_usage_error(base: Path, run_cli: Run) -> None:
    result = run_cli(["create-version", "fraud", "amber", "--env", "prod", *BODY])
    assert result.exit_code == 2
    assert result.stderr == ("endpointgen: error: no endpoint 'fraud' in environment 'prod' "
                             "(expected environments/prod/endpoints/fraud.yaml)\n")


def test_a_seventh_version_is_refused(base: Path, run_cli: Run) -> None:
    for name in ("amber", "coral", "denim", "ebony"):
        ok(run_cli(["create-version", "sentiment", name, "--env", "prod", *BODY]), PROD_SENTIMENT)
    result = run_cli(["create-version", "sentiment", "fawn", "--env", "prod", *BODY])
    assert result.exit_code == 1
    assert "versions" in result.stderr and "fawn" not in spec_path(base, "sentiment", "prod").read_text()


# --- update-version -------------------------------------------------------------------------------

def test_update_version_changes_only_the_given_fields(base: Path, run_cli: Run) -> None:
    before = load(base, "sentiment", "prod")
    result = run_cli(["update-version", "sentiment", "green", "--env", "prod", "--cpu-cores", "1.5",
                      "--memory-gb", "3", "--tag", "stage=canary", "--env-var", "FEATURE=on", "--description", "v2"])
    ok(result, PROD_SENTIMENT)
    after = load(base, "sentiment", "prod")
    green = version_of(before, "green")
    green.update(cpu_cores=1.5, memory_gb=3, tags={"stage": "canary"}, description="v2")
    green["inference_config"]["environment_variables"]["FEATURE"] = "on"
    assert after == before
    assert changed(base) == [f" M {PROD_SENTIMENT}"]


def test_update_version_never_drops_or_changes_a_property(base: Path, run_cli: Run) -> None:
    path = spec_path(base, "sentiment", "prod")
    ok(run_cli(["update-version", "sentiment", "green", "--env", "prod", "--property", "experiment=42"]),
       PROD_SENTIMENT)
    ok(run_cli(["update-version", "sentiment", "green", "--env", "prod", "--property", "run=7",
                "--traffic-percentile", "15"]), PROD_SENTIMENT)
    assert version_of(load(base, "sentiment", "prod"), "green")["properties"] == {"experiment": "42", "run": "7"}
    text = path.read_text(encoding="utf-8")

    result = run_cli(["update-version", "sentiment", "green", "--env", "prod", "--property", "experiment=43"])
    assert result.exit_code == 1
    assert result.stderr == ("endpointgen: error: version green property 'experiment' is '42'; properties never "
                             "change once deployed (add a new key instead)\n")
    result = run_cli(["update-version", "sentiment", "green", "--env", "prod", "--unset", "properties"])
    assert result.exit_code == 1
    assert "properties cannot be unset" in result.stderr
    assert path.read_text(encoding="utf-8") == text

    ok(run_cli(["update-version", "sentiment", "green", "--env", "prod", "--property", "experiment=42"]),
       PROD_SENTIMENT)  # the same value again is no change
    assert path.read_text(encoding="utf-8") == text


def test_update_version_models_replace_the_list(base: Path, run_cli: Run) -> None:
    ok(run_cli(["update-version", "sentiment", "green", "--env", "prod", "--model", "tokenizer:2=https://m.example/t/2",
                "--model", "sentiment-distilbert:v9=https://m.example/s/9"]), PROD_SENTIMENT)
    assert version_of(load(base, "sentiment", "prod"), "green")["models"] == [
        {"name": "tokenizer", "version": 2, "uri": "https://m.example/t/2"},
        {"name": "sentiment-distilbert", "version": "v9", "uri": "https://m.example/s/9"},
    ]


def test_update_version_unset_brings_back_the_default(base: Path, run_cli: Run) -> None:
    ok(run_cli(["update-version", "sentiment", "blue", "--env", "prod", "--unset", "autoscale_target_utilization"]),
       PROD_SENTIMENT)
    assert "autoscale_target_utilization" not in version_of(load(base, "sentiment", "prod"), "blue")
    served = json.loads(run_cli(["serialize", "sentiment", "--env", "prod"]).stdout)
    assert served["versions"]["blue"]["autoScaler"]["targetUtilization"] == 70


def test_update_version_switches_to_fixed_replicas(base: Path, run_cli: Run) -> None:
    ok(run_cli(["update-version", "sentiment", "blue", "--env", "prod", "--no-autoscale-enabled", "--num-replicas", "3",
                "--unset", "autoscale_min_replicas", "--unset", "autoscale_max_replicas",
                "--unset", "autoscale_target_utilization"]), PROD_SENTIMENT)
    blue = version_of(load(base, "sentiment", "prod"), "blue")
    assert blue["autoscale_enabled"] is False and blue["num_replicas"] == 3
    assert not any(key.startswith("autoscale_m") or key == "autoscale_target_utilization" for key in blue)


@pytest.mark.parametrize("args, message", [
    (["sentiment", "amber"], "no version 'amber' in endpoint 'sentiment' (have: blue, green)"),
    (["sentiment", "green", "--unset", "trafic_percentile"], "--unset trafic_percentile: no such field"),
    (["sentiment", "green", "--tag", "novalue"], "--tag 'novalue': expected key=value"),
    (["sentiment", "green", "--model", "distilbert=https://m"], "--model 'distilbert=https://m': expected "
                                                                "name:version=uri"),
])
def test_update_version_usage_errors(base: Path, run_cli: Run, args: list[str], message: str) -> None:
    result = run_cli(["update-version", *args, "--env", "prod"])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"endpointgen: error: {message}")
    assert changed(base) == []


def test_an_option_that_is_not_a_field_is_refused_by_click(base: Path, run_cli: Run) -> None:
    result = run_cli(["update-version", "sentiment", "green", "--env", "prod", "--traffic-percentile", "lots"])
    assert result.exit_code == 2
    assert "'lots' is not a number" in result.stderr


# --- is_default and is_control_version_type are exclusive ------------------------------------------

def test_setting_is_default_clears_it_on_the_others(base: Path, run_cli: Run) -> None:
    ok(run_cli(["update-version", "sentiment", "green", "--env", "prod", "--is-default"]), PROD_SENTIMENT)
    spec = load(base, "sentiment", "prod")
    assert "is_default" not in version_of(spec, "blue") and version_of(spec, "green")["is_default"] is True
    assert effective(run_cli, "sentiment", "prod") == {"blue": (90.0, False), "green": (10.0, True)}


def test_setting_is_control_version_type_clears_it_on_the_others(base: Path, run_cli: Run) -> None:
    ok(run_cli(["create-version", "sentiment", "amber", "--env", "prod", *BODY, "--is-control-version-type"]),
       PROD_SENTIMENT)
    spec = load(base, "sentiment", "prod")
    assert [v.get("is_control_version_type") for v in spec["versions"]] == [None, None, True]
    assert version_of(spec, "blue")["is_default"] is True  # only the flag that was set moves


def test_clearing_a_flag_leaves_the_others_alone(base: Path, run_cli: Run) -> None:
    ok(run_cli(["update-version", "sentiment", "green", "--env", "prod", "--no-is-control-version-type"]),
       PROD_SENTIMENT)
    spec = load(base, "sentiment", "prod")
    assert version_of(spec, "blue")["is_control_version_type"] is True
    assert version_of(spec, "green")["is_control_version_type"] is False


# --- delete-version -------------------------------------------------------------------------------

def test_delete_version_removes_a_version(base: Path, run_cli: Run) -> None:
    ok(run_cli(["delete-version", "sentiment", "green", "--env", "prod"]), PROD_SENTIMENT)
    assert [v["version_name"] for v in load(base, "sentiment", "prod")["versions"]] == ["blue"]
    assert effective(run_cli, "sentiment", "prod") == {"blue": (100.0, True)}


def test_delete_version_refuses_the_last_version(base: Path, run_cli: Run) -> None:
    result = run_cli(["delete-version", "image-classifier", "resnet-v3", "--env", "dev"])
    assert result.exit_code == 1
    assert "'resnet-v3' is the last version of 'image-classifier'" in result.stderr
    assert changed(base) == []


@pytest.mark.parametrize("env", ["prod", "dev"])  # prod flags blue is_default; in dev blue is the default as the first
def test_deleting_the_default_needs_a_new_default(base: Path, run_cli: Run, env: str) -> None:
    result = run_cli(["delete-version", "sentiment", "blue", "--env", env])
    assert result.exit_code == 1
    assert result.stderr == ("endpointgen: error: 'blue' is the default version of 'sentiment'; name its successor "
                             "with --new-default VERSION\n")
    assert changed(base) == []
    ok(run_cli(["delete-version", "sentiment", "blue", "--env", env, "--new-default", "green"]),
       f"environments/{env}/endpoints/sentiment.yaml")
    spec = load(base, "sentiment", env)
    assert [(v["version_name"], v.get("is_default")) for v in spec["versions"]] == [("green", True)]
    assert effective(run_cli, "sentiment", env) == {"green": (100.0, True)}


@pytest.mark.parametrize("new_default", ["amber", "blue"])
def test_delete_version_with_an_unknown_new_default_is_a_usage_error(base: Path, run_cli: Run,
                                                                      new_default: str) -> None:
    result = run_cli(["delete-version", "sentiment", "blue", "--env", "prod", "--new-default", new_default])
    assert result.exit_code == 2
    assert f"no version {new_default!r}" in result.stderr
    assert changed(base) == []


def test_delete_version_of_an_unknown_version_is_a_usage_error(base: Path, run_cli: Run) -> None:
    result = run_cli(["delete-version", "sentiment", "amber", "--env", "prod"])
    assert result.exit_code == 2
    assert changed(base) == []


# --- update ---------------------------------------------------------------------------------------

def test_update_changes_endpoint_settings(base: Path, run_cli: Run) -> None:
    before = load(base, "sentiment", "prod")
    ok(run_cli(["update", "sentiment", "--env", "prod", "--description", "Review sentiment", "--tag", "owner=ml",
                "--remove-tag", "cost-center", "--property", "tier=gold", "--no-enable-app-insights"]), PROD_SENTIMENT)
    after = load(base, "sentiment", "prod")
    assert after["description"] == "Review sentiment"
    assert after["tags"] == {"team": "reviews-ml", "owner": "ml"}
    assert after["properties"] == {"owner": "reviews-ml@contoso.com", "tier": "gold"}
    assert after["enable_app_insights"] is False
    assert after["versions"] == before["versions"]


def test_update_switches_between_key_and_token_auth(base: Path, run_cli: Run) -> None:
    ok(run_cli(["update", "image-classifier", "--env", "dev", "--token-auth-enabled"]),
       "environments/dev/endpoints/image-classifier.yaml")
    spec = load(base, "image-classifier", "dev")
    assert (spec["auth_enabled"], spec["token_auth_enabled"]) == (False, True)
    served = json.loads(run_cli(["serialize", "image-classifier", "--env", "dev"]).stdout)
    assert (served["authEnabled"], served["aadAuthEnabled"]) == (False, True)

    text = spec_path(base, "image-classifier", "dev").read_text(encoding="utf-8")
    result = run_cli(["update", "image-classifier", "--env", "dev", "--auth-enabled"])
    assert result.exit_code == 1
    assert result.stderr.startswith("environments/dev/endpoints/image-classifier.yaml:4:")
    assert spec_path(base, "image-classifier", "dev").read_text(encoding="utf-8") == text


def test_update_refuses_to_change_a_property(base: Path, run_cli: Run) -> None:
    result = run_cli(["update", "sentiment", "--env", "prod", "--property", "owner=someone@contoso.com"])
    assert result.exit_code == 1
    assert "endpoint property 'owner' is 'reviews-ml@contoso.com'; properties never change" in result.stderr
    assert changed(base) == []


# --- promote --------------------------------------------------------------------------------------

def test_promote_copies_a_new_version_to_prod(base: Path, run_cli: Run) -> None:
    ok(run_cli(["create-version", "sentiment", "amber", "--env", "dev", *BODY, "--traffic-percentile", "20",
                "--is-control-version-type", "--env-var", "LOG_LEVEL=debug", "--property", "experiment=42"]),
       "environments/dev/endpoints/sentiment.yaml")
    before = load(base, "sentiment", "prod")
    ok(run_cli(["promote", "sentiment", "amber", "--from", "dev", "--to", "prod", "--traffic-percentile", "5",
                "--image", "mlacrprod.azurecr.io/scoring/fraud:1.0"]), PROD_SENTIMENT)
    after = load(base, "sentiment", "prod")
    assert after["versions"][:2] == before["versions"]
    amber = version_of(load(base, "sentiment", "dev"), "amber")
    del amber["is_control_version_type"]  # flags belong to the environment's split; --is-... sets them
    amber.update(traffic_percentile=5)
    amber["inference_config"]["image"] = "mlacrprod.azurecr.io/scoring/fraud:1.0"
    assert after["versions"][2] == amber
    assert effective(run_cli, "sentiment", "prod") == {"blue": (85.0, True), "green": (10.0, False),
                                                      "amber": (5.0, False)}


def test_promote_creates_the_spec_when_the_endpoint_is_new_there(base: Path, run_cli: Run) -> None:
    ok(run_cli(["new", "fraud", "--env", "dev", "--version-name", "gbm-v3", *BODY, "--namespace", "fraud-dev",
                "--primary-key-secret", "fraud-primary", "--compute-target-name", "aks-ml-dev",
                "--description", "Card fraud"]), "environments/dev/endpoints/fraud.yaml")
    ok(run_cli(["promote", "fraud", "gbm-v3", "--from", "dev", "--to", "prod",
                "--image", "mlacrprod.azurecr.io/scoring/fraud:1.0"]), "environments/prod/endpoints/fraud.yaml")
    text = spec_path(base, "fraud", "prod").read_text(encoding="utf-8")
    assert text.startswith("# Endpoint fraud: promoted from dev with `endpointgen promote`.\nname: fraud\n")
    spec = load(base, "fraud", "prod")
    assert list(spec) == ["name", "description", "versions"]  # namespace, compute target and keys are per env
    assert version_of(spec, "gbm-v3")["inference_config"]["image"] == "mlacrprod.azurecr.io/scoring/fraud:1.0"
    assert effective(run_cli, "fraud", "prod") == {"gbm-v3": (100.0, True)}


def test_promote_replaces_a_version_and_keeps_its_traffic(base: Path, run_cli: Run) -> None:
    path = spec_path(base, "sentiment", "prod")
    before = load(base, "sentiment", "prod")
    ok(run_cli(["promote", "sentiment", "green", "--from", "dev", "--to", "prod", "--image", f"{PROD_IMAGE}:1.4.3"]),
       PROD_SENTIMENT)
    after = load(base, "sentiment", "prod")
    assert after["versions"][0] == before["versions"][0]
    green = version_of(load(base, "sentiment", "dev"), "green")  # dev's block, with prod's traffic and the image
    green["inference_config"]["image"] = f"{PROD_IMAGE}:1.4.3"
    assert after["versions"][1] == green | {"traffic_percentile": 10}
    assert "    autoscale_target_utilization: 60\n\n  - version_name: green\n" in path.read_text(encoding="utf-8")

    ok(run_cli(["promote", "sentiment", "green", "--from", "dev", "--to", "prod", "--image", f"{PROD_IMAGE}:1.4.3",
                "--traffic-percentile", "30"]), PROD_SENTIMENT)
    assert effective(run_cli, "sentiment", "prod") == {"blue": (70.0, True), "green": (30.0, False)}


def test_promote_keeps_the_properties_deployed_in_the_target(base: Path, run_cli: Run) -> None:
    ok(run_cli(["update-version", "sentiment", "green", "--env", "prod", "--property", "experiment=42"]),
       PROD_SENTIMENT)
    ok(run_cli(["update-version", "sentiment", "green", "--env", "dev", "--property", "owner=dev-team"]),
       "environments/dev/endpoints/sentiment.yaml")
    ok(run_cli(["promote", "sentiment", "green", "--from", "dev", "--to", "prod", "--image", f"{PROD_IMAGE}:1.4.3"]),
       PROD_SENTIMENT)
    assert version_of(load(base, "sentiment", "prod"), "green")["properties"] == {"owner": "dev-team",
                                                                                 "experiment": "42"}

    ok(run_cli(["update-version", "sentiment", "green", "--env", "dev", "--property", "experiment=41"]),
       "environments/dev/endpoints/sentiment.yaml")
    text = spec_path(base, "sentiment", "prod").read_text(encoding="utf-8")
    result = run_cli(["promote", "sentiment", "green", "--from", "dev", "--to", "prod"])
    assert result.exit_code == 1
    assert result.stderr == ("endpointgen: error: version green property 'experiment' is '42' in prod but '41' in "
                             "dev; properties never change once deployed\n")
    assert spec_path(base, "sentiment", "prod").read_text(encoding="utf-8") == text


def test_promote_with_is_default_moves_the_default(base: Path, run_cli: Run) -> None:
    ok(run_cli(["promote", "sentiment", "green", "--from", "dev", "--to", "prod", "--image", f"{PROD_IMAGE}:1.4.3",
                "--is-default"]), PROD_SENTIMENT)
    assert effective(run_cli, "sentiment", "prod") == {"blue": (90.0, False), "green": (10.0, True)}


@pytest.mark.parametrize("args, message", [
    (["sentiment", "green", "--from", "dev", "--to", "staging"], "unknown environment 'staging'"),
    (["sentiment", "amber", "--from", "dev", "--to", "prod"], "no version 'amber'"),
    (["fraud", "green", "--from", "dev", "--to", "prod"], "no endpoint 'fraud' in environment 'dev'"),
])
def test_promote_usage_errors(base: Path, run_cli: Run, args: list[str], message: str) -> None:
    result = run_cli(["promote", *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert changed(base) == []


# --- serialize ------------------------------------------------------------------------------------

ENDPOINT_KEYS = {"name", "description", "tags", "properties", "computeName", "computeType", "scoringUri",
                 "authEnabled", "aadAuthEnabled", "appInsightsEnabled", "versions"}
VERSION_KEYS = {"name", "description", "tags", "properties", "scoringUri", "autoScaler",
                "containerResourceRequirements", "dataCollection", "maxConcurrentRequestsPerContainer",
                "maxQueueWaitMs", "livenessProbeRequirements", "numReplicas", "scoringTimeoutMs", "modelDetails",
                "isDefault", "trafficPercentile", "versionType"}


def test_serialize_matches_the_sdk_shape(base: Path, run_cli: Run) -> None:
    result = run_cli(["serialize", "sentiment", "--env", "prod"])
    assert result.exit_code == 0, result.stderr
    served = json.loads(result.stdout)
    assert ENDPOINT_KEYS <= set(served)
    assert set(served["versions"]) == {"blue", "green"}
    assert all(VERSION_KEYS <= set(v) for v in served["versions"].values())
    uri = "https://ml.contoso.com/api/v1/service/sentiment/score"
    assert {k: served[k] for k in ENDPOINT_KEYS - {"versions"}} == {
        "name": "sentiment", "description": "Sentiment of customer reviews (positive / neutral / negative)",
        "tags": {"team": "reviews-ml", "cost-center": "4711"}, "properties": {"owner": "reviews-ml@contoso.com"},
        "computeName": "aks-ml-prod", "computeType": "AKS", "scoringUri": uri, "authEnabled": True,
        "aadAuthEnabled": False, "appInsightsEnabled": True,
    }
    blue, green = served["versions"]["blue"], served["versions"]["green"]
    assert blue["autoScaler"] == {"autoscaleEnabled": True, "minReplicas": 2, "maxReplicas": 8,
                                  "refreshPeriodInSeconds": 1, "targetUtilization": 60}
    assert blue["containerResourceRequirements"] == {"cpu": 1, "cpuLimit": 2, "memoryInGB": 2, "memoryInGBLimit": 4,
                                                     "gpu": 0}
    assert blue["livenessProbeRequirements"] == {"periodSeconds": 10, "initialDelaySeconds": 60, "timeoutSeconds": 2,
                                                 "successThreshold": 1, "failureThreshold": 3}
    assert (blue["maxConcurrentRequestsPerContainer"], blue["maxQueueWaitMs"], blue["numReplicas"],
            blue["scoringTimeoutMs"]) == (1, 500, None, 60000)
    assert blue["modelDetails"] == [{"name": "sentiment-distilbert", "version": 7,
                                     "uri": "https://mlmodelsprod.blob.core.windows.net/models/sentiment-distilbert/7"}]
    assert (blue["isDefault"], blue["versionType"], blue["trafficPercentile"]) == (True, "Control", 90)
    assert (green["isDefault"], green["versionType"], green["trafficPercentile"]) == (False, "Treatment", 10)
    assert green["dataCollection"] == {"storageEnabled": True} and blue["dataCollection"] == {"storageEnabled": False}
    assert (blue["effectiveTrafficPercentile"], green["effectiveTrafficPercentile"]) == (90, 10)
    assert blue["scoringUri"] == uri


def test_serialize_shows_the_effective_traffic_of_an_implicit_default(base: Path, run_cli: Run) -> None:
    served = json.loads(run_cli(["serialize", "sentiment", "--env", "dev"]).stdout)
    blue, green = served["versions"]["blue"], served["versions"]["green"]
    assert (blue["isDefault"], blue["trafficPercentile"], blue["effectiveTrafficPercentile"]) == (True, 0, 50)
    assert (green["isDefault"], green["trafficPercentile"], green["effectiveTrafficPercentile"]) == (False, 50, 50)
    assert served["scoringUri"] == "http://ml.dev.contoso.internal/api/v1/service/sentiment/score"  # no TLS in dev


def test_serialize_an_unknown_endpoint_is_a_usage_error(base: Path, run_cli: Run) -> None:
    result = run_cli(["serialize", "fraud", "--env", "prod"])
    assert result.exit_code == 2
    assert result.stderr == "endpointgen: error: no endpoint 'fraud' in environment 'prod'\n"


# --- the Microsoft controlled-rollout example -----------------------------------------------------

def test_the_microsoft_traffic_example(base: Path, run_cli: Run) -> None:
    """a (default) 20% and b 10% -> a 90, b 10; then b default with 40% while a keeps 20% -> a 20, b 80."""
    ok(run_cli(["new", "rollout", "--env", "dev", "--version-name", "version-a", *BODY, "--traffic-percentile", "20"]),
       "environments/dev/endpoints/rollout.yaml")
    ok(run_cli(["create-version", "rollout", "version-b", "--env", "dev", *BODY, "--traffic-percentile", "10"]),
       "environments/dev/endpoints/rollout.yaml")
    assert effective(run_cli, "rollout", "dev") == {"version-a": (90.0, True), "version-b": (10.0, False)}
    ok(run_cli(["update-version", "rollout", "version-b", "--env", "dev", "--is-default", "--traffic-percentile", "40"]),
       "environments/dev/endpoints/rollout.yaml")
    assert effective(run_cli, "rollout", "dev") == {"version-a": (20.0, False), "version-b": (80.0, True)}
    spec = load(base, "rollout", "dev")
    assert [(v["version_name"], v["traffic_percentile"], v.get("is_default")) for v in spec["versions"]] == [
        ("version-a", 20, None), ("version-b", 40, True)]


def test_an_edit_that_makes_another_spec_collide_is_refused(base: Path, run_cli: Run) -> None:
    """`abc` + `def-ghi` derives the same object names as `abc-def` + `ghi`: the second edit writes nothing."""
    ok(run_cli(["new", "abc-def", "--env", "dev", "--version-name", "ghi", *BODY]),
       "environments/dev/endpoints/abc-def.yaml")
    before = changed(base)
    result = run_cli(["new", "abc", "--env", "dev", "--version-name", "def-ghi", *BODY])
    assert result.exit_code == 1
    assert "object name 'abc-def-ghi' in namespace 'ml-endpoints-dev' is also derived from" in result.stderr
    assert changed(base) == before
    assert not (base / "environments/dev/endpoints/abc.yaml").exists()
