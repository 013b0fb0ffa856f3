"""Kubernetes, Istio and AksEndpoint facts every rendered manifest must honour.

Each fact is checked on the example environments and on a "lab" repo: a copy
of the examples plus synthetic specs that exercise traffic rounding, fixed
replicas, PDBs, GPUs, retries, long names and every auth mode.
"""

from __future__ import annotations

import json
import posixpath
import re
import warnings
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import ruamel.yaml
import yaml
from jsonschema import Draft7Validator

from generator.pipeline.generate import plan
from generator.problems import ProblemsFound
from render_helpers import (
    BUILTIN_API_VERSIONS, CRD_SCHEMAS, PROJECT, copy_examples, in_env, manifests, of_kind, rendered_files,
    version_spec, walk, write_endpoint,
)

DNS_1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
MODELS_ROOT = "/var/azureml-app/azureml-models"
LONG_ENDPOINT = "longname-" + "e" * 23  # 32 characters, the longest endpoint name
LONG_VERSION = "v" + "x" * 29  # 30 characters: <endpoint>-<version> is exactly 63
TRICKY = {"BATCH": "1e3", "LEARNING_RATE": "1e-3", "MODE": "0o17", "VERBOSE": "y", "QUIET": "N", "HEX": "0x1F",
          "EMPTY": "", "NULLISH": "null", "PADDED": " 42 "}
PLAINTEXT_KEY = "Zm9vYmFyLXBsYWludGV4dC1zY29yaW5nLWtleQ"


def build_lab(root: Path) -> Path:
    """The examples plus synthetic endpoints in both environments."""
    copy_examples(root)
    # prod without Prometheus settings: its autoscaled versions fall back to the CPU HPA; dev keeps KEDA.
    env_file = root / "environments" / "prod" / "environment.yaml"
    env_file.write_text(re.sub(r"(?ms)^autoscaling:.*?\n(?=\S)", "", env_file.read_text()))
    # The Microsoft example: a (default) 20, b 10 -> a 90, b 10. b opts into retries and a short timeout.
    write_endpoint(root, "prod", "traffic-lab", [
        version_spec("ver-a", is_default=True, traffic_percentile=20),
        version_spec("ver-b", traffic_percentile=10, scoring_timeout_ms=1500, scoring_retries=2),
    ], auth_enabled=False)
    # Then b becomes default with 40 while a keeps 20 -> a 20, b 80.
    write_endpoint(root, "dev", "shift-lab", [
        version_spec("ver-a", traffic_percentile=20),
        version_spec("ver-b", is_default=True, traffic_percentile=40),
    ], auth_enabled=False)
    # Fractional shares: 33.4 / 33.3 / 33.3 / 0 -> 34 / 33 / 33, and ver-d (0) only gets a pinned route.
    write_endpoint(root, "prod", "fraction-lab", [
        version_spec("ver-a"),
        version_spec("ver-b", traffic_percentile=33.3),
        version_spec("ver-c", traffic_percentile=33.3),
        version_spec("ver-d", traffic_percentile=0),
    ], token_auth_enabled=True)
    # A tie of remainders goes to the version listed first: 75 / 12.5 / 12.5 -> 75 / 13 / 12.
    write_endpoint(root, "dev", "tie-lab", [
        version_spec("ver-a"),
        version_spec("ver-b", traffic_percentile=12.5),
        version_spec("ver-c", traffic_percentile=12.5),
    ], auth_enabled=False)
    # Replicas, autoscaling, PDBs, probes, GPUs and several models.
    two_models = [
        {"name": "encoder", "version": 4, "uri": "https://models.blob.core.windows.net/encoder/4"},
        {"name": "vocab.txt", "version": "2024-01", "uri": "azureml://registries/r/models/vocab/versions/2"},
    ]
    write_endpoint(root, "prod", "replica-lab", [
        version_spec("fixed-three", num_replicas=3, success_threshold=3),
        version_spec("fixed-one", num_replicas=1),
        version_spec("auto-two", autoscale_min_replicas=2, autoscale_max_replicas=4, autoscale_refresh_seconds=1800),
        version_spec("auto-gpu", gpu_cores=2, models=two_models),
        version_spec("switched-off", autoscale_enabled=False, num_replicas=2, gpu_cores=1),
    ], auth_enabled=True, auth_keys={"primary_key_secret": "replica-lab-key-1",
                                     "secondary_key_secret": "replica-lab-key-2"})
    # Every weighted version opts into retries: the weighted route retries (the fewest attempts asked for).
    # Strings that YAML 1.2 (kustomize, Flux) or go-yaml v2 (kubectl) would read as numbers or booleans.
    write_endpoint(root, "dev", "retry-lab", [
        version_spec("ver-a", scoring_retries=3, scoring_timeout_ms=2000, description="1e3",
                     inference_config={**version_spec("x")["inference_config"], "environment_variables": TRICKY}),
        version_spec("ver-b", traffic_percentile=50, scoring_retries=1, scoring_timeout_ms=120000),
    ], auth_enabled=False, description="n", tags={"y": "0o17"})
    write_endpoint(root, "dev", LONG_ENDPOINT, [version_spec(LONG_VERSION, gpu_cores=1, success_threshold=2)],
                   auth_enabled=False)
    return root


@pytest.fixture(scope="module")
def lab_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_lab(tmp_path_factory.mktemp("lab"))


@dataclass(frozen=True)
class Output:
    """What render writes for one repo: files by path, and the objects among them parsed."""

    root: Path
    files: dict[str, str]
    objects: dict[str, dict[str, Any]]


@pytest.fixture(scope="module", params=["examples", "lab"])
def output(request: pytest.FixtureRequest, lab_root: Path) -> Output:
    """Every file render writes, for the examples and for the lab repo."""
    root = PROJECT if request.param == "examples" else lab_root
    files = rendered_files(root)
    return Output(root, files, manifests(files))


@pytest.fixture(scope="module")
def lab(lab_root: Path) -> dict[str, dict[str, Any]]:
    return manifests(rendered_files(lab_root))


@cache
def env_settings(root: Path, env: str) -> dict[str, Any]:
    return yaml.safe_load((root / "environments" / env / "environment.yaml").read_text(encoding="utf-8"))


@cache
def source_spec(root: Path, rel: str, text: str) -> dict[str, Any] | None:
    """The endpoint spec a manifest came from (named in its header), or None for shared objects."""
    match = re.match(r"# Generated by endpointgen from (\S+); do not edit\.\n", text)
    assert match, f"{rel} does not start with the generated header"
    source = match.group(1)
    return yaml.safe_load((root / source).read_text(encoding="utf-8")) if "/endpoints/" in source else None


def endpoint_specs(root: Path, files: dict[str, str]) -> dict[tuple[str, str], dict[str, Any]]:
    """(env, endpoint name) -> spec, for every endpoint that was rendered."""
    specs = {}
    for rel, text in files.items():
        spec = source_spec(root, rel, text)
        if spec is not None:
            specs[(rel.split("/")[1], spec["name"])] = spec
    return specs


def effective_version(root: Path, env: str, version: dict[str, Any], field: str, default: Any) -> Any:
    """A version field as the documented precedence has it: version, then env defaults, then AksEndpoint."""
    return version.get(field, env_settings(root, env).get("defaults", {}).get(field, default))


def expected_shares(versions: list[dict[str, Any]]) -> dict[str, Decimal]:
    """The AksEndpoint rule: the default (flagged, else first) takes 100 minus the others' percentiles."""
    flagged = [i for i, v in enumerate(versions) if v.get("is_default") is True]
    default = flagged[0] if flagged else 0
    shares = {v["version_name"]: Decimal(str(v.get("traffic_percentile", 0))) for v in versions}
    name = versions[default]["version_name"]
    shares[name] = Decimal(100) - sum((s for n, s in shares.items() if n != name), Decimal(0))
    return shares


def deployments_by_version(objects: dict[str, dict[str, Any]], env: str, endpoint: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["labels"]["endpointgen.io/version"]: o for o in in_env(objects, env).values()
            if o["kind"] == "Deployment" and o["metadata"]["labels"].get("endpointgen.io/endpoint") == endpoint}


def scoring(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["scoring"]
    return containers[0]  # type: ignore[no-any-return]


def env_vars(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


def crd_schema(obj: dict[str, Any]) -> dict[str, Any]:
    group, version = obj["apiVersion"].split("/")
    path = CRD_SCHEMAS / group / f"{obj['kind'].lower()}_{version}.json"
    assert path.is_file(), f"no CRD schema for {obj['apiVersion']} {obj['kind']} at {path}"
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


# --- schemas ------------------------------------------------------------------------------------------


def test_builtin_objects_validate_against_kubernetes_1_33(output: Output) -> None:
    checked = 0
    for rel, obj in output.objects.items():
        if obj["apiVersion"] in BUILTIN_API_VERSIONS:
            try:
                kubernetes_validate.validate(obj, "1.33", strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{rel}: {str(exc).splitlines()[0]}")
            checked += 1
    assert checked > 0


@pytest.mark.skipif(not CRD_SCHEMAS.is_dir(), reason=f"CRD schemas not found at {CRD_SCHEMAS}")
def test_crd_objects_validate_against_their_schemas(output: Output) -> None:
    kinds = set()
    for rel, obj in output.objects.items():
        if obj["apiVersion"] in BUILTIN_API_VERSIONS:
            continue
        errors = sorted(Draft7Validator(crd_schema(obj)).iter_errors(obj), key=lambda e: list(e.absolute_path))
        assert not errors, f"{rel}: " + "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
        kinds.add(obj["kind"])
    assert {"VirtualService", "DestinationRule", "Gateway", "PeerAuthentication", "AuthorizationPolicy",
            "Kustomization"} <= kinds


def test_the_crd_schemas_are_strict() -> None:
    """The schema check above means something only if unknown fields are refused."""
    vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "x"},
          "spec": {"hosts": ["a"], "htp": []}}
    assert list(Draft7Validator(crd_schema(vs)).iter_errors(vs))


# --- names, labels, selectors -------------------------------------------------------------------------


def test_object_names_are_valid(output: Output) -> None:
    for rel, obj in output.objects.items():
        name = obj["metadata"]["name"]
        assert len(name) <= 253 and DNS_1123_SUBDOMAIN.match(name), f"{rel}: {name!r} is not a DNS-1123 subdomain"
        if obj["kind"] in ("Service", "Deployment", "Namespace"):
            assert len(name) <= 63, f"{rel}: {obj['kind']} name {name!r} is longer than 63 characters"
        if obj["kind"] == "Service":
            assert DNS_1035_LABEL.match(name), f"{rel}: Service name {name!r} is not a DNS-1035 label"


def test_longest_names_fit(lab: dict[str, dict[str, Any]]) -> None:
    name = f"{LONG_ENDPOINT}-{LONG_VERSION}"
    assert len(name) == 63
    assert name in of_kind(lab, "Service") and name in of_kind(lab, "Deployment")


def test_label_values_are_valid(output: Output) -> None:
    for rel, obj in output.objects.items():
        for path, value in walk(obj):
            if path and path[-1] in ("labels", "matchLabels", "selector") and isinstance(value, dict):
                if path[-1] == "selector" and obj["kind"] != "Service":
                    continue
                for key, label in value.items():
                    assert isinstance(label, str) and len(label) <= 63 and LABEL_VALUE.match(label), \
                        f"{rel}: label {key}={label!r} at {path} is not a valid label value"


def test_deployment_selector_is_subset_of_pod_labels(output: Output) -> None:
    deployments = of_kind(output.objects, "Deployment")
    assert deployments
    for name, dep in deployments.items():
        selector = dep["spec"]["selector"]["matchLabels"]
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert selector and selector.items() <= labels.items(), f"Deployment {name}: {selector} not in {labels}"


def test_each_selector_picks_exactly_its_own_version(output: Output) -> None:
    """A Service, PDB or HPA must reach the pods of its own version only, never a sibling's."""
    objects = output.objects
    for rel, obj in objects.items():
        ns = obj["metadata"].get("namespace")
        env = rel.split("/")[1]
        pods = {o["metadata"]["name"]: o["spec"]["template"]["metadata"]["labels"]
                for o in in_env(objects, env).values()
                if o["kind"] == "Deployment" and o["metadata"]["namespace"] == ns}
        if obj["kind"] == "Service":
            selector = obj["spec"]["selector"]
        elif obj["kind"] == "PodDisruptionBudget":
            selector = obj["spec"]["selector"]["matchLabels"]
        elif obj["kind"] == "HorizontalPodAutoscaler":
            target = obj["spec"]["scaleTargetRef"]
            assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
            assert target["name"] == obj["metadata"]["name"] and target["name"] in pods, rel
            continue
        else:
            continue
        matched = [name for name, labels in pods.items() if selector.items() <= labels.items()]
        assert matched == [obj["metadata"]["name"]], f"{rel}: selector {selector} matches Deployments {matched}"


def test_auth_policies_select_the_endpoint_pods(output: Output) -> None:
    objects = output.objects
    for rel, obj in objects.items():
        if obj["kind"] not in ("AuthorizationPolicy", "RequestAuthentication"):
            continue
        selector = obj["spec"]["selector"]["matchLabels"]
        endpoint = obj["metadata"]["labels"]["endpointgen.io/endpoint"]
        env = rel.split("/")[1]
        ns = obj["metadata"]["namespace"]
        own = set(deployments_by_version(objects, env, endpoint))
        selected = {o["metadata"]["labels"]["endpointgen.io/version"] for o in in_env(objects, env).values()
                    if o["kind"] == "Deployment" and o["metadata"]["namespace"] == ns
                    and selector.items() <= o["spec"]["template"]["metadata"]["labels"].items()
                    and o["metadata"]["labels"].get("endpointgen.io/endpoint") == endpoint}
        others = [o["metadata"]["name"] for o in in_env(objects, env).values()
                  if o["kind"] == "Deployment" and o["metadata"]["namespace"] == ns
                  and o["metadata"]["labels"].get("endpointgen.io/endpoint") != endpoint
                  and selector.items() <= o["spec"]["template"]["metadata"]["labels"].items()]
        assert own and selected == own and not others, f"{rel} selects {selected} of {own}, and {others}"


# --- probes, replicas, autoscaling ---------------------------------------------------------------------


def test_probe_thresholds(output: Output) -> None:
    root, files, objects = output.root, output.files, output.objects
    for (env, endpoint), spec in endpoint_specs(root, files).items():
        deployments = deployments_by_version(objects, env, endpoint)
        for version in spec["versions"]:
            container = scoring(deployments[version["version_name"]])
            wanted = effective_version(root, env, version, "success_threshold", 1)
            assert container["livenessProbe"]["successThreshold"] == 1
            assert container["readinessProbe"]["successThreshold"] == wanted
            # the startup probe gives a pod as long to come up as AksEndpoint's delayed liveness probe did
            delay = effective_version(root, env, version, "initial_delay_seconds", 310)
            period = effective_version(root, env, version, "period_seconds", 10)
            failures = effective_version(root, env, version, "failure_threshold", 3)
            startup = container["startupProbe"]
            assert "initialDelaySeconds" not in container["livenessProbe"]
            assert startup["httpGet"] == container["livenessProbe"]["httpGet"] == container["readinessProbe"]["httpGet"]
            allowed = startup["periodSeconds"] * startup["failureThreshold"]
            assert delay + failures * period <= allowed < delay + failures * period + startup["periodSeconds"]
            assert container["livenessProbe"]["periodSeconds"] == period
            assert container["livenessProbe"]["failureThreshold"] == failures


def test_success_threshold_above_one_goes_to_readiness(lab: dict[str, dict[str, Any]]) -> None:
    container = scoring(of_kind(lab, "Deployment")["replica-lab-fixed-three"])
    assert container["livenessProbe"]["successThreshold"] == 1
    assert container["readinessProbe"]["successThreshold"] == 3


def test_replicas_autoscaler_and_pdb(output: Output) -> None:
    root, files, objects = output.root, output.files, output.objects
    for (env, endpoint), spec in endpoint_specs(root, files).items():
        scoped = in_env(objects, env)
        hpas, pdbs = of_kind(scoped, "HorizontalPodAutoscaler"), of_kind(scoped, "PodDisruptionBudget")
        scaled = of_kind(scoped, "ScaledObject")
        for version in spec["versions"]:
            name = f"{endpoint}-{version['version_name']}"
            dep = of_kind(scoped, "Deployment")[name]
            fixed = version.get("num_replicas")
            if fixed is not None:
                assert dep["spec"]["replicas"] == fixed, name
                assert name not in hpas and name not in scaled, f"{name} has fixed replicas and an autoscaler"
                low = fixed
            else:
                assert "replicas" not in dep["spec"], f"{name}: spec.replicas set although an HPA scales it"
                low = effective_version(root, env, version, "autoscale_min_replicas", 1)
                high = effective_version(root, env, version, "autoscale_max_replicas", 10)
                target = effective_version(root, env, version, "autoscale_target_utilization", 70)
                assert (name in hpas) != (name in scaled), f"{name}: one autoscaler, KEDA's or the CPU HPA"
                if name in scaled:  # requests in flight against replica_max_concurrent_requests x target
                    so = scaled[name]["spec"]
                    assert (so["minReplicaCount"], so["maxReplicaCount"]) == (low, high) and low <= high
                    workers = effective_version(root, env, version, "replica_max_concurrent_requests", 1)
                    assert Decimal(so["triggers"][0]["metadata"]["threshold"]) == Decimal(workers) * target / 100
                else:
                    hpa = hpas[name]["spec"]
                    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (low, high) and low <= high
                    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == target
            high = fixed if fixed is not None else high
            assert (name in pdbs) == (high >= 2), f"{name}: up to {high} replicas, PDB present: {name in pdbs}"
            if name in pdbs:  # one pod at a time; a pod that is not ready never blocks a drain
                assert pdbs[name]["spec"]["maxUnavailable"] == 1
                assert pdbs[name]["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_lab_replicas(lab: dict[str, dict[str, Any]]) -> None:
    deps, hpas = of_kind(lab, "Deployment"), of_kind(lab, "HorizontalPodAutoscaler")
    pdbs = of_kind(lab, "PodDisruptionBudget")
    assert deps["replica-lab-fixed-three"]["spec"]["replicas"] == 3
    assert deps["replica-lab-switched-off"]["spec"]["replicas"] == 2
    assert "replicas" not in deps["replica-lab-auto-two"]["spec"]
    assert sorted(n for n in hpas if n.startswith("replica-lab-")) == ["replica-lab-auto-gpu", "replica-lab-auto-two"]
    assert (hpas["replica-lab-auto-gpu"]["spec"]["minReplicas"], hpas["replica-lab-auto-gpu"]["spec"]["maxReplicas"]) \
        == (1, 6)  # AksEndpoint min 1, prod's defaults max 6
    assert sorted(n for n in pdbs if n.startswith("replica-lab-")) == [  # all but fixed at one
        "replica-lab-auto-gpu", "replica-lab-auto-two", "replica-lab-fixed-three", "replica-lab-switched-off"]


# --- GPUs ----------------------------------------------------------------------------------------------


def test_gpu_requests_equal_limits_and_scheduling(output: Output) -> None:
    root, files, objects = output.root, output.files, output.objects
    seen_gpu = False
    for (env, endpoint), spec in endpoint_specs(root, files).items():
        gpu_env = {"tolerations": [{"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
                   "node_selector": {}, **env_settings(root, env).get("gpu", {})}
        deployments = deployments_by_version(objects, env, endpoint)
        for version in spec["versions"]:
            pod = deployments[version["version_name"]]["spec"]["template"]["spec"]
            resources = scoring(deployments[version["version_name"]])["resources"]
            gpus = effective_version(root, env, version, "gpu_cores", 0)
            if gpus:
                seen_gpu = True
                assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == str(gpus)
                assert pod["tolerations"] == gpu_env["tolerations"]
                assert pod.get("nodeSelector", {}) == gpu_env["node_selector"]
            else:
                assert "nvidia.com/gpu" not in resources["requests"]
                assert "nvidia.com/gpu" not in resources.get("limits", {})
                assert "tolerations" not in pod and "nodeSelector" not in pod
            for init in pod["initContainers"]:
                assert "nvidia.com/gpu" not in json.dumps(init["resources"])
    assert seen_gpu


def test_gpu_node_selector_from_environment(lab: dict[str, dict[str, Any]]) -> None:
    pod = of_kind(lab, "Deployment")["replica-lab-switched-off"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"agentpool": "gpunp"}
    assert scoring(of_kind(lab, "Deployment")["replica-lab-switched-off"])["resources"]["limits"] == \
        {"memory": "1Gi", "nvidia.com/gpu": "1"}  # memory: the request (prod's default memory_gb: 1)
    assert "tolerations" not in of_kind(lab, "Deployment")["replica-lab-fixed-one"]["spec"]["template"]["spec"]


# --- routing -------------------------------------------------------------------------------------------


def weighted_route(vs: dict[str, Any]) -> dict[str, Any]:
    routes = [r for r in vs["spec"]["http"] if r["name"] == "weighted"]
    assert len(routes) == 1 and vs["spec"]["http"][-1] is routes[0], "the weighted route must come last"
    return routes[0]


def route_weights(vs: dict[str, Any]) -> dict[str, int]:
    """version -> weight of the weighted route (version taken from the destination host)."""
    endpoint = vs["metadata"]["name"]
    out = {}
    for route in weighted_route(vs)["route"]:
        host = route["destination"]["host"]
        out[host.split(".")[0][len(endpoint) + 1:]] = route["weight"]
    return out


def test_weights_are_effective_shares(output: Output) -> None:
    root, files, objects = output.root, output.files, output.objects
    for (env, endpoint), spec in endpoint_specs(root, files).items():
        vs = of_kind(in_env(objects, env), "VirtualService")[endpoint]
        weights = route_weights(vs)
        shares = expected_shares(spec["versions"])
        assert all(type(w) is int and 0 < w <= 100 for w in weights.values()), weights
        assert sum(weights.values()) == 100, f"{env}/{endpoint}: weights {weights} do not sum to 100"
        for version, share in shares.items():
            weight = weights.get(version, 0)
            assert abs(weight - share) < 1, f"{env}/{endpoint}: {version} share {share} but weight {weight}"
            if share == share.to_integral_value():
                assert weight == share, f"{env}/{endpoint}: {version} share {share} but weight {weight}"
        traffic = json.loads(vs["metadata"]["annotations"]["endpointgen.io/traffic"])
        assert traffic == {v: weights.get(v, 0) for v in shares}


@pytest.mark.parametrize(("env", "endpoint", "expected"), [
    ("prod", "traffic-lab", {"ver-a": 90, "ver-b": 10}),
    ("dev", "shift-lab", {"ver-a": 20, "ver-b": 80}),
    ("prod", "fraction-lab", {"ver-a": 34, "ver-b": 33, "ver-c": 33}),
    ("dev", "tie-lab", {"ver-a": 75, "ver-b": 13, "ver-c": 12}),
    ("prod", "replica-lab", {"fixed-three": 100}),
    ("prod", "sentiment", {"blue": 90, "green": 10}),
    ("dev", "sentiment", {"blue": 50, "green": 50}),
])
def test_lab_weights(lab: dict[str, dict[str, Any]], env: str, endpoint: str, expected: dict[str, int]) -> None:
    assert route_weights(of_kind(in_env(lab, env), "VirtualService")[endpoint]) == expected


def test_every_version_has_a_pinned_route(output: Output) -> None:
    root, files, objects = output.root, output.files, output.objects
    for (env, endpoint), spec in endpoint_specs(root, files).items():
        vs = of_kind(in_env(objects, env), "VirtualService")[endpoint]
        pinned = {}
        for route in vs["spec"]["http"][:-1]:
            (match,) = route["match"]
            header = match["headers"]["azureml-model-deployment"]["exact"]
            assert match["uri"] == {"prefix": f"/api/v1/service/{endpoint}/"}
            (dest,) = route["route"]
            pinned[header] = dest["destination"]["host"]
        ns = vs["metadata"]["namespace"]
        assert pinned == {v["version_name"]: f"{endpoint}-{v['version_name']}.{ns}.svc.cluster.local"
                          for v in spec["versions"]}


def test_zero_weight_version_is_reachable_only_pinned(lab: dict[str, dict[str, Any]]) -> None:
    vs = of_kind(lab, "VirtualService")["fraction-lab"]
    assert "ver-d" not in route_weights(vs)
    assert [r["name"] for r in vs["spec"]["http"]] == ["pinned-ver-a", "pinned-ver-b", "pinned-ver-c",
                                                       "pinned-ver-d", "weighted"]
    assert "fraction-lab-ver-d" in of_kind(lab, "Service")


def test_destinations_resolve_to_services(output: Output) -> None:
    objects = output.objects
    for env in {rel.split("/")[1] for rel in objects}:
        scoped = in_env(objects, env)
        services = {f"{s['metadata']['name']}.{s['metadata']['namespace']}.svc.cluster.local": s
                    for s in of_kind(scoped, "Service").values()}
        for rel, obj in scoped.items():
            if obj["kind"] == "VirtualService":
                for route in obj["spec"]["http"]:
                    for dest in route["route"]:
                        host, port = dest["destination"]["host"], dest["destination"]["port"]["number"]
                        assert host in services, f"{rel}: {host} is not a rendered Service"
                        assert port in [p["port"] for p in services[host]["spec"]["ports"]]
            if obj["kind"] == "DestinationRule":
                assert obj["spec"]["host"] in services, f"{rel}: {obj['spec']['host']} is not a rendered Service"


def test_virtualservice_gateway_and_hosts(output: Output) -> None:
    root, files, objects = output.root, output.files, output.objects
    for rel, vs in objects.items():
        if vs["kind"] != "VirtualService":
            continue
        env = rel.split("/")[1]
        istio = env_settings(root, env)["istio"]
        gateway = of_kind(in_env(objects, env), "Gateway")[istio["gateway"]["name"]]
        assert vs["spec"]["gateways"] == [f"{gateway['metadata']['namespace']}/{gateway['metadata']['name']}"]
        assert vs["spec"]["hosts"] == istio["hosts"]
        assert gateway["spec"]["selector"] == {"istio": istio["gateway"]["selector"]}


def seconds(milliseconds: int) -> str:
    """An Istio duration: 1500 -> '1.5s'."""
    return f"{Decimal(milliseconds) / 1000}s"


def test_timeouts_and_retries(output: Output) -> None:
    root, files, objects = output.root, output.files, output.objects
    for (env, endpoint), spec in endpoint_specs(root, files).items():
        vs = of_kind(in_env(objects, env), "VirtualService")[endpoint]
        routes = {r["name"]: r for r in vs["spec"]["http"]}
        weights = route_weights(vs)
        timeouts, attempts = {}, {}
        for version in spec["versions"]:
            name = version["version_name"]
            timeouts[name] = effective_version(root, env, version, "scoring_timeout_ms", 60000)
            attempts[name] = effective_version(root, env, version, "scoring_retries", 0)
            route = routes[f"pinned-{name}"]
            assert route["timeout"] == seconds(timeouts[name])
            assert route["retries"]["attempts"] == attempts[name]
            assert ("retryOn" in route["retries"]) == (attempts[name] > 0)
        weighted = routes["weighted"]
        longest = max(timeouts[v] for v in weights)
        assert weighted["timeout"] == seconds(longest)
        assert weighted["retries"]["attempts"] == min(attempts[v] for v in weights)


def test_lab_timeouts_and_retries(lab: dict[str, dict[str, Any]]) -> None:
    routes = {r["name"]: r for r in of_kind(in_env(lab, "prod"), "VirtualService")["traffic-lab"]["spec"]["http"]}
    assert (routes["pinned-ver-a"]["timeout"], routes["pinned-ver-a"]["retries"]) == ("60s", {"attempts": 0})
    assert routes["pinned-ver-b"]["timeout"] == "1.5s"
    assert routes["pinned-ver-b"]["retries"] == {"attempts": 2, "retryOn": "connect-failure,refused-stream,unavailable"}
    assert routes["weighted"]["retries"] == {"attempts": 0}  # ver-a did not opt in
    routes = {r["name"]: r for r in of_kind(lab, "VirtualService")["retry-lab"]["spec"]["http"]}
    assert routes["weighted"]["retries"]["attempts"] == 1 and routes["weighted"]["timeout"] == "120s"
    assert routes["pinned-ver-a"]["timeout"] == "2s"


# --- auth and secrets ----------------------------------------------------------------------------------


def test_auth_objects_follow_the_auth_mode(output: Output) -> None:
    root, files, objects = output.root, output.files, output.objects
    modes = set()
    for (env, endpoint), spec in endpoint_specs(root, files).items():
        scoped = {(o["kind"], o["metadata"]["name"]): o for o in in_env(objects, env).values()
                  if o["metadata"].get("labels", {}).get("endpointgen.io/endpoint") == endpoint}
        kinds = {kind for kind, _ in scoped}
        settings = env_settings(root, env)
        vs = scoped[("VirtualService", endpoint)]
        token = spec.get("token_auth_enabled", False)
        key = spec.get("auth_enabled", not token)
        mode = "token" if token else "key" if key else "none"
        modes.add(mode)
        assert vs["metadata"]["annotations"]["endpointgen.io/auth"] == mode
        policies = {name: o for (kind, name), o in scoped.items() if kind == "AuthorizationPolicy"}
        if mode == "token":
            request_auth = scoped[("RequestAuthentication", endpoint)]
            # the examples' issuers are Entra ID's: both token versions of the tenant, each with the audiences
            # its tokens carry (v1: App ID URI or client ID, as requested; v2: always the client ID)
            tenant, audiences = settings["token_auth"]["issuer"].split("/")[3], settings["token_auth"]["audiences"]
            client_ids = [a for a in audiences if re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", a)]
            expected = {f"https://sts.windows.net/{tenant}/": audiences}
            if client_ids:
                expected[f"https://login.microsoftonline.com/{tenant}/v2.0"] = client_ids
            rules = request_auth["spec"]["jwtRules"]
            assert {r["issuer"]: r["audiences"] for r in rules} == expected and len(rules) == len(expected)
            roles = spec.get("required_roles", settings["token_auth"].get("required_roles", []))
            scopes = spec.get("required_scopes", settings["token_auth"].get("required_scopes", []))
            assert all(r.get("spaceDelimitedClaims") == (["scp"] if scopes else None) for r in rules)
            assert list(policies) == [f"{endpoint}-require-token"]
            policy = policies[f"{endpoint}-require-token"]["spec"]
            assert policy.get("action", "ALLOW") == "ALLOW"
            (allow,) = policy["rules"]
            assert allow.pop("from") == [{"source": {"requestPrincipals": [f"{issuer}/*" for issuer in expected]}}]
            assert allow == ({"when": [{"key": "request.auth.claims[roles]", "values": [r]} for r in roles]
                              + [{"key": "request.auth.claims[scp]", "values": [s]} for s in scopes]}
                             if roles or scopes else {})
        elif mode == "key":
            assert "RequestAuthentication" not in kinds
            assert list(policies) == [f"{endpoint}-require-key"]
            policy = policies[f"{endpoint}-require-key"]
            assert policy["spec"]["action"] == "CUSTOM"
            provider = settings.get("key_auth", {}).get("ext_authz_provider", "endpointgen-key-auth")
            assert policy["spec"]["provider"] == {"name": provider}
            keys = spec.get("auth_keys", {})
            references = {"endpointgen.io/key-vault": keys.get("key_vault", settings["key_vault"]["name"]),
                          "endpointgen.io/primary-key-secret": keys.get("primary_key_secret",
                                                                         f"{endpoint}-primary-key")}
            if "secondary_key_secret" in keys:
                references["endpointgen.io/secondary-key-secret"] = keys["secondary_key_secret"]
            assert policy["metadata"]["annotations"] == references, "only references to Key Vault, no key material"
        else:
            assert not kinds & {"RequestAuthentication", "AuthorizationPolicy"}
    if output.root != PROJECT:
        assert modes == {"token", "key", "none"}


def test_no_secret_material_anywhere(output: Output) -> None:
    objects = output.objects
    synced = {(o["metadata"]["namespace"], s["secretName"]) for o in objects.values()
              if o["kind"] == "SecretProviderClass" for s in o["spec"].get("secretObjects", [])}
    for rel, obj in objects.items():
        assert obj["kind"] != "Secret", rel
        assert "stringData" not in obj and ("data" not in obj or obj["kind"] == "ConfigMap"), rel
        for path, value in walk(obj):
            if path and path[-1] in ("primary_key", "secondary_key", "primaryKey", "secondaryKey"):
                pytest.fail(f"{rel}: key field at {path}")
            if path and path[-1] == "secretKeyRef":
                assert (obj["metadata"]["namespace"], value["name"]) in synced, \
                    f"{rel}: secret {value['name']} is not synced from Key Vault by a SecretProviderClass"


def test_plaintext_key_is_refused_and_never_rendered(tmp_path: Path) -> None:
    root = copy_examples(tmp_path / "repo")
    write_endpoint(root, "dev", "leaky", [version_spec("ver-a")], auth_enabled=True, primary_key=PLAINTEXT_KEY)
    with pytest.raises(ProblemsFound) as caught:
        plan(root)
    assert any("primary_key" in p.field for p in caught.value.problems)
    assert all(PLAINTEXT_KEY not in str(p) for p in caught.value.problems)


def test_app_insights_secret_comes_from_key_vault(lab: dict[str, dict[str, Any]]) -> None:
    spc = of_kind(in_env(lab, "prod"), "SecretProviderClass")["sentiment-app-insights"]
    params = spc["spec"]["parameters"]
    assert spc["spec"]["provider"] == "azure"
    assert (params["keyvaultName"], params["usePodIdentity"]) == ("kv-ml-prod", "false")
    assert yaml.safe_load(params["objects"]) == {"array": ["objectName: appinsights-instrumentation-key\n"
                                                           "objectType: secret\n",
                                                           "objectName: appinsights-connection-string\n"
                                                           "objectType: secret\n"]}
    synced = spc["spec"]["secretObjects"][0]
    assert synced["secretName"] == "sentiment-app-insights"
    assert synced["data"] == [{"objectName": "appinsights-instrumentation-key", "key": "instrumentation-key"},
                              {"objectName": "appinsights-connection-string", "key": "connection-string"}]
    dep = of_kind(in_env(lab, "prod"), "Deployment")["sentiment-blue"]
    env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][-1]["env"]}
    assert env["AML_APP_INSIGHTS_ENABLED"]["value"] == "true"
    assert env["AML_APP_INSIGHTS_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "sentiment-app-insights",
                                                                        "key": "instrumentation-key"}
    assert env["APPLICATIONINSIGHTS_CONNECTION_STRING"]["valueFrom"]["secretKeyRef"] == {
        "name": "sentiment-app-insights", "key": "connection-string"}
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert volumes["app-insights"]["csi"]["volumeAttributes"] == {"secretProviderClass": "sentiment-app-insights"}


def test_workload_identity(output: Output) -> None:
    root, files, objects = output.root, output.files, output.objects
    for (env, endpoint), spec in endpoint_specs(root, files).items():
        default = env_settings(root, env).get("key_vault", {}).get("client_id")
        client_id = spec.get("workload_identity_client_id", default)
        sa = of_kind(in_env(objects, env), "ServiceAccount")[endpoint]
        assert sa.get("metadata", {}).get("annotations", {}).get("azure.workload.identity/client-id") == client_id
        versions = {v["version_name"]: v for v in spec["versions"]}
        for name, dep in deployments_by_version(objects, env, endpoint).items():
            pod = dep["spec"]["template"]
            assert pod["spec"]["serviceAccountName"] == endpoint
            assert (pod["metadata"]["labels"].get("azure.workload.identity/use") == "true") == (default is not None)
            # the webhook's token goes to the loaders (and the CSI driver), not to the model's code, unless asked
            skipped = pod["metadata"]["annotations"].get("azure.workload.identity/skip-containers")
            wanted = versions[name].get("scoring_workload_identity", False)
            assert skipped == (None if wanted or default is None else "scoring")


# --- namespaces, headers, pods -------------------------------------------------------------------------


def test_namespaces_carry_the_istio_revision(output: Output) -> None:
    root, files, objects = output.root, output.files, output.objects
    for env in {rel.split("/")[1] for rel in objects}:
        scoped = in_env(objects, env)
        namespaces = of_kind(scoped, "Namespace")
        revision = env_settings(root, env)["istio"]["revision"]
        for ns in namespaces.values():
            assert ns["metadata"]["labels"]["istio.io/rev"] == revision
            assert "istio-injection" not in ns["metadata"]["labels"]
            # Flux must never delete a namespace (and everything in it) when its last endpoint goes
            assert ns["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/prune"] == "disabled"
        used = {o["metadata"]["namespace"] for o in scoped.values()
                if o["kind"] in ("Deployment", "VirtualService", "Service")}
        assert used <= set(namespaces), f"{env}: namespaces {used - set(namespaces)} are used but not rendered"
        strict = {o["metadata"]["namespace"] for o in scoped.values()  # each is named `default`
                  if o["kind"] == "PeerAuthentication" and o["spec"]["mtls"]["mode"] == "STRICT"}
        assert strict == set(namespaces)


PLATFORM_KINDS = {"Gateway", "Namespace", "PeerAuthentication", "NetworkPolicy", "TriggerAuthentication"}


def test_each_object_is_in_the_folder_flux_applies_it_from(output: Output) -> None:
    """Shared objects in rendered/<env>/platform, the key-auth authorizer in rendered/<env>/key-auth, everything
    else in its endpoint's folder; a Flux Kustomization for the platform, one for key auth that nothing waits for,
    and one per endpoint, which waits for the platform only."""
    files, objects = output.files, output.objects
    envs = sorted({rel.split("/")[1] for rel in files})
    for env in envs:
        endpoints = sorted({rel.split("/")[3] for rel in files if rel.startswith(f"rendered/{env}/endpoints/")})
        assert endpoints, env
        for rel, obj in in_env(objects, env).items():
            if rel.startswith("clusters/"):
                assert obj["kind"] == "Kustomization", rel
            elif rel.startswith(f"rendered/{env}/key-auth/"):
                assert obj["metadata"].get("namespace", "endpointgen-auth") == "endpointgen-auth", rel
            elif obj["kind"] in PLATFORM_KINDS or rel.startswith(f"rendered/{env}/platform/mesh/"):
                assert rel.startswith(f"rendered/{env}/platform/"), rel
                if obj["kind"] != "Gateway" and "/mesh/" not in rel:
                    ns = obj["metadata"].get("namespace") or obj["metadata"]["name"]
                    assert rel.startswith(f"rendered/{env}/platform/namespaces/{ns}/"), rel
            else:
                endpoint = obj["metadata"]["labels"]["endpointgen.io/endpoint"]
                assert rel.startswith(f"rendered/{env}/endpoints/{endpoint}/"), rel
        flux = {rel: o for rel, o in in_env(objects, env).items() if rel.startswith("clusters/")}
        keyed = any(rel.startswith(f"rendered/{env}/key-auth/") for rel in files)
        assert sorted(flux) == sorted([f"clusters/{env}/platform.yaml", *([f"clusters/{env}/key-auth.yaml"] * keyed),
                                       *(f"clusters/{env}/endpoints/{ep}.yaml" for ep in endpoints)])
        if keyed:
            key_auth = flux[f"clusters/{env}/key-auth.yaml"]
            assert key_auth["metadata"]["name"] == f"{env}-key-auth" and "dependsOn" not in key_auth["spec"]
            assert key_auth["spec"]["path"] == f"./rendered/{env}/key-auth"
        platform = flux[f"clusters/{env}/platform.yaml"]
        assert platform["metadata"]["name"] == f"{env}-platform"
        assert platform["spec"]["path"] == f"./rendered/{env}/platform" and "dependsOn" not in platform["spec"]
        for ep in endpoints:
            k = flux[f"clusters/{env}/endpoints/{ep}.yaml"]
            assert k["metadata"]["name"] == f"{env}-{ep}"
            assert k["spec"]["path"] == f"./rendered/{env}/endpoints/{ep}"
            assert k["spec"]["dependsOn"] == [{"name": f"{env}-platform"}]
        for k in flux.values():
            assert k["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "endpointgen"
            assert k["spec"]["prune"] is True and k["spec"]["wait"] is True
            assert {"interval", "retryInterval", "timeout"} <= set(k["spec"])
            assert k["spec"]["sourceRef"]["kind"] == "GitRepository"
            folder = k["spec"]["path"][2:]
            assert f"{folder}/kustomization.yaml" in files, folder
        assert len({k["metadata"]["name"] for k in flux.values()}) == len(flux)


def test_every_kustomization_lists_exactly_its_folder(output: Output) -> None:
    files = output.files
    for env in sorted({rel.split("/")[1] for rel in files}):
        base = f"rendered/{env}"
        folders = sorted(rel[len(base) + 1:-len("/kustomization.yaml")] for rel in files
                         if rel.startswith(f"{base}/") and rel.endswith("/kustomization.yaml")
                         and rel != f"{base}/kustomization.yaml")
        top = yaml.safe_load(files[f"{base}/kustomization.yaml"])
        assert top["resources"] == folders
        assert "platform" in folders and all(f in ("platform", "key-auth") or f.startswith("endpoints/")
                                             for f in folders)
        listed = set()
        for folder in folders:
            resources = yaml.safe_load(files[f"{base}/{folder}/kustomization.yaml"])["resources"]
            assert resources == sorted(resources) and resources, folder
            present = sorted(rel[len(base) + len(folder) + 2:] for rel in files
                             if rel.startswith(f"{base}/{folder}/") and not rel.endswith("/kustomization.yaml"))
            assert resources == present, folder
            listed |= {f"{base}/{folder}/{r}" for r in resources}
        assert listed == {rel for rel in files if rel.startswith(f"{base}/") and not rel.endswith("kustomization.yaml")}


def test_every_file_has_the_generated_header(output: Output) -> None:
    root, files = output.root, output.files
    for rel, text in files.items():
        env = rel.split("/")[1]
        first = text.splitlines()[0]
        if rel.startswith(f"rendered/{env}/") and rel.endswith("/kustomization.yaml"):
            source = f"environments/{env}"  # the environment-wide one, platform/ and each endpoint folder
        elif rel.startswith(f"rendered/{env}/endpoints/"):
            source = f"environments/{env}/endpoints/{rel.split('/')[3]}.yaml"
        else:
            source = f"environments/{env}/environment.yaml"
        assert first == f"# Generated by endpointgen from {source}; do not edit.", rel
        assert (root / source).exists(), f"{rel} names {source}, which does not exist"


def test_containers_run_restricted(output: Output) -> None:
    with_init = 0
    for name, dep in of_kind(output.objects, "Deployment").items():
        pod = dep["spec"]["template"]["spec"]
        pod_sc = pod["securityContext"]
        assert pod_sc["runAsNonRoot"] is True and pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
        assert pod["automountServiceAccountToken"] is False
        containers = pod["containers"] + pod.get("initContainers", [])
        with_init += bool(pod.get("initContainers"))
        for c in containers:
            sc = c["securityContext"]
            where = f"{name}/{c['name']}"
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert sc.get("runAsNonRoot", pod_sc["runAsNonRoot"]) is True, where
            assert sc.get("seccompProfile", pod_sc["seccompProfile"]) == {"type": "RuntimeDefault"}, where
            assert not sc.get("privileged"), where
    assert with_init, "no Deployment with init containers: the loop above never checked one"


def test_models_are_fetched_into_the_azureml_layout(output: Output) -> None:
    root, files, objects = output.root, output.files, output.objects
    for (env, endpoint), spec in endpoint_specs(root, files).items():
        deployments = deployments_by_version(objects, env, endpoint)
        for version in spec["versions"]:
            dep = deployments[version["version_name"]]
            pod = dep["spec"]["template"]["spec"]
            models = version.get("models", [])
            folders = [f"{MODELS_ROOT}/{m['name']}/{m['version']}" for m in models]
            assert [c["args"] for c in pod.get("initContainers", [])] == [[m["uri"], f] for m, f in
                                                                          zip(models, folders)]
            for c in pod.get("initContainers", []) + pod["containers"]:
                mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
                assert mounts.get(MODELS_ROOT) == ("models" if models else None)
            variables = env_vars(scoring(dep))
            wanted = None if not folders else folders[0] if len(folders) == 1 else MODELS_ROOT
            assert variables.get("AZUREML_MODEL_DIR") == wanted
            # the server loads AML_APP_ROOT joined with AZUREML_ENTRY_SCRIPT (tests/test_serving.py runs it)
            config = version["inference_config"]
            script = posixpath.join(config.get("source_directory", "/var/azureml-app"), config["entry_script"])
            assert posixpath.join(variables["AML_APP_ROOT"], variables["AZUREML_ENTRY_SCRIPT"]) == script
            assert scoring(dep)["image"] == version["inference_config"]["image"]
            for name, value in version["inference_config"].get("environment_variables", {}).items():
                assert variables[name] == value


def test_several_models_share_the_models_root(lab: dict[str, dict[str, Any]]) -> None:
    dep = of_kind(lab, "Deployment")["replica-lab-auto-gpu"]
    assert env_vars(scoring(dep))["AZUREML_MODEL_DIR"] == MODELS_ROOT
    assert [c["args"][1] for c in dep["spec"]["template"]["spec"]["initContainers"]] == [
        f"{MODELS_ROOT}/encoder/4", f"{MODELS_ROOT}/vocab.txt/2024-01"]
    one = of_kind(lab, "Deployment")["traffic-lab-ver-a"]
    assert env_vars(scoring(one))["AZUREML_MODEL_DIR"] == f"{MODELS_ROOT}/m/1"


# --- what only the API server or the YAML readers downstream would catch -------------------------------


def test_api_server_limits(output: Output) -> None:
    """Limits the OpenAPI schemas do not carry: unique list keys, HPA policy periods, port name length."""
    for rel, obj in output.objects.items():
        if obj["kind"] == "HorizontalPodAutoscaler":
            for direction in ("scaleUp", "scaleDown"):
                for policy in obj["spec"]["behavior"][direction]["policies"]:
                    assert 0 < policy["periodSeconds"] <= 1800, f"{rel}: {direction} period {policy['periodSeconds']}"
        if obj["kind"] != "Deployment":
            continue
        pod = obj["spec"]["template"]["spec"]
        containers = pod["containers"] + pod.get("initContainers", [])
        names = [c["name"] for c in containers]
        assert len(names) == len(set(names)), f"{rel}: duplicate container names {names}"
        volumes = [v["name"] for v in pod["volumes"]]
        assert len(volumes) == len(set(volumes)), f"{rel}: duplicate volumes {volumes}"
        for c in containers:
            variables = [e["name"] for e in c.get("env", [])]
            assert len(variables) == len(set(variables)), f"{rel}/{c['name']}: duplicate env names {variables}"
            assert {m["name"] for m in c["volumeMounts"]} <= set(volumes)
            assert all(len(p["name"]) <= 15 for p in c.get("ports", []))


def test_refresh_period_is_the_scale_up_policy_period(lab: dict[str, dict[str, Any]]) -> None:
    hpa = of_kind(lab, "HorizontalPodAutoscaler")["replica-lab-auto-two"]
    assert hpa["spec"]["behavior"]["scaleUp"]["policies"][0]["periodSeconds"] == 1800
    hpa = of_kind(lab, "HorizontalPodAutoscaler")["replica-lab-auto-gpu"]
    assert hpa["spec"]["behavior"]["scaleUp"]["policies"][0]["periodSeconds"] == 1  # the AksEndpoint default


def test_every_yaml_reader_sees_the_same_values(output: Output) -> None:
    """PyYAML (YAML 1.1), YAML 1.2 (kustomize, Flux) and YAML 1.1 with y/n booleans (kubectl) agree."""
    yaml12 = ruamel.yaml.YAML(typ="safe", pure=True)
    yaml11 = ruamel.yaml.YAML(typ="safe", pure=True)
    yaml11.version = (1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for rel, text in output.files.items():
            expected = yaml.safe_load(text)
            assert yaml12.load(text) == expected, f"{rel} reads differently as YAML 1.2"
            assert yaml11.load(text) == expected, f"{rel} reads differently with YAML 1.1 booleans"


def test_tricky_strings_stay_strings(lab: dict[str, dict[str, Any]]) -> None:
    dep = of_kind(lab, "Deployment")["retry-lab-ver-a"]
    variables = env_vars(scoring(dep))
    assert {name: variables[name] for name in TRICKY} == TRICKY
    assert dep["metadata"]["annotations"]["endpointgen.io/description"] == "1e3"
    vs = of_kind(lab, "VirtualService")["retry-lab"]
    assert vs["metadata"]["annotations"]["endpointgen.io/description"] == "n"
    assert json.loads(vs["metadata"]["annotations"]["endpointgen.io/tags"]) == {"y": "0o17"}


def test_names_endpointgen_sets_are_refused_as_user_variables(tmp_path: Path) -> None:
    """A user variable with a name endpointgen sets would be a duplicate key (server-side apply refuses it)."""
    objects = manifests(rendered_files(PROJECT))
    ours = set()
    for dep in of_kind(objects, "Deployment").values():
        if "endpointgen.io/endpoint" not in dep["metadata"]["labels"]:
            continue  # the key-auth authorizer
        user = set()
        for spec_file in (PROJECT / "environments").glob("*/endpoints/*.yaml"):
            spec = yaml.safe_load(spec_file.read_text(encoding="utf-8"))
            for version in spec["versions"]:
                user |= set(version["inference_config"].get("environment_variables", {}))
        ours |= {e["name"] for e in scoring(dep)["env"]} - user - {"HOME"}  # HOME=/tmp unless the user sets it
    assert {"AZUREML_MODEL_DIR", "WORKER_COUNT", "SCORING_TIMEOUT_MS", "AML_APP_INSIGHTS_KEY"} <= ours
    root = copy_examples(tmp_path / "repo")
    for name in sorted(ours):
        config = {**version_spec("x")["inference_config"], "environment_variables": {name: "1"}}
        write_endpoint(root, "dev", "clash", [version_spec("ver-a", inference_config=config)], auth_enabled=False)
        with pytest.raises(ProblemsFound) as caught:
            plan(root, ["dev"])
        assert [p.field for p in caught.value.problems] == [
            f"versions[0].inference_config.environment_variables.{name}"], name
