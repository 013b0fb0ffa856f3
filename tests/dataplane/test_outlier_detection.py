"""The DestinationRule's outlier detection at the ingress gateway, as istiod configures it from the rendered rule.

A version with two replicas, one worker and a queue of one each. A healthy replica answers 500 when `run()`
raises on a client's bad payload and 503 (`x-envoy-overloaded`) beyond its queue: neither ejects it. A replica
whose proxy crashed refuses connections (its iptables rules redirect to a port nothing listens on): after
`consecutiveLocalOriginFailures` of those the gateway ejects it and every call goes to the other one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from render_helpers import version_spec

from .labs import lab
from .mesh import Mesh
from .test_timeouts_and_retries import crash_one_proxy

ENDPOINT = "eject-lab"
DEPLOYMENT = f"{ENDPOINT}-two"
SCORE = f"/api/v1/service/{ENDPOINT}/score"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, scoring_script: Path) -> Iterator[Mesh]:
    two = version_spec("two", models=[], num_replicas=2, autoscale_enabled=False, scoring_timeout_ms=5000,
                       max_request_wait_time=100)
    yield from lab(tmp_path_factory, "outliers", {ENDPOINT: [two]}, scoring_script, {DEPLOYMENT: 2})


def ejected(mesh: Mesh) -> set[str]:
    """The replicas' IPs the gateway's Envoy has ejected (health flag failed_outlier_check)."""
    [gateway] = mesh.pods_of(mesh.gateway)
    statuses = json.loads(mesh.envoy_admin(gateway, "/clusters?format=json"))["cluster_statuses"]
    ips = {p.ip for p in mesh.pods_of(DEPLOYMENT)}
    hosts = [(host.get("address", {}).get("socket_address", {}).get("address"), host)
             for cluster in statuses for host in cluster.get("host_statuses", [])]
    return {ip for ip, host in hosts if ip in ips and host.get("health_status", {}).get("failed_outlier_check")}


def statuses(mesh: Mesh, bodies: list[dict[str, Any]], parallel: int = 1) -> list[int]:
    """The status of each call (one connection each), `parallel` at a time."""
    def run() -> list[int]:
        def one(body: dict[str, Any]) -> int:
            client = mesh.client()
            try:
                return client.send("POST", SCORE, json.dumps(body)).status
            finally:
                client.close()
        with ThreadPoolExecutor(parallel) as pool:
            return list(pool.map(one, bodies))
    return mesh.call(run)


def test_the_rule_counts_local_origin_failures_only(mesh: Mesh) -> None:
    [rule] = [o for o in mesh.rendered if o["kind"] == "DestinationRule" and o["metadata"]["name"] == DEPLOYMENT]
    detection = rule["spec"]["trafficPolicy"]["outlierDetection"]
    assert detection["splitExternalLocalOriginErrors"] is True and detection["consecutive5xxErrors"] == 0
    assert detection["consecutiveLocalOriginFailures"] == 5


def test_run_errors_do_not_eject_a_replica(mesh: Mesh) -> None:
    answers = statuses(mesh, [{"fail": True}] * 30)
    assert answers == [500] * 30  # both replicas answered them, 15 in a row each on average
    assert ejected(mesh) == set()
    assert statuses(mesh, [{}] * 10) == [200] * 10


def test_a_full_queue_does_not_eject_a_replica(mesh: Mesh) -> None:
    answers = statuses(mesh, [{"sleep": 1}] * 24, parallel=24)
    assert answers.count(503) >= 10 and set(answers) == {200, 503}, answers  # 2 x (1 + 1) admitted at once
    assert ejected(mesh) == set()


def test_a_replica_that_refuses_connections_is_ejected(mesh: Mesh) -> None:
    """Last in this module: it crashes one replica's proxy."""
    assert statuses(mesh, [{}] * 10) == [200] * 10
    crash_one_proxy(mesh, DEPLOYMENT)
    crashed = mesh.pods_of(DEPLOYMENT)[0].ip
    answers = statuses(mesh, [{}] * 30)
    assert 1 <= answers.count(503) <= 5, answers  # the refused connections before the ejection
    assert answers[-10:] == [200] * 10 and ejected(mesh) == {crashed}
