"""The Sidecar's inbound limits, enforced by the scoring pod's sidecar as istiod configures it from the rendered
Sidecar (inboundConnectionPool), in front of the real Azure ML inference server.

A version with 2 workers and a queue of 2 (max(1, 2 x 5000 // 5000)), each call sleeping a second, called
through the ingress gateway as a client would. The server's /tmp (an emptyDir) records when each call ran.
"""

from __future__ import annotations

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


def test_a_burst_of_workers_plus_queue_is_served(mesh: Mesh) -> None:
    """Every admitted request is served: N at once, the queue after them."""
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
