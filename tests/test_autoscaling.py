"""Issue 12: KEDA on requests in flight (AksEndpoint's rule), the CPU fallback, and limits at each replica."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from render_helpers import PROJECT, copy_examples, manifests, of_kind, rendered_files, run_cli, version_spec, \
    write_endpoint

EVERY_FIELD = PROJECT / "tests" / "fixtures" / "every-field"


def write_environment(root: Path, env: str, change: dict[str, Any], drop: tuple[str, ...] = ()) -> Path:
    path = root / "environments" / env / "environment.yaml"
    data = yaml.safe_load(path.read_text())
    data.update(change)
    for key in drop:
        data.pop(key, None)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def settings_of(root: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(env, namespace, deployment name) -> the version's effective settings, from endpointgen's own loader."""
    from generator.spec.repository import load_repository
    repo = load_repository(root)
    assert repo.problems == []
    return {(ep.env.name, ep.namespace, f"{ep.name}-{v.name}"): v.settings for ep in repo.endpoints for v in ep.versions}


@pytest.mark.parametrize("root", [PROJECT, EVERY_FIELD], ids=["examples", "every-field"])
def test_each_autoscaled_version_has_one_scaled_object_on_in_flight_requests(root: Path) -> None:
    objects = manifests(rendered_files(root))
    envs = {rel.split("/")[1] for rel in objects if rel.startswith("rendered/")}
    scaled = 0
    for (env, namespace, name), s in settings_of(root).items():
        if env not in envs:
            continue
        in_env = {rel: o for rel, o in objects.items() if rel.startswith(f"rendered/{env}/")}
        deployment = of_kind(in_env, "Deployment")[name]
        settings = yaml.safe_load((root / "environments" / env / "environment.yaml").read_text())
        prometheus = settings.get("autoscaling", {}).get("prometheus")
        if prometheus is None:  # the CPU fallback (every-field's lab-cpu)
            assert name not in of_kind(in_env, "ScaledObject")
            assert (name in of_kind(in_env, "HorizontalPodAutoscaler")) == s["autoscale_enabled"]
            continue
        assert name not in of_kind(in_env, "HorizontalPodAutoscaler")  # KEDA owns the HPA; no second one
        if not s["autoscale_enabled"]:
            assert name not in of_kind(in_env, "ScaledObject")
            assert deployment["spec"]["replicas"] == s["num_replicas"]
            continue
        scaled += 1
        assert "replicas" not in deployment["spec"]
        so = of_kind(in_env, "ScaledObject")[name]["spec"]
        assert so["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert (so["minReplicaCount"], so["maxReplicaCount"]) == (s["autoscale_min_replicas"],
                                                                  s["autoscale_max_replicas"])
        assert so["pollingInterval"] == s["autoscale_refresh_seconds"]
        [trigger] = so["triggers"]
        assert (trigger["type"], trigger["metricType"]) == ("prometheus", "AverageValue")
        meta = trigger["metadata"]
        assert meta["serverAddress"] == prometheus["server_address"]
        threshold = Decimal(s["replica_max_concurrent_requests"]) * s["autoscale_target_utilization"] / 100
        assert Decimal(meta["threshold"]) == threshold
        assert f'destination_workload="{name}"' in meta["query"]
        assert f'destination_workload_namespace="{namespace}"' in meta["query"]
        assert 'reporter="destination"' in meta["query"]
        assert f"[{prometheus.get('rate_window', '1m')}]" in meta["query"]
        if prometheus.get("auth") == "azure-workload":
            auth = trigger["authenticationRef"]["name"]
            ta = of_kind({r: o for r, o in in_env.items() if o["metadata"].get("namespace") == namespace},
                         "TriggerAuthentication")[auth]
            assert ta["spec"]["podIdentity"]["provider"] == "azure-workload"
            assert ta["spec"]["podIdentity"]["identityId"] == prometheus.get("identity_client_id",
                                                                         prometheus.get("identity_id"))
        else:
            assert "authenticationRef" not in trigger
            assert of_kind(in_env, "TriggerAuthentication") == {}
    assert scaled >= 2


def test_without_prometheus_autoscaling_falls_back_to_cpu_with_a_warning(tmp_path: Path) -> None:
    root = copy_examples(tmp_path / "repo")
    write_environment(root, "dev", {}, drop=("autoscaling",))
    objects = manifests(rendered_files(root))
    dev = {rel: o for rel, o in objects.items() if rel.startswith("rendered/dev/")}
    prod = {rel: o for rel, o in objects.items() if rel.startswith("rendered/prod/")}
    assert of_kind(dev, "ScaledObject") == {} and of_kind(dev, "TriggerAuthentication") == {}
    hpa = of_kind(dev, "HorizontalPodAutoscaler")["sentiment-blue"]
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert of_kind(prod, "HorizontalPodAutoscaler") == {}
    result = run_cli(root, "validate", "--specs-only")
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        "environments/dev/environment.yaml: warning: no autoscaling.prometheus, so autoscaled versions scale on "
        "CPU utilization, not AksEndpoint's rule (requests in flight per replica)"]
    github = run_cli(root, "validate", "--specs-only", "--output", "github")
    assert github.stderr.startswith("::warning file=environments/dev/environment.yaml::no autoscaling.prometheus")
    assert run_cli(root, "validate", "--specs-only", "--env", "prod").stderr == ""


@pytest.mark.parametrize("prometheus, field, message", [
    ({"server_address": "https://amw-x.westeurope.prometheus.monitor.azure.com"}, "server_address",
     "Azure Monitor managed Prometheus takes Azure AD tokens only"),
    ({"server_address": "http://prometheus.monitoring:9090", "auth": "azure-workload",
      "identity_client_id": "9f8e7d6c-5b4a-4f3e-8d2c-1b0a9f8e7d6c"}, "server_address",
     "workload identity tokens are sent over https only"),
    ({"server_address": "http://prometheus.monitoring:9090", "identity_id": "9f8e7d6c-5b4a-4f3e-8d2c-1b0a9f8e7d6c"},
     "identity_id", "identity_id is used with auth: azure-workload only"),
    ({"server_address": "http://prometheus.monitoring:9090", "rate_window": "15s"}, "rate_window",
     "15s is too short for rate()"),
    ({"server_address": "https://p.monitoring:9090", "auth": "azure-workload"}, "auth",
     "federated credential for kube-system/keda-operator: set identity_client_id"),
    ({"server_address": "http://prometheus.monitoring:9090",
      "identity_client_id": "9f8e7d6c-5b4a-4f3e-8d2c-1b0a9f8e7d6c"},
     "identity_client_id", "identity_client_id is used with auth: azure-workload only"),
    ({"server_address": "https://p.monitoring:9090", "auth": "azure-workload",
      "identity_client_id": "9f8e7d6c-5b4a-4f3e-8d2c-1b0a9f8e7d6c", "identity_id": "1f8e7d6c-5b4a-4f3e-8d2c-1b0a9f8e7d6c"},
     "identity_id", "earlier name of identity_client_id and names another identity"),
    ({"server_address": "prometheus:9090"}, "server_address", "expected an http(s) URL"),
    ({"server_address": "http://p:9090", "auth": "basic"}, "auth", "auth"),
])
def test_bad_prometheus_settings_name_file_line_and_field(tmp_path: Path, prometheus: dict[str, Any], field: str,
                                                          message: str) -> None:
    root = copy_examples(tmp_path / "repo")
    path = write_environment(root, "dev", {"autoscaling": {"prometheus": prometheus}})
    result = run_cli(root, "validate", "--specs-only", "--env", "dev")
    assert result.exit_code == 1
    lines = path.read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if text.strip().startswith(f"{field}:"))
    [problem] = [p for p in result.stderr.splitlines() if p.startswith("environments/")]
    assert problem.startswith(f"environments/dev/environment.yaml:{line}:")
    assert f"autoscaling.prometheus.{field}" in problem
    assert message in problem


# --- limits at each replica -----------------------------------------------------------------------------


def expected_queue(max_concurrent: int, wait_ms: int, timeout_ms: int) -> int:
    """Requests that can start within wait_ms when every call ahead runs to timeout_ms; at least one."""
    starts_in_time = 0
    while (starts_in_time + 1) * timeout_ms <= wait_ms * max_concurrent:
        starts_in_time += 1
    return max(1, starts_in_time)


@pytest.mark.parametrize("root", [PROJECT, EVERY_FIELD], ids=["examples", "every-field"])
def test_each_version_has_a_sidecar_limiting_its_own_pods(root: Path) -> None:
    objects = manifests(rendered_files(root))
    versions = settings_of(root)
    sidecars = 0
    for (env, namespace, name), s in versions.items():
        in_env = {rel: o for rel, o in objects.items() if rel.startswith(f"rendered/{env}/")}
        sidecar = of_kind(in_env, "Sidecar")[name]
        assert sidecar["metadata"]["namespace"] == namespace
        selector = sidecar["spec"]["workloadSelector"]["labels"]
        for other in of_kind(in_env, "Deployment").values():
            labels = other["spec"]["template"]["metadata"]["labels"]
            matches = all(labels.get(k) == v for k, v in selector.items())
            assert matches == (other["metadata"]["name"] == name and other["metadata"]["namespace"] == namespace)
        pool = sidecar["spec"]["inboundConnectionPool"]
        workers = s["replica_max_concurrent_requests"]
        assert pool["tcp"]["maxConnections"] == pool["http"]["http2MaxRequests"] == workers
        # Envoy's pending queue also holds the requests waiting for their connection to a worker
        assert pool["http"]["http1MaxPendingRequests"] == workers + expected_queue(
            workers, s["max_request_wait_time"], s["scoring_timeout_ms"])
        # one Envoy worker thread, so the limits are not split between threads
        pod = of_kind(in_env, "Deployment")[name]["spec"]["template"]["metadata"]["annotations"]
        assert json.loads(pod["proxy.istio.io/config"])["concurrency"] == 1
        assert "egress" not in sidecar["spec"]  # the mesh's defaults stay
        # the scoring port's listener goes to one static upstream, the container's port on loopback
        [listener] = sidecar["spec"]["ingress"]
        [port] = [p["containerPort"] for c in of_kind(in_env, "Deployment")[name]["spec"]["template"]["spec"][
            "containers"] if c["name"] == "scoring" for p in c["ports"] if p["name"] == "http"]
        assert listener["port"]["number"] == port and listener["defaultEndpoint"] == f"127.0.0.1:{port}"
        assert pool["http"]["idleTimeout"] == "1s"
        sidecars += 1
    assert sidecars == len(versions)


def test_queue_length_follows_the_wait_time(tmp_path: Path) -> None:
    root = copy_examples(tmp_path / "repo")
    write_endpoint(root, "dev", "queue-lab", [
        version_spec("fast", replica_max_concurrent_requests=4, max_request_wait_time=2000, scoring_timeout_ms=1000),
        version_spec("slow", replica_max_concurrent_requests=2, max_request_wait_time=500, traffic_percentile=10),
    ], auth_enabled=False)
    sidecars = of_kind(manifests(rendered_files(root, ["dev"])), "Sidecar")
    assert sidecars["queue-lab-fast"]["spec"]["inboundConnectionPool"]["http"]["http1MaxPendingRequests"] == 4 + 8
    assert sidecars["queue-lab-slow"]["spec"]["inboundConnectionPool"]["http"]["http1MaxPendingRequests"] == 2 + 1
    assert expected_queue(4, 2000, 1000) == 8 == math.floor(4 * 2000 / 1000)


def test_two_autoscalers_on_one_deployment_are_refused() -> None:
    from generator.check.apiserver import set_rules
    deployment = {"kind": "Deployment", "metadata": {"name": "a-b", "namespace": "n"}, "spec": {}}
    hpa = {"kind": "HorizontalPodAutoscaler", "metadata": {"name": "a-b", "namespace": "n"},
           "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "a-b"}}}
    scaled = {"kind": "ScaledObject", "metadata": {"name": "a-b", "namespace": "n"},
              "spec": {"scaleTargetRef": {"name": "a-b"}}}
    found = list(set_rules([deployment, hpa, scaled]))
    assert [(i, rule) for i, _, _, rule in found] == [(2, "one-autoscaler")]
    with_replicas = {**deployment, "spec": {"replicas": 2}}
    assert [rule for _, _, _, rule in set_rules([with_replicas, scaled])] == ["no-replicas-under-hpa"]


def scale_up_limit(behavior: dict[str, Any], replicas: int) -> int:
    """The most replicas the HPA may go to from `replicas` in one policy period (no scale-up in it yet), as
    kube-controller-manager computes it (horizontal.go, calculateScaleUpLimitWithScalingRules)."""
    limits = [replicas + policy["value"] if policy["type"] == "Pods"
              else math.ceil(replicas * (1 + policy["value"] / 100)) for policy in behavior["policies"]]
    return max(limits) if behavior.get("selectPolicy", "Max") == "Max" else min(limits)


KUBERNETES_DEFAULT_SCALE_UP = {"selectPolicy": "Max", "policies": [
    {"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]}


@pytest.mark.parametrize("root", [PROJECT, EVERY_FIELD], ids=["examples", "every-field"])
def test_scale_up_is_at_least_as_fast_as_the_kubernetes_default(root: Path) -> None:
    """From every replica count, each refresh (at most the default's 15 s) allows at least the default step:
    from one replica, six in one step (the default's +4 would not be reached by doubling alone)."""
    objects = manifests(rendered_files(root))
    scalers = [o["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleUp"]
               for o in of_kind(objects, "ScaledObject").values()]
    scalers += [o["spec"]["behavior"]["scaleUp"] for o in of_kind(objects, "HorizontalPodAutoscaler").values()]
    assert scalers
    for scale_up in scalers:
        assert scale_up["stabilizationWindowSeconds"] == 0
        assert max(p["periodSeconds"] for p in scale_up["policies"]) <= 15
        for replicas in range(1, 60):
            assert scale_up_limit(scale_up, replicas) >= scale_up_limit(KUBERNETES_DEFAULT_SCALE_UP, replicas)
        assert scale_up_limit(scale_up, 1) >= 5


# --- metric outages and the move from the CPU HPA to KEDA ------------------------------------------------


@pytest.mark.parametrize("kubernetes, keda, behavior", [
    ("1.32", None, None),             # the add-on's KEDA 2.14: no fallback.behavior, the HPA holds on errors
    ("1.33", None, None),             # 2.16.1 in AKS's component table
    ("1.35", None, "currentReplicasIfHigher"),  # 2.17
    ("1.36", None, "currentReplicasIfHigher"),  # 2.19
    ("1.39", None, "currentReplicasIfHigher"),  # above the table: the newest known
    ("1.36", "2.16", None),           # a self-installed KEDA older than the add-on's
    ("1.33", "2.17", "currentReplicasIfHigher"),
])
def test_the_fallback_is_what_the_clusters_keda_has(tmp_path: Path, kubernetes: str, keda: str | None,
                                                    behavior: str | None) -> None:
    root = copy_examples(tmp_path / "repo")
    autoscaling = yaml.safe_load((root / "environments/dev/environment.yaml").read_text())["autoscaling"]
    if keda:
        autoscaling["keda_version"] = keda
    write_environment(root, "dev", {"kubernetes_version": kubernetes, "autoscaling": autoscaling})
    scaled = of_kind(manifests(rendered_files(root, ["dev"])), "ScaledObject")
    assert scaled
    for so in scaled.values():
        if behavior is None:
            assert "fallback" not in so["spec"]
        else:
            assert so["spec"]["fallback"] == {"failureThreshold": 3, "replicas": so["spec"]["minReplicaCount"],
                                              "behavior": behavior}
        [trigger] = so["spec"]["triggers"]
        # KEDA 2.17's webhook refuses a fallback unless a trigger's metricType is AverageValue
        assert trigger["metricType"] == "AverageValue"
        # an empty result is a scaler error, not a zero, and the query has no default of its own
        assert trigger["metadata"]["ignoreNullValues"] == "false" and "vector(" not in trigger["metadata"]["query"]


def test_a_version_moves_from_the_cpu_hpa_to_keda_without_a_refused_apply(tmp_path: Path) -> None:
    """Before: dev without Prometheus, a CPU HPA per autoscaled version. After: Prometheus set, a ScaledObject.
    Flux applies the new objects before it prunes the old HPA, so KEDA's webhook sees the HPA still scaling the
    Deployment; it admits the ScaledObject only with the transfer annotation and the HPA's name in
    advanced.horizontalPodAutoscalerConfig.name (kedacore/keda apis/keda/v1alpha1/scaledobject_webhook.go,
    verifyHpas), and KEDA then adopts that HPA by name."""
    root = copy_examples(tmp_path / "repo")
    autoscaling = yaml.safe_load((root / "environments/dev/environment.yaml").read_text())["autoscaling"]
    write_environment(root, "dev", {}, drop=("autoscaling",))
    before = of_kind(manifests(rendered_files(root, ["dev"])), "HorizontalPodAutoscaler")
    write_environment(root, "dev", {"autoscaling": autoscaling})
    after = manifests(rendered_files(root, ["dev"]))
    scaled = of_kind(after, "ScaledObject")
    assert before and set(before) == set(scaled) and of_kind(after, "HorizontalPodAutoscaler") == {}
    hpas = list(before.values())
    for so in scaled.values():
        assert keda_webhook_refusal(so, hpas) is None
        bare = {**so, "metadata": {**so["metadata"], "annotations": {}}}
        assert "is already managed by the hpa" in str(keda_webhook_refusal(bare, hpas))  # without it: refused


def keda_webhook_refusal(so: dict[str, Any], hpas: list[dict[str, Any]]) -> str | None:
    """KEDA's admission rule for HPAs (verifyHpas, v2.11 to v2.19): an HPA in the namespace scaling the same
    target and not owned by this ScaledObject refuses it, unless the transfer annotation is "true" and the
    ScaledObject names that HPA in advanced.horizontalPodAutoscalerConfig.name."""
    meta, spec = so["metadata"], so["spec"]
    for hpa in hpas:
        if hpa["metadata"]["namespace"] != meta["namespace"]:
            continue
        target = hpa["spec"]["scaleTargetRef"]
        if (target["kind"], target["name"]) != (spec["scaleTargetRef"].get("kind", "Deployment"),
                                                spec["scaleTargetRef"]["name"]):
            continue
        owners = hpa["metadata"].get("ownerReferences", [])
        if any(o["kind"] == "ScaledObject" and o["name"] == meta["name"] for o in owners):
            continue
        transfer = meta.get("annotations", {}).get("scaledobject.keda.sh/transfer-hpa-ownership") == "true"
        if not (transfer and spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("name")
                == hpa["metadata"]["name"]):
            return (f"the workload '{target['name']}' of type '{target['kind']}' is already managed by the hpa "
                    f"'{hpa['metadata']['name']}'")
    return None


def test_scaled_objects_beyond_the_workspace_query_limit_are_refused(tmp_path: Path) -> None:
    """Azure Monitor's 30,000 query hours per identity per 30 s: with a 100 h rate window each 1 s ScaledObject
    costs (30 polls + 2 HPA reads) x 100 h = 3,200 of them: prod takes as many as fit, and refuses one more."""
    root = copy_examples(tmp_path / "repo")
    path = root / "environments" / "prod" / "environment.yaml"
    settings = yaml.safe_load(path.read_text())
    settings["autoscaling"]["prometheus"]["rate_window"] = "6000m"
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    window_hours = 100
    existing = of_kind(manifests(rendered_files(root, ["prod"])), "ScaledObject").values()
    load = sum((30 / so["spec"]["pollingInterval"] + 30 / 15) * window_hours for so in existing)
    per_version = (30 / 1 + 30 / 15) * window_hours
    fits = int((30_000 - load) // per_version)
    assert 0 < fits < 9
    for i in range(fits):
        write_endpoint(root, "prod", f"load-{i}", [version_spec("one", autoscale_refresh_seconds=1)],
                       auth_enabled=False)
    assert run_cli(root, "validate", "--specs-only", "--env", "prod").exit_code == 0
    assert run_cli(root, "render", "--env", "prod").exit_code == 0
    write_endpoint(root, "prod", "one-more", [version_spec("one", autoscale_refresh_seconds=1)], auth_enabled=False)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "server_address:" in text)
    # the spec checks, a full validate, and the render after one change (incremental, from the recorded load)
    for command in (["validate", "--specs-only"], ["validate"], ["render", "--env", "prod"]):
        result = run_cli(root, *command)
        assert result.exit_code == 1, command
        [problem] = [p for p in result.stderr.splitlines() if p.startswith("environments/")]
        assert problem.startswith(f"environments/prod/environment.yaml:{line}:")
        assert f"{load + (fits + 1) * per_version:,.0f} query hours per 30 s" in problem
        identity = settings["autoscaling"]["prometheus"]["identity_client_id"]  # KEDA's, summed over its versions
        assert f"identity {identity} for" in problem and "limit of 30,000" in problem
    assert not (root / "rendered" / "prod" / "endpoints" / "one-more").exists()
