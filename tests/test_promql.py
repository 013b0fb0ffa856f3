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
    `segment` samples (a request served for a whole second adds 1,000)."""

    workload: str
    pod: str
    slopes: tuple[float, ...]
    namespace: str = NAMESPACE
    reporter: str = "destination"
    segment: int = 12

    def values(self) -> str:
        """promtool's expanding notation: start+increment x count, one run per segment."""
        runs, start = [], 0.0
        for i, slope in enumerate(self.slopes):
            step = slope * STEP
            count = self.segment if i < len(self.slopes) - 1 else self.segment * 2
            runs.append(f"{start:g}+{step:g}x{count}")
            start += step * (count + 1)
        return " ".join(runs)

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


@pytest.fixture(scope="module")
def scaled_objects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The rendered ScaledObjects of an endpoint with two differently tuned versions (dev: in-cluster Prometheus)."""
    root = copy_examples(tmp_path_factory.mktemp("promql") / "repo")
    write_endpoint(root, "dev", "scale-lab", [
        version_spec(name, replica_max_concurrent_requests=c, autoscale_target_utilization=t,
                     autoscale_min_replicas=lo, autoscale_max_replicas=hi,
                     traffic_percentile=0 if name == "blue" else 50)
        for name, (c, t, lo, hi) in VERSIONS.items()
    ], auth_enabled=False)
    objects = of_kind(manifests(rendered_files(root, ["dev"])), "ScaledObject")
    return {name: objects[f"scale-lab-{name}"] for name in VERSIONS}


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
        expected = in_flight(series, f"scale-lab-{name}", segment_index)
        replicas = aks_replicas(expected, workers, target, low, high)
        rule = (f"clamp(ceil(({meta['query']}) / {meta['threshold']}), {spec['minReplicaCount']}, "
                f"{spec['maxReplicaCount']})")
        tests.append({"expr": meta["query"], "eval_time": f"{eval_seconds}s",
                      "exp_samples": [{"labels": "{}", "value": float(expected)}]})
        tests.append({"expr": rule, "eval_time": f"{eval_seconds}s",
                      "exp_samples": [{"labels": "{}", "value": replicas}]})
    return tests


def eval_time(segment_index: int, segment: int = 12) -> int:
    """A moment at the end of a segment, so the 1m window (4 samples) lies on one straight stretch."""
    return (segment_index * (segment + 1) + segment) * STEP


SCENARIOS = {
    # steady load: blue serves 3 requests at a time (3,000 ms of request time per second), green half a request
    "steady": ([Series("scale-lab-blue", "blue-0", (3000,)), Series("scale-lab-green", "green-0", (500,))], [0]),
    # a burst: blue idles at 0.05 in flight, then 9 requests at a time; green stays quiet
    "burst": ([Series("scale-lab-blue", "blue-0", (50, 9000)), Series("scale-lab-green", "green-0", (0, 0))], [0, 1]),
    # no traffic at all: no series yet; the query says 0 and the rule the minimum
    "no-traffic": ([Series("other-endpoint-blue", "other-0", (1000,))], [0]),
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
