"""Issue 10: optional models, a memory limit on every container, the NetworkPolicy of each endpoint namespace,
and the every-field fixture that checkov (make checkov) judges."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from generator.problems import ProblemsFound
from generator.render.views import memory_quantity
from generator.pipeline.generate import plan
from render_helpers import (
    PROJECT, copy_examples, manifests, of_kind, rendered_files, run_cli, version_spec, write_endpoint,
)

EVERY_FIELD = PROJECT / "tests" / "fixtures" / "every-field"
MODELS_ROOT = "/var/azureml-app/azureml-models"


def scoring(deployment: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "scoring")


def env_names(container: dict[str, Any]) -> list[str]:
    return [item["name"] for item in container["env"]]


def write_environment(root: Path, env: str, change: dict[str, Any]) -> Path:
    path = root / "environments" / env / "environment.yaml"
    data = yaml.safe_load(path.read_text())
    data.update(change)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# --- models are optional ------------------------------------------------------------------------------


def test_a_version_without_models_gets_no_loader_no_volume_and_no_model_dir(tmp_path: Path) -> None:
    root = copy_examples(tmp_path / "repo")
    baked = version_spec("baked")
    del baked["models"]
    write_endpoint(root, "dev", "baked-lab", [baked, version_spec("loaded", traffic_percentile=10, models=[])],
                   auth_enabled=False)
    deployments = of_kind(manifests(rendered_files(root, ["dev"])), "Deployment")
    for name in ("baked-lab-baked", "baked-lab-loaded"):  # `models` left out, or an empty list: the same
        pod = deployments[name]["spec"]["template"]["spec"]
        assert "initContainers" not in pod
        assert [v["name"] for v in pod["volumes"]] == ["tmp"]
        assert [m["mountPath"] for m in scoring(deployments[name])["volumeMounts"]] == ["/tmp"]
        assert "AZUREML_MODEL_DIR" not in env_names(scoring(deployments[name]))
        assert "AML_APP_ROOT" in env_names(scoring(deployments[name]))


def test_new_and_create_version_without_a_model(tmp_path: Path) -> None:
    """The issue's own commands: the Microsoft controlled-rollout example, with the model baked into the image."""
    root = copy_examples(tmp_path / "repo")
    result = run_cli(root, "new", "mynewendpoint", "--env", "dev", "--version-name", "versiona", "--image",
                     "mlacr.azurecr.io/sklearn-scoring:1.0.0", "--entry-script", "score.py", "--no-auth-enabled")
    assert result.exit_code == 0, result.output
    result = run_cli(root, "create-version", "mynewendpoint", "versionb", "--env", "dev", "--image",
                     "mlacr.azurecr.io/sklearn-scoring:1.1.0", "--entry-script", "score.py",
                     "--traffic-percentile", "10")
    assert result.exit_code == 0, result.output
    spec = yaml.safe_load((root / "environments/dev/endpoints/mynewendpoint.yaml").read_text())
    assert all("models" not in v for v in spec["versions"])
    serialized = run_cli(root, "serialize", "mynewendpoint", "--env", "dev")
    assert serialized.exit_code == 0, serialized.output
    assert [v["modelDetails"] for v in json.loads(serialized.stdout)["versions"].values()] == [[], []]
    effective = run_cli(root, "effective", "mynewendpoint", "--env", "dev", "--output", "json")
    assert effective.exit_code == 0, effective.output
    assert run_cli(root, "render").exit_code == 0


def test_unset_models_leaves_the_image_to_carry_them(tmp_path: Path) -> None:
    root = copy_examples(tmp_path / "repo")
    result = run_cli(root, "update-version", "sentiment", "green", "--env", "dev", "--unset", "models")
    assert result.exit_code == 0, result.output
    spec = yaml.safe_load((root / "environments/dev/endpoints/sentiment.yaml").read_text())
    assert "models" not in spec["versions"][1]


# --- memory limits ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("root", [PROJECT, EVERY_FIELD], ids=["examples", "every-field"])
def test_every_container_has_a_memory_limit_of_at_least_its_request(root: Path) -> None:
    seen = 0
    for rel, obj in manifests(rendered_files(root)).items():
        if obj["kind"] != "Deployment":
            continue
        pod = obj["spec"]["template"]["spec"]
        for container in pod["containers"] + pod.get("initContainers", []):
            resources = container["resources"]
            assert "memory" in resources["limits"], f"{rel}: {container['name']} has no memory limit"
            seen += 1
    assert seen >= 3


def test_memory_limit_is_the_spec_limit_or_the_request(tmp_path: Path) -> None:
    root = copy_examples(tmp_path / "repo")
    write_endpoint(root, "dev", "memory-lab", [
        version_spec("plain", memory_gb=1.5),
        version_spec("limited", memory_gb=1, memory_gb_limit=3, traffic_percentile=10),
    ], auth_enabled=False)
    deployments = of_kind(manifests(rendered_files(root, ["dev"])), "Deployment")
    plain = scoring(deployments["memory-lab-plain"])["resources"]
    assert plain["requests"]["memory"] == plain["limits"]["memory"] == memory_quantity(1.5) == "1536Mi"
    assert "cpu" not in plain["limits"]  # CPU stays unlimited unless cpu_cores_limit asks
    limited = scoring(deployments["memory-lab-limited"])["resources"]
    assert (limited["requests"]["memory"], limited["limits"]["memory"]) == ("1Gi", "3Gi")


# --- NetworkPolicy ---------------------------------------------------------------------------------------


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics for matchLabels and the Exists / In operators."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        if operator == "Exists" and key not in labels:
            return False
        if operator == "In" and labels.get(key) not in expression["values"]:
            return False
        if operator not in ("Exists", "In"):
            raise AssertionError(f"operator {operator} not modelled by this test")
    return True


def allowed_sources(policy: dict[str, Any]) -> dict[str, set[int]]:
    """namespace name (or 'same' for the policy's own namespace) -> ports it may open."""
    allowed: dict[str, set[int]] = {}
    for rule in policy["spec"]["ingress"]:
        ports = {p["port"] for p in rule["ports"]}
        assert all(p["protocol"] == "TCP" for p in rule["ports"])
        for peer in rule["from"]:
            if "namespaceSelector" in peer:
                assert set(peer) == {"namespaceSelector"}, "a peer with both selectors means AND"
                name = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            else:
                assert peer == {"podSelector": {}}
                name = "same"
            allowed.setdefault(name, set()).update(ports)
    return allowed


def test_each_endpoint_namespace_has_a_policy_selecting_exactly_its_scoring_pods() -> None:
    objects = manifests(rendered_files(PROJECT))
    policies = {n: p for n, p in of_kind(objects, "NetworkPolicy").items() if n == "endpointgen-scoring"}
    deployments = {n: d for n, d in of_kind(objects, "Deployment").items()
                   if "endpointgen.io/endpoint" in d["metadata"]["labels"]}  # not the key-auth authorizer
    namespaces = {d["metadata"]["namespace"] for d in deployments.values()}
    assert {p["metadata"]["namespace"] for p in policies.values()} == namespaces
    assert len(policies) == len(namespaces)
    for policy in policies.values():
        assert policy["spec"]["policyTypes"] == ["Ingress"]  # egress stays open: model store, Key Vault, telemetry
        for dep in deployments.values():
            labels = dep["spec"]["template"]["metadata"]["labels"]
            same_ns = dep["metadata"]["namespace"] == policy["metadata"]["namespace"]
            assert selects(policy["spec"]["podSelector"], labels) == same_ns
        assert not selects(policy["spec"]["podSelector"], {"app": "something-else"})


def test_default_sources_are_gateway_own_namespace_control_plane_and_metrics() -> None:
    objects = manifests(rendered_files(PROJECT))
    for policy in (p for n, p in of_kind(objects, "NetworkPolicy").items() if n == "endpointgen-scoring"):
        # dev's Prometheus runs in-cluster in `monitoring` (its server_address); prod's is Azure Monitor's
        dev = policy["metadata"]["namespace"].endswith("-dev")
        scrapers = {"kube-system", "monitoring"} if dev else {"kube-system"}
        scoring_port = 5001
        container_ports = {p["containerPort"] for d in of_kind(objects, "Deployment").values()
                           if "endpointgen.io/endpoint" in d["metadata"]["labels"] for p in scoring(d)["ports"]}
        assert container_ports == {scoring_port}
        assert allowed_sources(policy) == {
            "aks-istio-ingress": {scoring_port},
            "same": {scoring_port},
            "aks-istio-system": {15020, 15021},
            **{namespace: {15020, 15090} for namespace in scrapers},
        }


def test_sources_come_from_the_environment(tmp_path: Path) -> None:
    root = copy_examples(tmp_path / "repo")
    write_environment(root, "dev", {"network_policy": {
        "ingress_namespaces": ["aks-istio-ingress", "edge-gateways"], "control_plane_namespaces": [],
        "metrics_namespaces": ["monitoring"], "allow_same_namespace": False}})
    policy = of_kind(manifests(rendered_files(root, ["dev"])), "NetworkPolicy")["endpointgen-scoring"]
    assert allowed_sources(policy) == {"aks-istio-ingress": {5001}, "edge-gateways": {5001},
                                       "monitoring": {15020, 15090}}


@pytest.mark.parametrize(("env", "listed", "scraper"), [("dev", ["kube-system"], "monitoring"),
                                                        ("prod", ["monitoring"], "kube-system")])
def test_a_network_policy_that_keeps_the_autoscaling_prometheus_out_is_refused(
        tmp_path: Path, env: str, listed: list[str], scraper: str) -> None:
    root = copy_examples(tmp_path / "repo")
    path = write_environment(root, env, {"network_policy": {"metrics_namespaces": listed}})
    with pytest.raises(ProblemsFound) as caught:
        plan(root, [env])
    [problem] = caught.value.problems
    assert (problem.path, problem.field) == (str(path.relative_to(root)), "network_policy.metrics_namespaces")
    assert f"scrapes from namespace {scraper!r}" in problem.message and "15090" in problem.message
    write_environment(root, env, {"network_policy": {"metrics_namespaces": [*listed, scraper]}})
    assert plan(root, [env]).files  # admitted: renders


def test_network_policy_can_be_turned_off(tmp_path: Path) -> None:
    root = copy_examples(tmp_path / "repo")
    write_environment(root, "dev", {"network_policy": {"enabled": False}})
    files = rendered_files(root, ["dev"])
    assert "endpointgen-scoring" not in of_kind(manifests(files), "NetworkPolicy")
    assert not any("networkpolicy-endpointgen-scoring" in rel for rel in files)


@pytest.mark.parametrize("setting, token, message", [
    ({"ingress_namespaces": []}, "ingress_namespaces", "network_policy.ingress_namespaces: "),
    ({"metrics_namespaces": ["Kube_System"]}, "Kube_System",
     "network_policy.metrics_namespaces[0]: expected a DNS-1123 label"),
    ({"control_plane_namespaces": ["a" * 64]}, "a" * 64,
     "network_policy.control_plane_namespaces[0]: expected a DNS-1123 label"),
    ({"allowed": ["x"]}, "allowed", "network_policy.allowed: unknown field"),
])
def test_bad_network_policy_settings_are_reported_at_their_line(tmp_path: Path, setting: dict[str, Any], token: str,
                                                                message: str) -> None:
    root = copy_examples(tmp_path / "repo")
    path = write_environment(root, "dev", {"network_policy": setting})
    result = run_cli(root, "validate", "--env", "dev", "--specs-only")
    assert result.exit_code == 1
    lines = path.read_text().splitlines()
    start = lines.index("network_policy:")
    line = next(i for i, text in enumerate(lines[start + 1:], start + 2) if token in text)
    assert f"environments/dev/environment.yaml:{line}:" in result.stderr
    assert message in result.stderr
    assert result.stderr.count("\n") == 2  # one problem, then the count


# --- the every-field fixture -----------------------------------------------------------------------------


def schema_fields(schema: dict[str, Any], node: dict[str, Any], prefix: str) -> set[str]:
    """Dotted names of every property under `node` (through $refs inside the schema folder, objects and arrays)."""
    node = resolve(schema, node)
    fields: set[str] = set()
    for name, child in node.get("properties", {}).items():
        fields.add(prefix + name)
        child = resolve(schema, child)
        target = resolve(schema, child["items"]) if child.get("type") == "array" and "items" in child else child
        if "properties" in target:
            fields |= schema_fields(schema, target, prefix + name + ".")
    return fields


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        file, _, pointer = node["$ref"].partition("#")
        doc = json.loads((PROJECT / "schema" / file).read_text()) if file else schema
        for part in pointer.strip("/").split("/"):
            doc = doc[part]
        node = doc
    return node


def used_fields(value: Any, prefix: str = "") -> set[str]:
    fields: set[str] = set()
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, dict):
            for key, child in item.items():
                fields.add(prefix + key)
                if isinstance(child, (dict, list)):
                    fields |= used_fields(child, prefix + key + ".")
    return fields


MAPS = ("tags.", "properties.", "environment_variables.", "node_selector.", "defaults.")


def test_every_field_fixture_sets_every_field_of_both_schemas() -> None:
    env_dir = EVERY_FIELD / "environments" / "lab"
    for schema_file, docs in (
        ("environment.schema.json", [yaml.safe_load((env_dir / "environment.yaml").read_text())]),
        ("endpoint.schema.json", [yaml.safe_load(p.read_text()) for p in sorted((env_dir / "endpoints").iterdir())]),
    ):
        schema = json.loads((PROJECT / "schema" / schema_file).read_text())
        wanted = {f for f in schema_fields(schema, schema, "") if not f.startswith("defaults.")}
        used = set().union(*(used_fields(doc) for doc in docs))
        used = {f for f in used if not any(m in f for m in MAPS)} | {f.rstrip(".") for m in MAPS for f in [m]}
        assert wanted - used == set(), f"{schema_file}: fields the every-field fixture does not set"


def test_every_field_fixture_validates_and_renders_every_kind(tmp_path: Path) -> None:
    result = run_cli(EVERY_FIELD, "validate", "--summary")
    assert result.exit_code == 0, result.output + result.stderr
    kinds = {obj["kind"] for obj in manifests(rendered_files(EVERY_FIELD)).values()}
    from generator.render.templates import ALLOWED_KINDS
    assert kinds == set(ALLOWED_KINDS)


def test_a_failed_validation_of_network_policy_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    root = copy_examples(tmp_path / "repo")
    write_environment(root, "dev", {"network_policy": {"enabled": "yes"}})
    with pytest.raises(ProblemsFound):
        rendered_files(root, ["dev"])


def test_model_loader_is_needed_only_by_versions_with_models(tmp_path: Path) -> None:
    root = copy_examples(tmp_path / "repo")
    path = root / "environments" / "dev" / "environment.yaml"
    data = yaml.safe_load(path.read_text())
    del data["model_loader"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    result = run_cli(root, "validate", "--env", "dev", "--specs-only")
    assert result.exit_code == 1
    problems = [line for line in result.stderr.splitlines() if ": versions[" in line]
    assert problems and all(".models: environment 'dev' has no model_loader" in line for line in problems)
    for spec in (root / "environments" / "dev" / "endpoints").iterdir():  # bake every model into its image
        spec_data = yaml.safe_load(spec.read_text())
        for version in spec_data["versions"]:
            version.pop("models", None)
        spec.write_text(yaml.safe_dump(spec_data, sort_keys=False))
    assert run_cli(root, "validate", "--env", "dev").exit_code == 0


# --- the Gateway's hosts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("root", [PROJECT, EVERY_FIELD], ids=["examples", "every-field"])
def test_gateway_hosts_are_bound_to_the_endpoint_namespaces(root: Path) -> None:
    """Each server names `<namespace>/<host>` for exactly the namespaces that serve endpoints (a VirtualService
    elsewhere cannot bind them: tests/dataplane/test_routing.py), and the incremental render keeps that."""
    objects = manifests(rendered_files(root))
    for env in sorted({rel.split("/")[1] for rel in objects if rel.startswith("rendered/")}):
        scoped = {rel: o for rel, o in objects.items() if rel.startswith(f"rendered/{env}/")}
        gateways = of_kind(scoped, "Gateway")
        if not gateways:
            continue
        hosts = yaml.safe_load((root / "environments" / env / "environment.yaml").read_text())["istio"]["hosts"]
        namespaces = {o["metadata"]["namespace"] for o in of_kind(scoped, "VirtualService").values()}
        expected = sorted(f"{ns}/{h}" for ns in namespaces for h in hosts)
        for server in next(iter(gateways.values()))["spec"]["servers"]:
            assert sorted(server["hosts"]) == expected


def test_a_new_endpoint_namespace_joins_the_gateway_hosts_in_an_incremental_render(tmp_path: Path) -> None:
    root = copy_examples(tmp_path / "repo")
    assert run_cli(root, "render", "--env", "dev").exit_code == 0
    write_endpoint(root, "dev", "elsewhere", [version_spec("one")], namespace="team-elsewhere")
    assert run_cli(root, "render", "--env", "dev").exit_code == 0
    [gateway] = (root / "rendered" / "dev" / "platform" / "gateway").glob("gateway-*.yaml")
    hosts = yaml.safe_load(gateway.read_text())["spec"]["servers"][0]["hosts"]
    assert any(h.startswith("team-elsewhere/") for h in hosts) and any(h.startswith("ml-endpoints-dev/") for h in hosts)
