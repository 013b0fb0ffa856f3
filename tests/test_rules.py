"""Semantic rules: one failing spec per rule, each with its exact file:line:col, field and message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import line_of, only_problem, problems, replace_in, spec_path, version, where, write_spec

from generator.spec.repository import load_repository

SPEC = "environments/dev/endpoints/demo.yaml"
ENV = "environments/dev/environment.yaml"


# --- endpoint level ----------------------------------------------------------------------------

def test_name_must_equal_file_stem(repo: Path) -> None:
    write_spec(repo, "demo", "name: other\nversions:\n" + version())
    p = only_problem(repo)
    assert where(p) == (SPEC, 1, 7, "name")
    assert p.message == "must equal the file name 'demo' (the file is demo.yaml)"


def test_yml_extension_is_refused(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\nversions:\n" + version(), suffix=".yml")
    p = only_problem(repo)
    assert where(p) == ("environments/dev/endpoints/demo.yml", 1, 1, "")
    assert p.message == "endpoint specs must be named <endpoint>.yaml, not .yml"


def test_compute_target_name_must_be_the_cluster(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\ncompute_target_name: aks-ml-prod\nversions:\n" + version())
    p = only_problem(repo)
    assert where(p) == (SPEC, 2, 22, "compute_target_name")
    assert p.message == "must equal the cluster of environment 'dev' ('aks-ml-dev'), got 'aks-ml-prod'"


def test_compute_target_name_equal_to_the_cluster_is_accepted(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\ncompute_target_name: aks-ml-dev\nversions:\n" + version())
    assert problems(repo) == []


def test_key_auth_and_token_auth_exclude_each_other(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\nauth_enabled: true\ntoken_auth_enabled: true\nversions:\n" + version())
    p = only_problem(repo)
    assert where(p) == (SPEC, 2, 15, "auth_enabled")
    assert p.message == "auth_enabled and token_auth_enabled cannot both be true; choose key or token auth"


def test_token_auth_alone_switches_key_auth_off(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\ntoken_auth_enabled: true\nversions:\n" + version())
    assert problems(repo) == []


def test_token_auth_needs_the_environment_token_auth_section(repo: Path) -> None:
    env = repo / ENV
    text = env.read_text()
    start = text.index("token_auth:")
    end = text.index("\n\n", start) + 1
    env.write_text(text[:start] + text[end:])
    write_spec(repo, "demo", "name: demo\ntoken_auth_enabled: true\nversions:\n" + version())
    p = only_problem(repo)
    assert where(p) == (SPEC, 2, 21, "token_auth_enabled")
    assert p.message == "environment 'dev' has no token_auth (issuer, audiences) section"


def test_secondary_key_secret_needs_a_primary(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\nauth_keys:\n  secondary_key_secret: demo-key-2\nversions:\n" + version())
    p = only_problem(repo)
    assert where(p) == (SPEC, 3, 25, "auth_keys.secondary_key_secret")
    assert p.message == "a secondary key without a primary key is meaningless; set primary_key_secret too"


def test_auth_keys_need_key_auth(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\nauth_enabled: false\nauth_keys:\n  primary_key_secret: demo-key\n"
               "versions:\n" + version())
    p = only_problem(repo)
    assert where(p) == (SPEC, 4, 3, "auth_keys")
    assert p.message == "auth_keys is set but key auth is off (auth_enabled is false)"


def test_key_auth_needs_a_key_vault(repo: Path) -> None:
    env = repo / ENV
    text = env.read_text()
    start = text.index("key_vault:")
    end = text.index("\n\n", start) + 1
    env.write_text(text[:start] + text[end:])
    write_spec(repo, "demo", "name: demo\nversions:\n" + version())
    write_spec(repo, "keyed", "name: keyed\nauth_keys:\n  primary_key_secret: keyed-key\nversions:\n" + version())
    found = problems(repo)
    assert [where(p) for p in found] == [
        (SPEC, 1, 1, "auth_enabled"),  # key auth by default, nothing written: the top of the file
        ("environments/dev/endpoints/keyed.yaml", 3, 3, "auth_keys"),
        ("environments/dev/endpoints/sentiment.yaml", 6, 15, "auth_enabled"),
    ]
    assert found[0].message == ("key auth needs the scoring keys in Key Vault, but environment 'dev' has no "
                                "key_vault section; add one, or set auth_enabled: false")
    assert found[1].message == "no key_vault here and none in environment 'dev'"


def test_app_insights_needs_the_environment_sections(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\nenable_app_insights: true\nversions:\n" + version())
    p = only_problem(repo)
    assert where(p) == (SPEC, 2, 22, "enable_app_insights")
    assert p.message.startswith("environment 'dev' has no app_insights section")


def test_collect_model_data_needs_somewhere_to_collect_to(repo: Path) -> None:
    """dev has neither model_data_collection nor App Insights: the collection would be a silent no-op."""
    write_spec(repo, "demo", "name: demo\nversions:\n" + version("blue", "    collect_model_data: true\n")
               + version("green"))
    p = only_problem(repo)
    assert where(p) == (SPEC, 4, 25, "versions[0].collect_model_data")
    assert p.message == (
        "nothing would collect: environment 'dev' has no model_data_collection.storage_connection_string_secret "
        "(where a script's azureml-monitoring ModelDataCollector uploads, to Blob Storage) and the endpoint has no "
        "enable_app_insights (where the inference server sends inputs and predictions); give one, or set "
        "collect_model_data: false")


def test_collect_model_data_inherited_from_the_defaults_is_found_there(repo: Path) -> None:
    replace_in(repo / "environments/dev/environment.yaml", "defaults:\n", "defaults:\n  collect_model_data: true\n")
    found = problems(repo)
    assert {p.field for p in found} == {"versions[0].collect_model_data (from defaults.collect_model_data)",
                                        "versions[1].collect_model_data (from defaults.collect_model_data)"}
    assert {(p.path, p.line) for p in found} == {("environments/dev/environment.yaml",
                                                  line_of(repo / "environments/dev/environment.yaml",
                                                          "collect_model_data: true"))}


def test_collect_model_data_passes_with_storage_or_with_app_insights(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\nversions:\n" + version("blue", "    collect_model_data: true\n"))
    replace_in(repo / "environments/dev/environment.yaml", "defaults:\n",
               "model_data_collection:\n  storage_connection_string_secret: modeldata-dev\n\ndefaults:\n")
    assert problems(repo) == []  # the collector uploads to the storage of dev's Key Vault secret
    prod_env = repo / "environments/prod/environment.yaml"  # prod's green collects, with App Insights on
    prod_env.write_text(re.sub(r"\nmodel_data_collection:.*?\n\n", "\n", prod_env.read_text(), flags=re.S))
    assert "model_data_collection" not in prod_env.read_text()
    assert problems(repo, ["prod"]) == []  # the server's own collection sends to App Insights


def test_model_data_storage_needs_the_key_vault(repo: Path) -> None:
    dev_env = repo / "environments/dev/environment.yaml"
    dev_env.write_text(re.sub(r"\nkey_vault:\n(  .*\n)+", "\n", dev_env.read_text()))
    assert "key_vault" not in dev_env.read_text()
    replace_in(repo / "environments/dev/environment.yaml", "defaults:\n",
               "model_data_collection:\n  storage_connection_string_secret: modeldata-dev\n\ndefaults:\n")
    write_spec(repo, "demo", "name: demo\nauth_enabled: false\nversions:\n"
               + version("blue", "    collect_model_data: true\n"))
    assert any(p.message == "environment 'dev' has model_data_collection but no key_vault section; the storage "
                            "connection string is read from Key Vault" for p in problems(repo))


# --- versions ------------------------------------------------------------------------------------

def test_duplicate_version_names(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\nversions:\n" + version("blue") + version("green") + version("blue"))
    p = only_problem(repo)
    assert where(p) == (SPEC, 9, 19, "versions[2].version_name")
    assert p.message == "duplicate version name 'blue' (also versions[0])"


def test_two_default_versions(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\nversions:\n" + version("blue", "    is_default: true\n")
               + version("green", "    is_default: true\n"))
    p = only_problem(repo)
    assert where(p) == (SPEC, 8, 17, "versions[1].is_default")
    assert p.message == "only one version can be the default; 'blue' already is"


def test_two_control_versions(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\nversions:\n" + version("blue", "    is_control_version_type: true\n")
               + version("green", "    is_control_version_type: true\n"))
    p = only_problem(repo)
    assert where(p) == (SPEC, 8, 30, "versions[1].is_control_version_type")
    assert p.message == "only one version can be the control; 'blue' already is"


def test_non_default_traffic_above_100_percent(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\nversions:\n" + version("blue", "    traffic_percentile: 50\n")
               + version("green", "    traffic_percentile: 60.5\n")
               + version("red", "    traffic_percentile: 40\n    is_default: true\n"))
    p = only_problem(repo)
    assert where(p) == (SPEC, 3, 3, "versions")
    assert p.message.startswith("traffic_percentile of the non-default versions sums to 110.5% (blue 50 + green 60.5)")
    assert "the default version 'red' takes what the others leave" in p.message


def test_non_default_traffic_of_exactly_100_percent_is_accepted(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\nversions:\n" + version("blue", "    traffic_percentile: 70\n")
               + version("green", "    traffic_percentile: 30\n"))
    assert problems(repo) == []


def test_non_default_traffic_a_hair_above_100_percent(repo: Path) -> None:
    """Sums are exact: 100% plus a tiny fraction is still more than 100%."""
    write_spec(repo, "demo", "name: demo\nversions:\n" + version("blue")
               + version("green", "    traffic_percentile: 100\n")
               + version("red", "    traffic_percentile: 1.0e-30\n"))
    p = only_problem(repo)
    assert where(p) == (SPEC, 3, 3, "versions")
    assert "more than 100%" in p.message


def test_num_replicas_with_autoscale_enabled(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\nversions:\n"
               + version(extra="    autoscale_enabled: true\n    num_replicas: 2\n"))
    p = only_problem(repo)
    assert where(p) == (SPEC, 5, 19, "versions[0].num_replicas")
    assert p.message == "num_replicas cannot be set together with autoscale_enabled: true"


def test_autoscale_disabled_needs_num_replicas(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\nversions:\n" + version(extra="    autoscale_enabled: false\n"))
    p = only_problem(repo)
    assert where(p) == (SPEC, 4, 24, "versions[0].autoscale_enabled")
    assert p.message == "autoscale_enabled: false needs num_replicas"


def test_autoscale_settings_with_num_replicas(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\nversions:\n"
               + version(extra="    num_replicas: 2\n    autoscale_target_utilization: 50\n"))
    p = only_problem(repo)
    assert where(p) == (SPEC, 5, 35, "versions[0].autoscale_target_utilization")
    assert p.message == "autoscale_target_utilization has no effect with autoscaling off (num_replicas is set)"


def test_num_replicas_with_autoscale_disabled_is_accepted(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\nversions:\n"
               + version(extra="    autoscale_enabled: false\n    num_replicas: 2\n"))
    assert problems(repo) == []


def test_min_replicas_above_max_replicas_in_the_version(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\nversions:\n"
               + version(extra="    autoscale_max_replicas: 3\n    autoscale_min_replicas: 5\n"))
    p = only_problem(repo)
    assert where(p) == (SPEC, 5, 29, "versions[0].autoscale_min_replicas")
    assert p.message == "autoscale_min_replicas (5) exceeds autoscale_max_replicas (3)"


def test_min_replicas_in_the_version_above_max_replicas_from_the_environment(repo: Path) -> None:
    """The dev environment's defaults cap autoscale_max_replicas at 2; the version's own value is reported."""
    write_spec(repo, "demo", "name: demo\nversions:\n" + version(extra="    autoscale_min_replicas: 3\n"))
    p = only_problem(repo)
    assert where(p) == (SPEC, 4, 29, "versions[0].autoscale_min_replicas")
    assert p.message == "autoscale_min_replicas (3) exceeds autoscale_max_replicas (2)"


def test_limit_inherited_from_the_environment_points_at_the_defaults_entry(repo: Path) -> None:
    """Each version that inherits a bad value is reported at the environment's defaults entry."""
    env = repo / ENV
    replace_in(env, "defaults:\n", "defaults:\n  cpu_cores_limit: 1\n")
    write_spec(repo, "demo", "name: demo\nversions:\n" + version(extra="    cpu_cores: 2\n"))
    line = line_of(env, "cpu_cores_limit: 1")
    found = problems(repo)
    assert [(p.path, p.line, p.col, p.field, p.message) for p in found] == [
        (ENV, line, 20, "versions[0].cpu_cores_limit (from defaults.cpu_cores_limit)",
         f"cpu_cores_limit (1) is below cpu_cores (2) (in environments/dev/endpoints/{spec})")
        for spec in ("demo.yaml", "image-classifier.yaml")
    ]  # sentiment keeps the 0.1 core default request and is fine


def test_max_replicas_in_the_version_below_min_replicas_from_the_environment(repo: Path) -> None:
    env = repo / ENV
    replace_in(env, "defaults:\n", "defaults:\n  autoscale_min_replicas: 3\n")
    replace_in(env, "autoscale_max_replicas: 2", "autoscale_max_replicas: 5")
    write_spec(repo, "demo", "name: demo\nversions:\n" + version(extra="    autoscale_max_replicas: 2\n"))
    p = [p for p in problems(repo) if p.path == SPEC][0]
    assert where(p) == (SPEC, 4, 29, "versions[0].autoscale_max_replicas")
    assert p.message == "autoscale_min_replicas (3) exceeds autoscale_max_replicas (2)"


def test_limits_below_requests(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\nversions:\n"
               + version(extra="    cpu_cores: 2\n    cpu_cores_limit: 1\n    memory_gb: 4\n    memory_gb_limit: 2\n"))
    found = problems(repo)
    assert [where(p) for p in found] == [
        (SPEC, 5, 22, "versions[0].cpu_cores_limit"),
        (SPEC, 7, 22, "versions[0].memory_gb_limit"),
    ]
    assert found[0].message == "cpu_cores_limit (1) is below cpu_cores (2)"
    assert found[1].message == "memory_gb_limit (2) is below memory_gb (4)"


def test_limit_below_a_request_from_the_environment(repo: Path) -> None:
    env = repo / ENV
    replace_in(env, "defaults:\n", "defaults:\n  memory_gb: 4\n")
    write_spec(repo, "demo", "name: demo\nversions:\n" + version(extra="    memory_gb_limit: 2\n"))
    p = only_problem(repo)
    assert where(p) == (SPEC, 4, 22, "versions[0].memory_gb_limit")
    assert p.message == "memory_gb_limit (2) is below memory_gb (4)"


def test_cpu_finer_than_a_millicore(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\nversions:\n" + version(extra="    cpu_cores: 0.0005\n"))
    p = only_problem(repo)
    assert where(p) == (SPEC, 4, 16, "versions[0].cpu_cores")
    assert p.message == "0.0005 is finer than a millicore; use a multiple of 0.001"


def test_cpu_of_whole_millicores_is_accepted(repo: Path) -> None:
    write_spec(repo, "demo",
               "name: demo\nversions:\n" + version(extra="    cpu_cores: 0.125\n    cpu_cores_limit: 1.5\n"))
    assert problems(repo) == []


def test_object_name_longer_than_63_characters(repo: Path) -> None:
    endpoint, name = "e" * 32, "v" * 31  # 32 + '-' + 31 = 64
    write_spec(repo, endpoint, f"name: {endpoint}\nversions:\n" + version(name))
    p = only_problem(repo)
    assert where(p) == (f"environments/dev/endpoints/{endpoint}.yaml", 3, 19, "versions[0].version_name")
    assert p.message.startswith(f"'{endpoint}-{name}' (64 characters) names this version's Kubernetes Service")


def test_object_name_of_63_characters_is_accepted(repo: Path) -> None:
    endpoint, name = "e" * 32, "v" * 30
    write_spec(repo, endpoint, f"name: {endpoint}\nversions:\n" + version(name))
    assert problems(repo) == []


def test_colliding_object_names_in_one_namespace(repo: Path) -> None:
    """Endpoint `abc-def` version `ghi` and endpoint `abc` version `def-ghi` both derive `abc-def-ghi`."""
    write_spec(repo, "abc-def", "name: abc-def\nversions:\n" + version("ghi"))
    write_spec(repo, "abc", "name: abc\nversions:\n" + version("aaa") + version("def-ghi"))
    p = only_problem(repo)
    assert where(p) == ("environments/dev/endpoints/abc.yaml", 6, 19, "versions[1].version_name")
    assert p.message == ("object name 'abc-def-ghi' in namespace 'ml-endpoints-dev' is also derived from "
                         "abc-def/ghi; rename one version")


def test_same_object_names_in_different_namespaces_do_not_collide(repo: Path) -> None:
    write_spec(repo, "abc-def", "name: abc-def\nversions:\n" + version("ghi"))
    write_spec(repo, "abc", "name: abc\nnamespace: other\nversions:\n" + version("def-ghi"))
    assert problems(repo) == []


def test_same_namespace_name_in_two_environments_does_not_collide(repo: Path) -> None:
    """Each environment is its own cluster, so equal names there are different objects."""
    write_spec(repo, "abc-def", "name: abc-def\nnamespace: shared\nversions:\n" + version("ghi"))
    write_spec(repo, "abc", "name: abc\nnamespace: shared\nversions:\n" + version("def-ghi"), env="prod")
    assert problems(repo, ["dev", "prod"]) == []


def test_duplicate_models(repo: Path) -> None:
    write_spec(repo, "demo", """\
        name: demo
        versions:
          - version_name: blue
            models:
              - {name: m, version: 3, uri: "https://m.blob.core.windows.net/m/3"}
              - {name: n, version: 3, uri: "https://m.blob.core.windows.net/n/3"}
              - {name: m, version: "3", uri: "https://m.blob.core.windows.net/m/3-again"}
            inference_config: {image: acr.azurecr.io/s:1, entry_script: score.py}
        """)
    p = only_problem(repo)
    assert where(p) == (SPEC, 7, 9, "versions[0].models[2]")
    assert p.message == "model m:3 is listed twice"


def test_reserved_environment_variable(repo: Path) -> None:
    write_spec(repo, "demo", """\
        name: demo
        versions:
          - version_name: blue
            models: [{name: m, version: 1, uri: "https://m.blob.core.windows.net/m/1"}]
            inference_config:
              image: acr.azurecr.io/s:1
              entry_script: score.py
              environment_variables:
                LOG_LEVEL: info
                azureml_model_dir: /tmp
        """)
    p = only_problem(repo)
    assert where(p) == (SPEC, 10, 28, "versions[0].inference_config.environment_variables.azureml_model_dir")
    assert p.message == "azureml_model_dir is set by endpointgen from the spec; remove it"


def test_secret_like_environment_variables(repo: Path) -> None:
    write_spec(repo, "demo", """\
        name: demo
        versions:
          - version_name: blue
            models: [{name: m, version: 1, uri: "https://m.blob.core.windows.net/m/1"}]
            inference_config:
              image: acr.azurecr.io/s:1
              entry_script: score.py
              environment_variables:
                DB_PASSWORD: hunter2
                STORAGE_CONNECTION_STRING: x
                api_key: y
                TOKENIZER_PATH: /models/tok
        """)
    found = problems(repo)
    assert [(p.line, p.col, p.field.rsplit(".", 1)[1]) for p in found] == [
        (9, 22, "DB_PASSWORD"), (10, 36, "STORAGE_CONNECTION_STRING"), (11, 18, "api_key"),
    ]
    assert all("looks like a secret" in p.message and "Key Vault" in p.message for p in found)
    assert all("hunter2" not in p.message for p in found)


# --- environment files -----------------------------------------------------------------------------

def test_environment_name_must_equal_its_folder(repo: Path) -> None:
    env = repo / ENV
    replace_in(env, "name: dev\n", "name: develop\n")
    p = only_problem(repo)
    assert where(p) == (ENV, line_of(env, "name: develop"), 7, "name")
    assert p.message == "must equal the folder name 'dev'"


def test_endpoints_of_a_broken_environment_still_get_schema_checks(repo: Path) -> None:
    env = repo / ENV
    replace_in(env, 'kubernetes_version: "1.33"', "kubernetes_version: 1.33")
    write_spec(repo, "demo", "name: demo\nversions:\n" + version("v1"))
    found = problems(repo)
    assert [(p.path, p.field) for p in found] == [
        (SPEC, "versions[0].version_name"),
        (ENV, "kubernetes_version"),
    ]


# --- all problems at once --------------------------------------------------------------------------

def test_every_semantic_problem_of_a_file_is_reported_at_once(repo: Path) -> None:
    write_spec(repo, "demo", "name: other\nauth_enabled: true\ntoken_auth_enabled: true\nversions:\n"
               + version("blue", "    is_default: true\n    num_replicas: 2\n    autoscale_min_replicas: 2\n")
               + version("blue", "    is_default: true\n    cpu_cores: 0.0001\n"))
    found = [(p.line, p.col, p.field) for p in problems(repo)]
    assert found == [
        (1, 7, "name"),
        (2, 15, "auth_enabled"),
        (8, 29, "versions[0].autoscale_min_replicas"),
        (11, 19, "versions[1].version_name"),
        (12, 17, "versions[1].is_default"),
        (13, 16, "versions[1].cpu_cores"),
    ]


def test_problems_of_every_file_and_environment_are_reported_at_once(repo: Path) -> None:
    write_spec(repo, "demo", "name: other\nversions:\n" + version())
    write_spec(repo, "broken", "name: broken\nversions: [\n")
    write_spec(repo, "demo", "name: demo\nversions:\n" + version("v1"), env="prod")
    found = {(p.path, p.line, p.col) for p in load_repository(repo).problems}
    assert found == {
        ("environments/dev/endpoints/broken.yaml", 3, 1),
        (SPEC, 1, 7),
        ("environments/prod/endpoints/demo.yaml", 3, 19),
    }


def test_a_valid_endpoint_is_kept_when_a_sibling_is_broken(repo: Path) -> None:
    write_spec(repo, "broken", "name: other\nversions:\n" + version())
    loaded = load_repository(repo, ["dev"])
    assert sorted(ep.name for ep in loaded.endpoints) == ["image-classifier", "sentiment"]
    assert spec_path(repo, "broken").exists() and len(loaded.problems) == 1


@pytest.mark.parametrize(
    ("low", "high", "low_value", "high_value"),
    [("autoscale_min_replicas", "autoscale_max_replicas", 5, 3), ("cpu_cores", "cpu_cores_limit", 2, 1),
     ("memory_gb", "memory_gb_limit", 4, 2)],
)
def test_environment_defaults_must_be_consistent_on_their_own(
    repo: Path, low: str, high: str, low_value: float, high_value: float
) -> None:
    env_file = repo / "environments/dev/environment.yaml"
    text = "\n".join(line for line in env_file.read_text().splitlines() if not line.startswith(f"  {high}:"))
    text = text.replace("defaults:\n", f"defaults:\n  {low}: {low_value}\n  {high}: {high_value}\n", 1) + "\n"
    env_file.write_text(text)
    line = text.splitlines().index(f"  {high}: {high_value}") + 1
    found = problems(repo)
    assert [str(p) for p in found] == [
        f"environments/dev/environment.yaml:{line}:{len(high) + 5}: defaults.{high}: "
        f"{high} ({high_value}) is below {low} ({low_value})"
    ]


def test_environment_default_cpu_finer_than_a_millicore(repo: Path) -> None:
    env_file = repo / "environments/dev/environment.yaml"
    env_file.write_text(env_file.read_text().replace("defaults:\n", "defaults:\n  cpu_cores: 0.0001\n", 1))
    found = problems(repo)
    assert [(p.field, p.message) for p in found] == [
        ("defaults.cpu_cores", "0.0001 is finer than a millicore; use a multiple of 0.001")
    ]


def test_a_file_holding_only_a_document_marker_is_empty(repo: Path) -> None:
    write_spec(repo, "demo", "---\n")
    assert [str(p) for p in problems(repo)] == [f"{SPEC}:1:1: file is empty; expected a YAML mapping"]


@pytest.mark.parametrize("namespace", ["kube-system", "default", "flux-system", "aks-istio-ingress", "aks-command"])
def test_system_namespaces_are_refused(repo: Path, namespace: str) -> None:
    write_spec(repo, "demo", f"name: demo\nnamespace: {namespace}\nversions:\n" + version())
    p = only_problem(repo)
    assert where(p) == (SPEC, 2, 12, "namespace")
    assert p.message == (f"namespace {namespace!r} belongs to the cluster or the platform; "
                         "endpoints need a namespace of their own")


def test_an_endpoint_cannot_be_called_platform(repo: Path) -> None:
    spec = "environments/dev/endpoints/platform.yaml"
    write_spec(repo, "platform", "name: platform\nversions:\n" + version())
    found = [p for p in problems(repo) if p.path == spec]
    assert [(p.line, p.col, p.field) for p in found] == [(1, 7, "name")]
    assert found[0].message.startswith("'platform' is reserved")
