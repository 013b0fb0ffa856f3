"""The Sidecar's inbound limits, enforced by the scoring pod's sidecar as istiod configures it from the rendered
Sidecar (inboundConnectionPool), in front of the real Azure ML inference server.

A version with 2 workers and a queue of 2 (max(1, 2 x 5000 // 5000)), each call sleeping a second, called
through the ingress gateway as a client would. The server's /tmp (an emptyDir) records when each call ran.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from .labs import lab
from .client import Response
from .mesh import Mesh
from render_helpers import version_spec

SCORE = "/api/v1/service/limit-lab/score"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, scoring_script: Path) -> Iterator[Mesh]:
    queued = version_spec("queued", models=[], replica_max_concurrent_requests=2, max_request_wait_time=5000,
                          scoring_timeout_ms=5000, num_replicas=1, autoscale_enabled=False)
    for mesh in lab(tmp_path_factory, "limits", {"limit-lab": [queued]}, scoring_script, {"limit-lab-queued": 1}):
        [pod] = mesh.pods_of("limit-lab-queued")  # readiness needs one worker; these tests need both
        pod.wait_for_log("scoring", "ready for serving traffic", count=2)
        yield mesh


def limits(mesh: Mesh) -> tuple[int, int]:
    """(N, Q) from the rendered Sidecar: connections to the server, and the queue beyond them."""
    [sidecar] = [o for o in mesh.rendered if o["kind"] == "Sidecar" and o["metadata"]["name"] == "limit-lab-queued"]
    pool = sidecar["spec"]["inboundConnectionPool"]
    return pool["tcp"]["maxConnections"], pool["http"]["http1MaxPendingRequests"] - pool["tcp"]["maxConnections"]


def overlap(mesh: Mesh) -> int:
    """The most calls the server ran at the same time (from its calls log)."""
    [pod] = mesh.pods_of("limit-lab-queued")
    spans = [line.split() for line in (pod.volumes["tmp"] / "calls.log").read_text().splitlines()]
    events = sorted([(float(began), 1) for began, _ in spans] + [(float(ended), -1) for _, ended in spans])
    most = running = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


def burst(mesh: Mesh, count: int, seconds: float = 1.0) -> list[Response]:
    """`count` scoring calls sent at once, each on its own connection."""
    def calls() -> list[Response]:
        gate = threading.Barrier(count)

        def one(_: int) -> Response:
            client = mesh.client()
            client.connection = client.connect()
            gate.wait()
            try:
                return client.send("POST", SCORE, json.dumps({"sleep": seconds}))
            finally:
                client.close()

        with ThreadPoolExecutor(count) as pool:
            return list(pool.map(one, range(count)))
    return mesh.call(calls)


def test_the_limits_are_the_sidecars(mesh: Mesh) -> None:
    """The inbound cluster istiod built for the pod carries the Sidecar's numbers (Envoy's own view of them)."""
    [pod] = mesh.pods_of("limit-lab-queued")
    clusters = json.loads(mesh.envoy_admin(pod, "/clusters?format=json"))["cluster_statuses"]
    [inbound] = [c for c in clusters if c["name"].startswith("inbound|5001|")]
    thresholds: dict[str, Any] = inbound["circuit_breakers"]["thresholds"][0]
    workers, queue = limits(mesh)
    assert (thresholds["max_connections"], thresholds["max_pending_requests"], thresholds["max_requests"]) == \
        (workers, workers + queue, workers)


def test_the_server_is_one_static_upstream(mesh: Mesh) -> None:
    """The Sidecar's ingress listener makes the inbound cluster one STATIC host, 127.0.0.1:5001 (not Istio's
    ORIGINAL_DST, whose calls arriving together on a new cluster each make a host and a pool of their own, and a
    pool with no connection opens one even past maxConnections), and Envoy closes an unused connection to it
    within a second: a connection without a call would hold a sync worker in read()."""
    [pod] = mesh.pods_of("limit-lab-queued")
    dump = json.loads(mesh.envoy_admin(pod, "/config_dump?resource=dynamic_active_clusters"))
    [inbound] = [c["cluster"] for c in dump["configs"] if c["cluster"]["name"].startswith("inbound|5001|")]
    assert inbound["type"] == "STATIC"
    [[endpoint]] = [[e["endpoint"]["address"]["socket_address"] for e in group["lb_endpoints"]]
                    for group in inbound["load_assignment"]["endpoints"]]
    assert (endpoint["address"], endpoint["port_value"]) == ("127.0.0.1", 5001)
    options = inbound["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert options["common_http_protocol_options"]["idle_timeout"] == "1s"


def test_the_server_port_takes_mtls_only(mesh: Mesh) -> None:
    """The ingress listener keeps the namespace's STRICT mTLS: a plaintext call to the pod's port 5001, from the
    node, reaches the sidecar (iptables) and is refused there, never the server."""
    [pod] = mesh.pods_of("limit-lab-queued")

    def plaintext() -> str:
        try:
            connection = http.client.HTTPConnection(pod.ip, 5001, timeout=5)
            connection.request("POST", "/score", body=b"{}")
            return f"answered {connection.getresponse().status}"
        except (OSError, http.client.HTTPException) as error:
            return type(error).__name__
    assert not mesh.call(plaintext).startswith("answered")


def test_a_burst_of_workers_plus_queue_is_served(mesh: Mesh) -> None:
    """Every admitted request is served: N at once, the queue after them. The module's first calls: they reach
    a cluster Envoy has just made."""
    workers, queue = limits(mesh)
    assert (workers, queue) == (2, 2)
    results = burst(mesh, workers + queue)
    assert [r.status for r in results] == [200] * 4, [r.body for r in results]
    times = sorted(r.seconds for r in results)
    assert times[1] < 1.8 <= times[2]  # two served at once, two waited for a worker
    assert overlap(mesh) <= workers


def test_beyond_the_queue_the_sidecar_answers_503_at_once(mesh: Mesh) -> None:
    """The 503s beyond the queue do not eject the replica (test_outlier_detection.py)."""
    workers, queue = limits(mesh)
    results = burst(mesh, 10)
    served = [r.seconds for r in results if r.status == 200]
    refused = [r for r in results if r.status == 503]
    assert len(served) + len(refused) == 10, [r.status for r in results]
    # N + queue admitted when all arrive together; a few more when some arrive after a worker's connection opened
    assert workers + queue <= len(served) <= 2 * workers + queue
    assert refused and all(r.headers.get("x-envoy-overloaded") == "true" for r in refused), \
        [(r.status, r.headers, r.body) for r in refused]
    assert max(r.seconds for r in refused) < 0.5  # refused at once, not after a wait
    assert max(served) >= 1.8  # the queued ones waited for a worker, then were served
    assert overlap(mesh) <= workers  # never more calls in the server than its workers
