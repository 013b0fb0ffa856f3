"""`endpointgen import` on files made by the Azure ML SDK v1's own code (tests/fixtures/sdkv1, see its README),
the round trip through `endpointgen serialize`, and malformed and hostile inputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from render_helpers import PROJECT, copy_examples, run_cli

SDK = PROJECT / "tests" / "fixtures" / "sdkv1"
CHURN = SDK / "endpoints" / "churn-endpoint"
FRAUD = SDK / "endpoints" / "fraud-endpoint"
CHURN_IMAGES = ["--image", "blue=mlacr.azurecr.io/churn:1.0", "--image", "green=mlacr.azurecr.io/churn:2.0",
                "--image", "canary=mlacr.azurecr.io/churn:2.1"]
# The AksEndpoint fields serialize() gives back (names, traffic, flags, scaling, resources, probe, timeouts,
# data collection); the service-owned ones (state, times, URIs, images) and the model details are compared apart.
VERSION_KEYS = ["name", "description", "tags", "properties", "autoScaler", "containerResourceRequirements",
                "maxConcurrentRequestsPerContainer", "maxQueueWaitMs", "livenessProbeRequirements", "numReplicas",
                "scoringTimeoutMs", "isDefault", "trafficPercentile", "versionType"]
ENDPOINT_KEYS = ["name", "description", "tags", "properties", "authEnabled", "aadAuthEnabled", "appInsightsEnabled"]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return copy_examples(tmp_path / "repo")


def imported(repo: Path, *args: str) -> tuple[Any, dict[str, Any]]:
    result = run_cli(repo, "import", "--env", "prod", *args)
    assert result.exit_code == 0, result.output + result.stderr
    name = next(a.split("=", 1)[1] for a in args if a.startswith("--name=")) if any(
        a.startswith("--name=") for a in args) else None
    paths = sorted((repo / "environments" / "prod" / "endpoints").glob("*.yaml"))
    spec = next(p for p in paths if name is None or p.stem == name) if name else None
    return result, yaml.safe_load(spec.read_text()) if spec else {}


def comparable_version(v: dict[str, Any]) -> dict[str, Any]:
    out = {k: v.get(k) for k in VERSION_KEYS}
    out["description"] = v.get("description") or ""  # the service keeps no description as null, ours as ""
    out["containerResourceRequirements"] = {k: float(x) if isinstance(x, (int, float)) and k != "gpu" else x
                                            for k, x in (v["containerResourceRequirements"] or {}).items()}
    if not v["autoScaler"]["autoscaleEnabled"]:
        out["autoScaler"] = {"autoscaleEnabled": False}  # min/max/... mean nothing with fixed replicas
    out["dataCollection"] = bool((v.get("dataCollection") or {}).get("storageEnabled"))
    out["models"] = [(m["name"], int(m["version"])) for m in v.get("modelDetails") or []]
    out["trafficPercentile"] = float(v["trafficPercentile"])
    return out


@pytest.mark.parametrize("folder, images", [
    (CHURN, CHURN_IMAGES),  # key auth, App Insights, GPU, fixed replicas, limits, data collection
    (FRAUD, ["--image", "prod=mlacr.azurecr.io/fraud:3.0", "--image", "shadow=mlacr.azurecr.io/fraud:3.1"]),  # token
], ids=["churn", "fraud"])
def test_round_trip_of_the_sdks_serialize_output(repo: Path, folder: Path, images: list[str]) -> None:
    source = json.loads((folder / "serialize.json").read_text())
    result = run_cli(repo, "import", "--env", "prod", str(folder / "serialize.json"), *images)
    assert result.exit_code == 0, result.stderr
    assert f"wrote environments/prod/endpoints/{source['name']}.yaml" in result.stdout
    serialized = run_cli(repo, "serialize", source["name"], "--env", "prod")
    assert serialized.exit_code == 0, serialized.stderr
    back = json.loads(serialized.stdout)
    assert {k: back[k] for k in ENDPOINT_KEYS} == {k: source[k] for k in ENDPOINT_KEYS}
    assert list(back["versions"]) == list(source["versions"])
    for name, version in source["versions"].items():
        assert comparable_version(back["versions"][name]) == comparable_version(version), name


def test_the_service_json_imports_like_its_serialize_output(repo: Path, tmp_path: Path) -> None:
    from_service = run_cli(repo, "import", "--env", "prod", str(CHURN / "service.json"), *CHURN_IMAGES, "--dry-run")
    from_serialize = run_cli(repo, "import", "--env", "prod", str(CHURN / "serialize.json"), *CHURN_IMAGES,
                             "--dry-run")
    assert from_service.exit_code == from_serialize.exit_code == 0, from_service.stderr + from_serialize.stderr
    body = [line for line in from_service.stdout.splitlines() if not line.startswith("#")]
    # serialize() drops the namespace (the SDK's own loss); the service JSON keeps it
    assert body == [line for line in from_serialize.stdout.splitlines() if not line.startswith("#")][:1] + [
        "namespace: ml-prod"] + [line for line in from_serialize.stdout.splitlines() if not line.startswith("#")][1:]
    assert not (repo / "environments/prod/endpoints/churn-endpoint.yaml").exists()  # --dry-run writes nothing


def test_deployment_configs_with_an_inference_config(repo: Path) -> None:
    configs = sorted(str(p) for p in CHURN.glob("deploymentconfig-*"))
    result = run_cli(repo, "import", "--env", "prod", "--name", "churn-endpoint", *configs,
                     str(SDK / "inferenceconfig.json"), *CHURN_IMAGES)
    assert result.exit_code == 0, result.stderr
    spec = yaml.safe_load((repo / "environments/prod/endpoints/churn-endpoint.yaml").read_text())
    by_name = {v["version_name"]: v for v in spec["versions"]}
    assert set(by_name) == {"blue", "green", "canary"}
    assert by_name["blue"]["inference_config"]["entry_script"] == "score.py"
    assert by_name["blue"]["inference_config"]["source_directory"] == "/var/azureml-app/src"
    assert by_name["blue"]["inference_config"]["environment_variables"] == {"MODEL_LOG_LEVEL": "INFO",
                                                                            "OMP_NUM_THREADS": "1"}
    # keys are never imported; the output says where they go
    text = (repo / "environments/prod/endpoints/churn-endpoint.yaml").read_text()
    assert "fixture-primary-key" not in text and "fixture-secondary-key" not in text
    assert "keys.primaryKey was not imported" in result.stderr
    assert "churn-endpoint-primary-key" in result.stderr and "kv-ml-prod" in result.stderr
    assert spec["auth_keys"] == {"primary_key_secret": "churn-endpoint-primary-key",
                                 "secondary_key_secret": "churn-endpoint-secondary-key"}
    # images v1 built run as root; endpointgen runs them as a numeric non-root user: the output says so
    assert result.stderr.count("runs as a non-root user (run_as_user, default 1000)") == 3


def test_a_curated_inference_image_needs_no_warning_about_its_user(repo: Path) -> None:
    curated = "mcr.microsoft.com/azureml/minimal-ubuntu22.04-py311-cpu-inference:20250801.v1"
    result = run_cli(repo, "import", "--env", "prod", "--name", "churn-endpoint",
                     str(CHURN / "deploymentconfig-canary.yml"), str(SDK / "inferenceconfig.json"),
                     "--image", f"canary={curated}", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "run_as_user" not in result.stderr and curated in result.stdout


def test_values_the_source_leaves_out_keep_the_sdks_defaults(repo: Path) -> None:
    """prod's defaults (cpu 0.5, memory 1, max 6 replicas, 60 s initial delay) differ from v1's: spelled out."""
    result = run_cli(repo, "import", "--env", "prod", "--name", "churn-endpoint",
                     str(CHURN / "deploymentconfig-canary.yml"), str(SDK / "inferenceconfig.json"),
                     "--image", "canary=mlacr.azurecr.io/churn:2.1")
    assert result.exit_code == 0, result.stderr
    [canary] = yaml.safe_load((repo / "environments/prod/endpoints/churn-endpoint.yaml").read_text())["versions"]
    assert (canary["cpu_cores"], canary["memory_gb"]) == (0.1, 0.5)
    assert canary["autoscale_max_replicas"] == 10 and canary["initial_delay_seconds"] == 310
    assert "max_request_wait_time" not in canary  # 500 ms: the SDK's and endpointgen's default alike


def test_a_version_without_an_image_is_refused_with_the_list(repo: Path) -> None:
    result = run_cli(repo, "import", "--env", "prod", str(CHURN / "serialize.json"), "--image",
                     "blue=mlacr.azurecr.io/churn:1.0")
    assert result.exit_code == 2
    assert "give the image each runs now with --image VERSION=IMAGE: green, canary" in result.stderr
    assert not (repo / "environments/prod/endpoints/churn-endpoint.yaml").exists()


def test_versions_without_models_are_said(repo: Path, tmp_path: Path) -> None:
    source = write_json(tmp_path, "serialize.json", churn_with(lambda d: d["versions"]["canary"].pop("modelDetails")))
    result = run_cli(repo, "import", "--env", "prod", str(source), *CHURN_IMAGES, "--dry-run")
    assert result.exit_code == 0, result.stderr
    without = [line for line in result.stderr.splitlines() if "no models come with this version" in line]
    assert without == [
        f"endpointgen: warning: {source}: version canary: no models come with this version, so the spec has none: "
        "its image must hold the model (without models there is no AZUREML_MODEL_DIR); to load them as v1 did, "
        "`endpointgen update-version churn-endpoint canary --env prod --model NAME:VERSION=URI`"]
    assert [len(v.get("models", [])) for v in yaml.safe_load(result.stdout)["versions"]] == [2, 2, 0]


def test_deployment_configs_never_bring_models_and_the_import_says_so(repo: Path) -> None:
    configs = sorted(str(p) for p in CHURN.glob("deploymentconfig-*"))
    result = run_cli(repo, "import", "--env", "prod", "--name", "churn-endpoint", *configs,
                     str(SDK / "inferenceconfig.json"), *CHURN_IMAGES, "--dry-run")
    assert result.exit_code == 0, result.stderr
    said = [line for line in result.stderr.splitlines() if "no models come with this version" in line]
    assert [line.split(": ")[2] for line in said] == configs  # each version, named by its file
    assert all(line.endswith("(deployment config files never name models: Model.deploy was given them)")
               for line in said)


@pytest.mark.parametrize("args, message", [
    (["--image", "bleu=mlacr.azurecr.io/churn:1.0", *CHURN_IMAGES[2:]],
     "--image names no version of the source: 'bleu' (did you mean 'blue'?); its versions: blue, green, canary"),
    ([*CHURN_IMAGES, "--model-uri", "churn-modle:3=https://models.example.com/churn-model/3"],
     "--model-uri names no model of the source: 'churn-modle:3' (did you mean 'churn-model:3'?); its models: "
     "churn-model:3, churn-features:1, churn-model:4"),
    ([*CHURN_IMAGES, "--model-uri", "resnet:7=https://models.example.com/resnet/7"],
     "--model-uri names no model of the source: 'resnet:7'; its models: churn-model:3, churn-features:1, "
     "churn-model:4"),  # nothing near enough to suggest
    ([*CHURN_IMAGES, "--image", "gren=x.azurecr.io/a:1", "--model-uri", "churn-features:2=https://m.example.com/f"],
     "--image names no version of the source: 'gren' (did you mean 'green'?); its versions: blue, green, canary; "
     "--model-uri names no model of the source: 'churn-features:2' (did you mean 'churn-features:1'?); its "
     "models: churn-model:3, churn-features:1, churn-model:4"),  # both in one message
], ids=["image", "model-uri", "model-uri-far", "both"])
def test_options_naming_nothing_in_the_source_are_refused_with_a_suggestion(repo: Path, args: list[str],
                                                                              message: str) -> None:
    result = run_cli(repo, "import", "--env", "prod", str(CHURN / "serialize.json"), *args)
    assert result.exit_code == 2
    assert result.stderr == f"endpointgen: error: {message}\n"
    assert not (repo / "environments/prod/endpoints/churn-endpoint.yaml").exists()


def test_collect_model_data_is_kept_and_said_when_the_environment_cannot_collect(repo: Path, tmp_path: Path) -> None:
    """dev has no model_data_collection; without App Insights, blue's collection would go nowhere."""
    source = write_json(tmp_path, "serialize.json", churn_with(lambda d: d.update(appInsightsEnabled=False)))
    result = run_cli(repo, "import", "--env", "dev", str(source), *CHURN_IMAGES)
    assert result.exit_code == 0, result.stderr
    assert ("endpointgen: warning: collect_model_data is kept (blue), but environment 'dev' cannot collect: give it "
            "model_data_collection.storage_connection_string_secret") in result.stderr
    spec = yaml.safe_load((repo / "environments/dev/endpoints/churn-endpoint.yaml").read_text())
    assert [v.get("collect_model_data", False) for v in spec["versions"]] == [True, False, False]
    refused = run_cli(repo, "validate", "--env", "dev", "--specs-only")
    assert refused.exit_code == 1
    assert "versions[0].collect_model_data: nothing would collect" in refused.stderr
    # prod collects to storage: nothing to say
    result = run_cli(repo, "import", "--env", "prod", str(source), *CHURN_IMAGES)
    assert result.exit_code == 0, result.stderr
    assert "cannot collect" not in result.stderr


def test_an_existing_spec_is_kept_unless_force(repo: Path) -> None:
    args = ["import", "--env", "prod", str(CHURN / "serialize.json"), *CHURN_IMAGES]
    assert run_cli(repo, *args).exit_code == 0
    again = run_cli(repo, *args)
    assert again.exit_code == 2 and "exists; --force replaces it" in again.stderr
    assert run_cli(repo, *args, "--force").exit_code == 0


def test_model_uris_from_the_command_line(repo: Path) -> None:
    uri = "https://mlmodelsprod.blob.core.windows.net/models/churn-model/3"
    result = run_cli(repo, "import", "--env", "prod", str(CHURN / "serialize.json"), *CHURN_IMAGES,
                     "--model-uri", f"churn-model:3={uri}", "--dry-run")
    assert result.exit_code == 0, result.stderr
    blue = yaml.safe_load(result.stdout)["versions"][0]
    assert blue["models"][0] == {"name": "churn-model", "version": 3, "uri": uri}
    assert blue["models"][1]["uri"] == "azureml://models/churn-features/versions/1"  # the documented default


def write_json(tmp_path: Path, name: str, data: Any) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def churn_with(change: Any) -> dict[str, Any]:
    data = json.loads((CHURN / "serialize.json").read_text())
    change(data)
    return data


@pytest.mark.parametrize("content, message", [
    ("not json at all: [", "invalid YAML"),  # JSON is read as YAML 1.2: the parser's error, with its line
    ('{"computeType": "ACI", "versionName": "x"}', "not an AksEndpoint file"),
    ('{"computeType": "AKS", "versions": {}}', "computeType 'AKS' is not an AksEndpoint"),
    ("[1, 2]", "not an AksEndpoint file"),
])
def test_malformed_files_are_refused(repo: Path, tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = run_cli(repo, "import", "--env", "prod", str(path), "--image", "x=a.io/b:1")
    assert result.exit_code in (1, 2)
    assert message in result.stderr
    assert list((repo / "environments/prod/endpoints").glob("churn*")) == []


def test_a_huge_file_is_refused(repo: Path, tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    path.write_text('{"name": "' + "x" * (2 * 1024 * 1024) + '"}')
    result = run_cli(repo, "import", "--env", "prod", str(path))
    assert result.exit_code == 1
    assert "bytes" in result.stderr and "limited" in result.stderr


@pytest.mark.parametrize("change, images, expected", [
    (lambda d: d.update(name="Churn_Endpoint"), CHURN_IMAGES, "name:"),  # not a DNS label
    (lambda d: d["versions"].update({f"extra-{i}": {**d["versions"]["canary"], "name": f"extra-{i}",
                                                     "isDefault": False, "trafficPercentile": 0}
                                     for i in range(4)}),
     CHURN_IMAGES + [a for i in range(4) for a in ("--image", f"extra-{i}=a.io/b:1")], "versions:"),  # 7 versions
    (lambda d: d["versions"]["green"].update(trafficPercentile=95), CHURN_IMAGES, "traffic"),  # over 100
])
def test_invalid_sources_are_refused_with_file_line_problems(repo: Path, tmp_path: Path, change: Any,
                                                             images: list[str], expected: str) -> None:
    path = write_json(tmp_path, "serialize.json", churn_with(change))
    before = sorted(p.name for p in (repo / "environments/prod/endpoints").iterdir())
    result = run_cli(repo, "import", "--env", "prod", str(path), *images)
    assert result.exit_code == 1, result.stderr
    assert "environments/prod/endpoints/" in result.stderr and expected in result.stderr
    assert "the edit was not written" in result.stderr
    assert sorted(p.name for p in (repo / "environments/prod/endpoints").iterdir()) == before


def test_strings_cannot_inject_yaml(repo: Path, tmp_path: Path) -> None:
    hostile = "x\nauth_enabled: false\nversions: []\n# "
    path = write_json(tmp_path, "serialize.json", churn_with(lambda d: (
        d.update(description=hostile), d["tags"].update({"evil": "a: b\n- c"}))))
    result = run_cli(repo, "import", "--env", "prod", str(path), *CHURN_IMAGES)
    assert result.exit_code == 0, result.stderr
    spec = yaml.safe_load((repo / "environments/prod/endpoints/churn-endpoint.yaml").read_text())
    assert spec["description"] == hostile
    assert spec["tags"]["evil"] == "a: b\n- c"
    assert spec["auth_enabled"] is True and len(spec["versions"]) == 3


def test_unmodelled_fields_are_said_and_kept_as_comments(repo: Path, tmp_path: Path) -> None:
    path = write_json(tmp_path, "serialize.json", churn_with(
        lambda d: d["versions"]["blue"].update(customThing=1, dataCollection={"storageEnabled": True,
                                                                               "eventHubEnabled": True})))
    result = run_cli(repo, "import", "--env", "prod", str(path), *CHURN_IMAGES)
    assert result.exit_code == 0, result.stderr
    text = (repo / "environments/prod/endpoints/churn-endpoint.yaml").read_text()
    for field in ("customThing", "eventHubEnabled"):
        assert field in result.stderr
        assert any(line.startswith("# Not imported:") and field in line for line in text.splitlines())


def test_token_auth_quirk_either_flag_turns_it_on(repo: Path, tmp_path: Path) -> None:
    path = write_json(tmp_path, "serialize.json", churn_with(lambda d: d.update(
        authEnabled=False, aadAuthEnabled=False, tokenAuthEnabled=True)))
    result = run_cli(repo, "import", "--env", "prod", str(path), *CHURN_IMAGES, "--dry-run")
    assert result.exit_code == 0, result.stderr
    spec = yaml.safe_load(result.stdout)
    assert (spec["auth_enabled"], spec["token_auth_enabled"]) == (False, True)
    assert "aadAuthEnabled and tokenAuthEnabled disagree" in result.stderr


def test_gpu_in_deployment_configs_is_top_level(repo: Path, tmp_path: Path) -> None:
    config = yaml.safe_load((CHURN / "deploymentconfig-green.json").read_text())
    assert "gpuCores" in config and "gpu" not in config.get("containerResourceRequirements", {})
    result = run_cli(repo, "import", "--env", "prod", "--name", "churn-endpoint", str(CHURN / "deploymentconfig-green.json"),
                     str(SDK / "inferenceconfig.json"), "--image", "green=mlacr.azurecr.io/churn:2.0", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert yaml.safe_load(result.stdout)["versions"][0]["gpu_cores"] == config["gpuCores"]
