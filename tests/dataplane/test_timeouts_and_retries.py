"""The VirtualService's route timeout and `scoring_retries`, at the ingress gateway as istiod configures it.

- timeout-lab (scoring_timeout_ms 2000): a replica that hangs (its server stopped with SIGSTOP, so neither it nor
  its own scoring timeout answers) is cut off by the gateway at the route timeout with 504.
- retry-lab (scoring_retries 2) and noretry-lab (0), two replicas each: one replica's proxy crashes (SIGKILL), so
  connections to that pod are refused (its iptables rules still redirect to a port nothing listens on). With
  retries the gateway sends the call to the other replica and clients never see it; without, they do.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .labs import lab
from .kubelet import Pod
from .mesh import Mesh
from render_helpers import version_spec


def fixed(name: str, replicas: int = 1, **fields: object) -> dict[str, object]:
    return version_spec(name, models=[], num_replicas=replicas, autoscale_enabled=False, **fields)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, scoring_script: Path) -> Iterator[Mesh]:
    endpoints = {"timeout-lab": [fixed("slow", scoring_timeout_ms=2000)],
                 "retry-lab": [fixed("two", 2, scoring_retries=2)],
                 "noretry-lab": [fixed("two", 2)]}
    replicas = {"timeout-lab-slow": 1, "retry-lab-two": 2, "noretry-lab-two": 2}
    yield from lab(tmp_path_factory, "resilience", endpoints, scoring_script, replicas)


def route(mesh: Mesh, endpoint: str) -> dict[str, object]:
    [service] = [o for o in mesh.rendered if o["kind"] == "VirtualService" and o["metadata"]["name"] == endpoint]
    [weighted] = [r for r in service["spec"]["http"] if r["name"] == "weighted"]
    return weighted


def test_a_hung_replica_gets_the_route_timeout(mesh: Mesh) -> None:
    assert route(mesh, "timeout-lab")["timeout"] == "2s"
    [pod] = mesh.pods_of("timeout-lab-slow")
    assert mesh.request("/api/v1/service/timeout-lab/score", body="{}").status == 200
    pod.signal("scoring", signal.SIGSTOP)
    try:
        response = mesh.request("/api/v1/service/timeout-lab/score", body="{}")
    finally:
        pod.signal("scoring", signal.SIGCONT)
    assert (response.status, response.body) == (504, b"upstream request timeout")
    assert 1.9 <= response.seconds < 3.0  # Envoy's timers tick in milliseconds


def failures(mesh: Mesh, endpoint: str, calls: int) -> list[int]:
    """The statuses other than 200 of `calls` scoring calls, one connection each (as many clients send them)."""
    def run() -> list[int]:
        statuses = []
        for _ in range(calls):
            client = mesh.client()
            statuses.append(client.send("POST", f"/api/v1/service/{endpoint}/score", "{}").status)
            client.close()
        return [s for s in statuses if s != 200]
    return mesh.call(run)


def crash_one_proxy(mesh: Mesh, deployment: str) -> None:
    """SIGKILL one replica's proxy, then wait until the gateway holds no connection to that pod any more.

    A call the gateway had already written on a pooled connection when the proxy died fails with "reset reason:
    connection termination": that one is not retried (it may have reached the model), so the tests start once
    the pool is empty, where every new connection to the pod is refused."""
    pod = mesh.pods_of(deployment)[0]
    [gateway] = mesh.pods_of(mesh.gateway)
    assert connections(mesh, gateway, pod.ip) > 0  # the calls before left pooled connections to it
    pod.signal("istio-proxy", signal.SIGKILL)
    pod.containers["istio-proxy"].process.wait(timeout=10)
    deadline = time.monotonic() + 30
    while connections(mesh, gateway, pod.ip):
        assert time.monotonic() < deadline, "the gateway kept its connections to the crashed pod"
        time.sleep(0.2)


def connections(mesh: Mesh, gateway: Pod, ip: str) -> int:
    """The gateway's open connections to `ip` (its Envoy's per-host cx_active)."""
    statuses = json.loads(mesh.envoy_admin(gateway, "/clusters?format=json"))["cluster_statuses"]
    return sum(int(stat.get("value", 0)) for cluster in statuses for host in cluster.get("host_statuses", [])
               if host.get("address", {}).get("socket_address", {}).get("address") == ip
               for stat in host.get("stats", []) if stat["name"] == "cx_active")


def test_retries_hide_a_replica_that_refuses_connections(mesh: Mesh) -> None:
    retry_on = "connect-failure,refused-stream,unavailable"
    assert route(mesh, "retry-lab")["retries"] == {"attempts": 2, "retryOn": retry_on}
    assert failures(mesh, "retry-lab", 10) == []
    crash_one_proxy(mesh, "retry-lab-two")
    assert failures(mesh, "retry-lab", 40) == []


def test_without_retries_clients_see_the_refused_connections(mesh: Mesh) -> None:
    assert route(mesh, "noretry-lab")["retries"] == {"attempts": 0}
    assert failures(mesh, "noretry-lab", 10) == []
    crash_one_proxy(mesh, "noretry-lab-two")
    refused = failures(mesh, "noretry-lab", 40)
    # each call goes to either replica; the gateway's outlier detection ejects the dead one after 5 failures
    assert refused and set(refused) == {503}, refused
