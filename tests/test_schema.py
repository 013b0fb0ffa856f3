"""Schema rules: one failing spec per rule, each with its exact file:line:col and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import VERSION_BODY, line_of, only_problem, problems, replace_in, version, where, write_spec

SPEC = "environments/dev/endpoints/demo.yaml"
ENV = "environments/dev/environment.yaml"


def test_minimal_spec_is_valid(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\nversions:\n" + version())
    assert problems(repo) == []


@pytest.mark.parametrize(
    "name",
    ["Demo", "1demo", "demo-", "de_mo", "de", "a" * 33],
    ids=["uppercase", "leading-digit", "trailing-dash", "underscore", "too-short", "33-chars"],
)
def test_endpoint_name_pattern_and_length(repo: Path, name: str) -> None:
    write_spec(repo, "demo", f"name: '{name}'\nversions:\n" + version())
    p = only_problem(repo)
    assert where(p) == (SPEC, 1, 7, "name")
    assert p.message == (
        "expected 3 to 32 characters of a-z, 0-9 and '-', starting with a letter and not ending with '-', "
        f"got {name!r}"
    )


def test_longest_endpoint_name_is_accepted(repo: Path) -> None:
    name = "a" * 32
    write_spec(repo, name, f"name: {name}\nversions:\n" + version("abc"))
    assert problems(repo) == []


@pytest.mark.parametrize("name", ["v1", "V100", "b" * 33, "-ab"], ids=["v1-too-short", "uppercase", "33-chars", "dash"])
def test_version_name_pattern_and_length(repo: Path, name: str) -> None:
    write_spec(repo, "demo", "name: demo\nversions:\n" + version("blue") + version(f"'{name}'"))
    p = only_problem(repo)
    assert where(p) == (SPEC, 6, 19, "versions[1].version_name")
    assert p.message.startswith("expected 3 to 32 characters of a-z, 0-9 and '-'")
    assert p.message.endswith(f"got {name!r}")


@pytest.mark.parametrize("namespace", ["ML-Endpoints", "ml_endpoints", "-ml", "ml-", "n" * 64, "''"])
def test_namespace_pattern_and_length(repo: Path, namespace: str) -> None:
    write_spec(repo, "demo", f"name: demo\nnamespace: {namespace}\nversions:\n" + version())
    p = only_problem(repo)
    assert where(p) == (SPEC, 2, 12, "namespace")
    assert "a DNS-1123 label: up to 63 characters" in p.message


def test_namespace_of_63_characters_is_accepted(repo: Path) -> None:
    write_spec(repo, "demo", f"name: demo\nnamespace: {'n' * 63}\nversions:\n" + version())
    assert problems(repo) == []


def test_unknown_top_level_field_suggests_the_closest(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\ndescripton: typo\nversions:\n" + version())
    p = only_problem(repo)
    assert where(p) == (SPEC, 2, 1, "descripton")
    assert p.message == "unknown field 'descripton'; did you mean 'description'?"


def test_unknown_version_field_suggests_the_closest(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\nversions:\n" + version(extra="    cpu_core: 1\n"))
    p = only_problem(repo)
    assert where(p) == (SPEC, 4, 5, "versions[0].cpu_core")
    assert p.message == "unknown field 'cpu_core'; did you mean 'cpu_cores'?"


def test_unknown_field_without_a_close_match_lists_the_known_ones(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\nversions:\n" + version() + "zzz: 1\n")
    p = only_problem(repo)
    assert where(p) == (SPEC, 6, 1, "zzz")
    assert p.message.startswith("unknown field 'zzz'; expected one of: auth_enabled, auth_keys,")


@pytest.mark.parametrize("field", ["primary_key", "secondary_key"])
def test_plaintext_key_at_endpoint_level_is_refused_with_key_vault_advice(repo: Path, field: str) -> None:
    write_spec(repo, "demo", f"name: demo\n{field}: c2VjcmV0\nversions:\n" + version())
    p = only_problem(repo)
    assert where(p) == (SPEC, 2, 1, field)
    assert p.message.startswith("plaintext keys are not allowed")
    assert "Azure Key Vault" in p.message and "primary_key_secret" in p.message
    assert "c2VjcmV0" not in p.message  # the secret itself is never echoed


@pytest.mark.parametrize("field", ["primary_key", "secondary_key"])
def test_plaintext_key_in_auth_keys_is_refused_with_key_vault_advice(repo: Path, field: str) -> None:
    write_spec(repo, "demo", f"name: demo\nauth_keys:\n  {field}: c2VjcmV0\nversions:\n" + version())
    p = only_problem(repo)
    assert where(p) == (SPEC, 3, 3, f"auth_keys.{field}")
    assert p.message.startswith("plaintext keys are not allowed")
    assert "Azure Key Vault" in p.message
    assert "c2VjcmV0" not in p.message


def test_traffic_percentile_above_100_is_refused(repo: Path) -> None:
    write_spec(repo, "demo",
               "name: demo\nversions:\n" + version() + version("green", "    traffic_percentile: 100.5\n"))
    p = only_problem(repo)
    assert where(p) == (SPEC, 7, 25, "versions[1].traffic_percentile")
    assert p.message == "must be <= 100, got 100.5"


def test_negative_traffic_percentile_is_refused(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\nversions:\n" + version(extra="    traffic_percentile: -1\n"))
    p = only_problem(repo)
    assert where(p) == (SPEC, 4, 25, "versions[0].traffic_percentile")
    assert p.message == "must be >= 0, got -1"


@pytest.mark.parametrize(
    "field",
    ["period_seconds", "initial_delay_seconds", "timeout_seconds", "success_threshold", "failure_threshold",
     "scoring_timeout_ms", "replica_max_concurrent_requests", "max_request_wait_time"],
)
def test_probe_and_timing_values_of_zero_are_refused(repo: Path, field: str) -> None:
    write_spec(repo, "demo", "name: demo\nversions:\n" + version(extra=f"    {field}: 0\n"))
    p = only_problem(repo)
    assert where(p) == (SPEC, 4, 7 + len(field), f"versions[0].{field}")
    assert p.message == "must be >= 1, got 0"


@pytest.mark.parametrize("field", ["cpu_cores", "memory_gb", "cpu_cores_limit", "memory_gb_limit"])
def test_resources_of_zero_are_refused(repo: Path, field: str) -> None:
    write_spec(repo, "demo", "name: demo\nversions:\n" + version(extra=f"    {field}: 0\n"))
    p = only_problem(repo)
    assert where(p) == (SPEC, 4, 7 + len(field), f"versions[0].{field}")
    assert p.message == "must be > 0, got 0"


def test_gpu_cores_zero_is_accepted(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\nversions:\n" + version(extra="    gpu_cores: 0\n"))
    assert problems(repo) == []


@pytest.mark.parametrize("value", ["1.5", "0.5"])
def test_fractional_gpu_cores_are_refused(repo: Path, value: str) -> None:
    write_spec(repo, "demo", "name: demo\nversions:\n" + version(extra=f"    gpu_cores: {value}\n"))
    p = only_problem(repo)
    assert where(p) == (SPEC, 4, 16, "versions[0].gpu_cores")
    assert p.message == f"expected an integer, got a number {value}"


@pytest.mark.parametrize("field", ["gpu_cores", "num_replicas", "autoscale_max_replicas", "period_seconds"])
def test_integer_fields_refuse_whole_floats(repo: Path, field: str) -> None:
    """`2.0` is a float in YAML: Kubernetes integer fields would reject it at apply time."""
    write_spec(repo, "demo", "name: demo\nversions:\n" + version(extra=f"    {field}: 2.0\n"))
    p = problems(repo)[0]
    assert where(p) == (SPEC, 4, 7 + len(field), f"versions[0].{field}")
    assert p.message == "expected an integer, got a number 2.0"


def test_versions_empty_is_refused(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\nversions: []\n")
    p = only_problem(repo)
    assert where(p) == (SPEC, 2, 11, "versions")
    assert p.message == "needs at least 1 item(s), got 0"


def test_more_than_six_versions_are_refused(repo: Path) -> None:
    names = ["aaa", "bbb", "ccc", "ddd", "eee", "fff", "ggg"]
    write_spec(repo, "demo", "name: demo\nversions:\n" + "".join(version(n) for n in names))
    p = only_problem(repo)
    assert where(p) == (SPEC, 3, 3, "versions")
    assert p.message == "allows at most 6 item(s), got 7"


def test_six_versions_are_accepted(repo: Path) -> None:
    names = ["aaa", "bbb", "ccc", "ddd", "eee", "fff"]
    write_spec(repo, "demo", "name: demo\nversions:\n" + "".join(version(n) for n in names))
    assert problems(repo) == []


def test_string_for_an_integer_is_refused(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\nversions:\n" + version(extra='    num_replicas: "2"\n'))
    p = only_problem(repo)
    assert where(p) == (SPEC, 4, 19, "versions[0].num_replicas")
    assert p.message == "expected an integer, got a string '2'"


def test_number_for_a_string_suggests_quoting(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\ntags:\n  cost-center: 4711\nversions:\n" + version())
    p = only_problem(repo)
    assert where(p) == (SPEC, 3, 16, "tags.cost-center")
    assert p.message == "expected a string, got an integer 4711; quote the value to make it a string"


def test_string_for_a_boolean_is_refused(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\nauth_enabled: 'false'\nversions:\n" + version())
    p = only_problem(repo)
    assert where(p) == (SPEC, 2, 15, "auth_enabled")
    assert p.message == "expected a boolean, got a string 'false'"


def test_missing_required_top_level_field(repo: Path) -> None:
    write_spec(repo, "demo", "# a comment first\nname: demo\n")
    p = only_problem(repo)
    assert where(p) == (SPEC, 2, 1, "")
    assert p.message == "missing required field 'versions'"
    assert str(p) == f"{SPEC}:2:1: missing required field 'versions'"


def test_missing_required_version_field(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\nversions:\n  - version_name: blue\n    models: [{name: m, version: 1, "
               "uri: 'https://m.blob.core.windows.net/m/1'}]\n")
    p = only_problem(repo)
    assert where(p) == (SPEC, 3, 5, "versions[0]")
    assert p.message == "missing required field 'inference_config'"


def test_missing_required_model_field(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\nversions:\n  - version_name: blue\n    models:\n      - name: m\n"
               "        version: 1\n    inference_config: {image: acr.azurecr.io/s:1, entry_script: score.py}\n")
    p = only_problem(repo)
    assert where(p) == (SPEC, 5, 9, "versions[0].models[0]")
    assert p.message == "missing required field 'uri'"


def test_model_version_must_be_positive_integer_or_name(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\nversions:\n  - version_name: blue\n    models:\n      - name: m\n"
               "        version: 0\n        uri: https://m.blob.core.windows.net/m/1\n"
               "    inference_config: {image: acr.azurecr.io/s:1, entry_script: score.py}\n")
    p = only_problem(repo)
    assert where(p) == (SPEC, 6, 18, "versions[0].models[0].version")
    assert p.message.startswith("expected a model version: a positive integer or up to 64 letters")


def test_invalid_environment_variable_name(repo: Path) -> None:
    write_spec(repo, "demo", """\
        name: demo
        versions:
          - version_name: blue
            models: [{name: m, version: 1, uri: "https://m.blob.core.windows.net/m/1"}]
            inference_config:
              image: acr.azurecr.io/s:1
              entry_script: score.py
              environment_variables:
                1BAD: x
        """)
    p = only_problem(repo)
    assert where(p) == (SPEC, 9, 9, "versions[0].inference_config.environment_variables.1BAD")
    assert p.message == ("invalid key: expected an environment variable name: letters, digits and '_', "
                         "not starting with a digit, got '1BAD'")


# --- environment files ------------------------------------------------------------------------

# The example environment file is edited in place, so these tests follow it when it grows.


def test_example_environment_is_valid(repo: Path) -> None:
    assert problems(repo) == []


def test_unquoted_kubernetes_version_is_a_float(repo: Path) -> None:
    path = repo / ENV
    replace_in(path, 'kubernetes_version: "1.33"', "kubernetes_version: 1.33")
    p = only_problem(repo)
    assert where(p) == (ENV, line_of(path, "kubernetes_version:"), 21, "kubernetes_version")
    assert p.message == "expected a string, got a number 1.33; quote the value to make it a string"


def test_kubernetes_version_must_be_a_minor_version(repo: Path) -> None:
    path = repo / ENV
    replace_in(path, 'kubernetes_version: "1.33"', 'kubernetes_version: "1.33.2"')
    p = only_problem(repo)
    assert where(p) == (ENV, line_of(path, "kubernetes_version:"), 21, "kubernetes_version")
    assert p.message == "expected a Kubernetes minor version as a quoted string, such as \"1.33\", got '1.33.2'"


def test_environment_missing_required_field(repo: Path) -> None:
    path = repo / ENV
    replace_in(path, "cluster_name: aks-ml-dev\n", "")
    p = only_problem(repo)
    assert where(p) == (ENV, line_of(path, "name: dev"), 1, "")
    assert p.message == "missing required field 'cluster_name'"


def test_environment_unknown_field(repo: Path) -> None:
    path = repo / ENV
    replace_in(path, "defaults:\n", "defaults:\n  num_replica: 2\n")
    p = only_problem(repo)
    assert where(p) == (ENV, line_of(path, "num_replica:"), 3, "defaults.num_replica")
    assert p.message.startswith("unknown field 'num_replica'")


def test_environment_defaults_refuse_zero(repo: Path) -> None:
    path = repo / ENV
    replace_in(path, "defaults:\n", "defaults:\n  period_seconds: 0\n")
    p = only_problem(repo)
    assert where(p) == (ENV, line_of(path, "period_seconds:"), 19, "defaults.period_seconds")
    assert p.message == "must be >= 1, got 0"


def test_every_schema_problem_of_a_file_is_reported_at_once(repo: Path) -> None:
    write_spec(repo, "demo", "name: Demo\nnamespace: Bad_NS\ndescripton: x\nauth_enabled: 1\nversions:\n"
               + version("v1", "    gpu_cores: 1.5\n    period_seconds: 0\n"))
    found = [(p.line, p.col, p.field) for p in problems(repo)]
    assert found == [
        (1, 7, "name"),
        (2, 12, "namespace"),
        (3, 1, "descripton"),
        (4, 15, "auth_enabled"),
        (6, 19, "versions[0].version_name"),
        (7, 16, "versions[0].gpu_cores"),
        (8, 21, "versions[0].period_seconds"),
    ]


def test_model_uri_with_a_sas_token_is_refused_without_echoing_the_signature(repo: Path) -> None:
    write_spec(repo, "demo", """\
        name: demo
        versions:
          - version_name: blue
            models:
              - name: m
                version: 1
                uri: "https://m.blob.core.windows.net/c/m/1?sv=2024-01-01&sig=c2VjcmV0c2ln"
            inference_config: {image: acr.azurecr.io/s:1, entry_script: score.py}
        """)
    p = only_problem(repo)
    assert where(p) == (SPEC, 7, 14, "versions[0].models[0].uri")
    assert p.message.startswith("expected an https:// (Azure Blob) or azureml:// URI")
    assert "sig=<redacted>" in p.message
    assert "c2VjcmV0c2ln" not in p.message


def test_huge_bad_values_are_quoted_briefly(repo: Path) -> None:
    write_spec(repo, "demo", f"name: demo\ndescription: {'x' * 5000}\nversions:\n" + version())
    p = only_problem(repo)
    assert where(p) == (SPEC, 2, 14, "description")
    assert p.message.startswith("must be at most 1024 characters long")
    write_spec(repo, "demo", f"name: {'x' * 5000}\nversions:\n" + version())
    p = only_problem(repo)
    assert where(p) == (SPEC, 1, 7, "name")
    assert len(p.message) < 400 and p.message.endswith("...")


def test_refresh_period_beyond_what_an_hpa_policy_allows_is_refused(repo: Path) -> None:
    write_spec(repo, "demo", "name: demo\nversions:\n" + version(extra="    autoscale_refresh_seconds: 1801\n"))
    p = only_problem(repo)
    assert where(p) == (SPEC, 4, 32, "versions[0].autoscale_refresh_seconds")
    assert p.message == "must be <= 1800, got 1801"


def test_more_than_fifty_tags_are_refused(repo: Path) -> None:
    tags = "".join(f"  t{i}: v\n" for i in range(51))
    write_spec(repo, "demo", f"name: demo\ntags:\n{tags}versions:\n" + version())
    p = only_problem(repo)
    assert where(p) == (SPEC, 3, 3, "tags")
    assert "51" in p.message and "50" in p.message
