"""The ScaledObjects' PromQL, evaluated by Prometheus itself (`promtool test rules`) on synthetic Istio series.

Each scenario writes counter series the way Istio's sidecars export them (`istio_request_duration_milliseconds`
`_sum` and `_count`, per pod, reported by the destination and the source proxy), evaluates the query and the
replica rule rendered into each version's ScaledObject at a moment whose rate() window lies on a straight stretch
of the series (so Prometheus' extrapolation is exact), and compares them with what the test computes on its own:
requests in flight from the series' slopes, and AksEndpoint's replica count by walking up from the minimum until
busy replicas / replicas is within the target utilization. promtool (Debian package `prometheus`) is installed
by .ci/run.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from render_helpers import copy_examples, manifests, of_kind, rendered_files, version_spec, write_endpoint

STEP = 15  # seconds between samples, a typical scrape interval
NAMESPACE = "ml-endpoints-dev"


@dataclass(frozen=True)
class Series:
    """One pod's counter: `slopes` are the milliseconds of request time added per second, one per segment of
    `segment` samples (a request served for a whole second adds 1,000); `missing` are samples never scraped."""

    workload: str
    pod: str
    slopes: tuple[float, ...]
    namespace: str = NAMESPACE
    reporter: str = "destination"
    segment: int = 12
    missing: tuple[int, ...] = ()

    def samples(self) -> list[float]:
        out, value = [], 0.0
        for i, slope in enumerate(self.slopes):
            for _ in range((self.segment if i < len(self.slopes) - 1 else self.segment * 2) + 1):
                out.append(value)
                value += slope * STEP
        return out

    def values(self) -> str:
        """promtool's series values, one per scrape; `_` where a scrape is missing."""
        return " ".join("_" if i in self.missing else f"{v:.15g}" for i, v in enumerate(self.samples()))

    def labels(self, metric: str) -> str:
        return (f'{metric}{{reporter="{self.reporter}",destination_workload="{self.workload}",'
                f'destination_workload_namespace="{self.namespace}",pod="{self.pod}"}}')


def in_flight(series: list[Series], workload: str, segment_index: int) -> Decimal:
    """Little's law, independently: request-seconds per second of this workload's serving proxies."""
    total = sum(Decimal(str(s.slopes[min(segment_index, len(s.slopes) - 1)])) for s in series
                if s.workload == workload and s.namespace == NAMESPACE and s.reporter == "destination")
    return total / 1000


def aks_replicas(in_flight_requests: Decimal, max_concurrent: int, target: int, low: int, high: int) -> int:
    """AksEndpoint's rule by its own words: add replicas while busy replicas / replicas exceeds the target."""
    replicas = low
    while replicas < high and in_flight_requests / (replicas * max_concurrent) > Decimal(target) / 100:
        replicas += 1
    return replicas


VERSIONS = {  # name: (replica_max_concurrent_requests, autoscale_target_utilization, min, max)
    "blue": (2, 70, 1, 10),
    "green": (1, 50, 2, 4),
}


def render_scale_lab(root: Path, keda_version: str | None = None) -> dict[str, dict[str, Any]]:
    """The rendered ScaledObjects of an endpoint with two differently tuned versions (dev: in-cluster Prometheus),
    on the dev cluster's KEDA or on `keda_version`."""
    copy_examples(root)
    if keda_version:
        path = root / "environments" / "dev" / "environment.yaml"
        settings = yaml.safe_load(path.read_text())
        settings["autoscaling"]["keda_version"] = keda_version
        path.write_text(yaml.safe_dump(settings, sort_keys=False))
    write_endpoint(root, "dev", "scale-lab", [
        version_spec(name, replica_max_concurrent_requests=c, autoscale_target_utilization=t,
                     autoscale_min_replicas=lo, autoscale_max_replicas=hi,
                     traffic_percentile=0 if name == "blue" else 50)
        for name, (c, t, lo, hi) in VERSIONS.items()
    ], auth_enabled=False)
    objects = of_kind(manifests(rendered_files(root, ["dev"])), "ScaledObject")
    return {name: objects[f"scale-lab-{name}"] for name in VERSIONS}


@pytest.fixture(scope="module")
def scaled_objects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    return render_scale_lab(tmp_path_factory.mktemp("promql") / "repo")


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed: apt-get install prometheus (.ci/run does)")
    return path


def run_promtool(tmp_path: Path, series: list[Series], tests: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    inputs = []
    for s in series:
        inputs.append({"series": s.labels("istio_request_duration_milliseconds_sum"), "values": s.values()})
    document = {"evaluation_interval": f"{STEP}s",
                "tests": [{"interval": f"{STEP}s", "input_series": inputs, "promql_expr_test": tests}]}
    path = tmp_path / "test.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False, width=1000))
    return subprocess.run([promtool(), "test", "rules", str(path)], capture_output=True, text=True, timeout=60,
                          check=False)


def expectations(scaled: dict[str, dict[str, Any]], series: list[Series], segment_index: int,
                 eval_seconds: int) -> list[dict[str, Any]]:
    """For each version: its query gives the in-flight count, and its rule the AksEndpoint replica count."""
    tests = []
    for name, obj in scaled.items():
        spec = obj["spec"]
        meta = spec["triggers"][0]["metadata"]
        workers, target, low, high = VERSIONS[name]
        rule = replica_rule(obj)
        if not any(s.workload == f"scale-lab-{name}" and s.namespace == NAMESPACE and s.reporter == "destination"
                   for s in series):  # never called: no sample at all, which KEDA takes as an error
            tests += [{"expr": expr, "eval_time": f"{eval_seconds}s", "exp_samples": []}
                      for expr in (meta["query"], rule)]
            continue
        expected = in_flight(series, f"scale-lab-{name}", segment_index)
        replicas = aks_replicas(expected, workers, target, low, high)
        tests.append({"expr": meta["query"], "eval_time": f"{eval_seconds}s",
                      "exp_samples": [{"labels": "{}", "value": float(expected)}]})
        tests.append({"expr": rule, "eval_time": f"{eval_seconds}s",
                      "exp_samples": [{"labels": "{}", "value": replicas}]})
    return tests


def replica_rule(obj: dict[str, Any]) -> str:
    """The HPA's AverageValue rule on the ScaledObject's query, in PromQL: ceil(query / threshold), clamped."""
    spec, meta = obj["spec"], obj["spec"]["triggers"][0]["metadata"]
    return f"clamp(ceil(({meta['query']}) / {meta['threshold']}), {spec['minReplicaCount']}, {spec['maxReplicaCount']})"


def eval_time(segment_index: int, segment: int = 12) -> int:
    """A moment at the end of a segment, so the 1m window (4 samples) lies on one straight stretch."""
    return (segment_index * (segment + 1) + segment) * STEP


SCENARIOS = {
    # steady load: blue serves 3 requests at a time (3,000 ms of request time per second), green half a request
    "steady": ([Series("scale-lab-blue", "blue-0", (3000,)), Series("scale-lab-green", "green-0", (500,))], [0]),
    # a burst: blue idles at 0.05 in flight, then 9 requests at a time; green stays quiet
    "burst": ([Series("scale-lab-blue", "blue-0", (50, 9000)), Series("scale-lab-green", "green-0", (0, 0))], [0, 1]),
    # never called: no series of these versions; the query has no sample (an error for KEDA, not a zero)
    "no-traffic": ([Series("other-endpoint-blue", "other-0", (1000,))], [0]),
    # called once, idle since: the series exist at a zero rate; the query says 0 and the rule the minimum
    "idle": ([Series("scale-lab-blue", "blue-0", (0,)), Series("scale-lab-green", "green-0", (0,))], [0]),
    # one scrape missed in the middle of the window: rate() still has three samples on the same slope
    "one-scrape-missed": ([Series("scale-lab-blue", "blue-0", (50, 9000), missing=(23,)),
                           Series("scale-lab-green", "green-0", (500, 500), missing=(23,))], [1]),
    # one replica carrying everything vs. many replicas sharing the same load: the sum is what counts
    "one-replica": ([Series("scale-lab-blue", "blue-0", (4000,))], [0]),
    "many-replicas": ([Series("scale-lab-blue", f"blue-{i}", (500,)) for i in range(8)]
                      + [Series("scale-lab-green", f"green-{i}", (250,)) for i in range(3)], [0]),
    # versions side by side, a namesake in another namespace and the client proxies' reports of the same
    # requests: each query counts its own version's serving proxies only
    "side-by-side": ([Series("scale-lab-blue", "blue-0", (2000,)), Series("scale-lab-green", "green-0", (1500,)),
                      Series("scale-lab-blue", "blue-x", (7000,), namespace="other-team"),
                      Series("scale-lab-blue", "gateway-0", (2000,), reporter="source")], [0]),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_scaled_object_query_and_rule_give_aks_endpoint_replicas(scenario: str, tmp_path: Path,
                                                                  scaled_objects: dict[str, dict[str, Any]]) -> None:
    series, segments = SCENARIOS[scenario]
    tests = [t for i in segments for t in expectations(scaled_objects, series, i, eval_time(i))]
    result = run_promtool(tmp_path, series, tests)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_scenarios_mean_something(scaled_objects: dict[str, dict[str, Any]]) -> None:
    """Guard: the expected counts differ between scenarios and hit both bounds, so a wrong query cannot pass."""
    blue = VERSIONS["blue"]
    assert aks_replicas(in_flight(SCENARIOS["steady"][0], "scale-lab-blue", 0), *blue) == 3  # 3 / (2 x 0.7)
    assert aks_replicas(in_flight(SCENARIOS["burst"][0], "scale-lab-blue", 1), *blue) == 7  # 9 / 1.4
    assert aks_replicas(Decimal(0), *VERSIONS["green"]) == 2  # the minimum
    assert aks_replicas(in_flight(SCENARIOS["many-replicas"][0], "scale-lab-blue", 0), *blue) == 3  # 4 / 1.4
    assert aks_replicas(Decimal(100), *blue) == 10  # the maximum
    assert in_flight(SCENARIOS["side-by-side"][0], "scale-lab-blue", 0) == 2


def test_a_wrong_expectation_fails(tmp_path: Path, scaled_objects: dict[str, dict[str, Any]]) -> None:
    """Guard: promtool really compares, so the scenarios above are real checks."""
    series = SCENARIOS["steady"][0]
    query = scaled_objects["blue"]["spec"]["triggers"][0]["metadata"]["query"]
    result = run_promtool(tmp_path, series, [{"expr": query, "eval_time": f"{eval_time(0)}s",
                                              "exp_samples": [{"labels": "{}", "value": 3.5}]}])
    assert result.returncode == 1
    assert "FAILED" in result.stdout + result.stderr


# --- a metric outage ------------------------------------------------------------------------------------


def keda_replicas(sample: float | None, current: int, obj: dict[str, Any], failures: int) -> int:
    """The count KEDA's HPA sets after one poll, by KEDA's and the HPA's rules. A sample gives ceil(sample /
    threshold), clamped. No sample is a scaler error (ignoreNullValues "false": "the result is empty"); until
    more than fallback.failureThreshold errors in a row KEDA hands the error to the HPA, which then keeps the
    count it has (all its metrics invalid: kube-controller-manager's computeReplicasForMetrics); after them,
    or never without a fallback, KEDA reports the fallback count (pkg/fallback/fallback.go, doFallback)."""
    spec = obj["spec"]
    if sample is None:
        fallback = spec.get("fallback")
        if fallback is None or failures <= fallback["failureThreshold"]:
            return current
        return {"currentReplicasIfHigher": max(current, fallback["replicas"]),
                "currentReplicas": current, "static": fallback["replicas"],
                "currentReplicasIfLower": min(current, fallback["replicas"])}[fallback["behavior"]]
    threshold = Decimal(spec["triggers"][0]["metadata"]["threshold"])
    return min(max(math.ceil(Decimal(str(sample)) / threshold), spec["minReplicaCount"]), spec["maxReplicaCount"])


# blue serves 6 requests at a time (5 replicas at 2 x 70 %); then 8 scrapes (2 minutes) are lost, then it is back
OUTAGE = Series("scale-lab-blue", "blue-0", (6000, 6000), missing=tuple(range(14, 22)))
BEFORE, DURING, AFTER = 12, 20, 28  # sample indices: the window of DURING holds no sample, AFTER's all four


@pytest.mark.parametrize("keda_version", [None, "2.17"], ids=["dev-add-on-keda", "keda-2.17-fallback"])
def test_a_metric_outage_never_lowers_the_replica_count(tmp_path: Path, keda_version: str | None) -> None:
    scaled = render_scale_lab(tmp_path / "repo", keda_version)["blue"]
    assert ("fallback" in scaled["spec"]) == (keda_version is not None)
    query, rule = scaled["spec"]["triggers"][0]["metadata"]["query"], replica_rule(scaled)
    at = {name: f"{index * STEP}s" for name, index in (("before", BEFORE), ("during", DURING), ("after", AFTER))}
    tests = [
        {"expr": query, "eval_time": at["before"], "exp_samples": [{"labels": "{}", "value": 6}]},
        {"expr": rule, "eval_time": at["before"], "exp_samples": [{"labels": "{}", "value": 5}]},
        {"expr": query, "eval_time": at["during"], "exp_samples": []},  # missing, not zero
        {"expr": rule, "eval_time": at["during"], "exp_samples": []},
        {"expr": f"({query}) or vector(0)", "eval_time": at["during"],  # what the old query read: idle
         "exp_samples": [{"labels": "{}", "value": 0}]},
        {"expr": query, "eval_time": at["after"], "exp_samples": [{"labels": "{}", "value": 6}]},
    ]
    result = run_promtool(tmp_path, [OUTAGE], tests)
    assert result.returncode == 0, result.stdout + result.stderr
    replicas = keda_replicas(6.0, scaled["spec"]["minReplicaCount"], scaled, 0)
    assert replicas == 5
    for failures in range(1, 40):  # one poll after another through the outage (2 min at 1 s, and more)
        replicas = keda_replicas(None, replicas, scaled, failures)
        assert replicas == 5
    assert keda_replicas(None, 1, scaled, 40) == 1  # a version never called stays at its minimum
    assert keda_replicas(0.0, 5, scaled, 0) == 1  # while a zero (idle series) still scales it down
