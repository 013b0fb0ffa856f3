"""A scoring pod through full load and deletion: the rendered probes, preStop, graceful timeout and proxy drain,
run by the real inference server (started by the rendered command, as its own user, on a read-only root) and
the real Istio proxy that istiod injected from the rendered Deployment (probes rewritten to pilot-agent).

- Every worker busy with a long call (N = replica_max_concurrent_requests, 1 and 3): each rendered probe still
  answers within its timeoutSeconds, and every call returns 200.
- A hung server (its processes stopped) fails the liveness probe.
- One of Azure ML's curated inference images (USER dockeruser, a name; CMD runsvdir) starts and serves: the pod
  names a numeric user and the container runs azmlinfsrv from the image's own PATH, on a read-only root.
- A call longer than gunicorn's default 30 s graceful timeout (a 90 s scoring timeout) survives the pod's
  deletion as the cluster runs it: its endpoint marked terminating (istiod withdraws it from the gateway),
  preStop, then SIGTERM to the server and (no native sidecars) to the proxy at once; the pod is gone before
  terminationGracePeriodSeconds, and an idle pod soon after its preStop.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from render_helpers import version_spec

from .client import Response
from .kubelet import Pod
from .labs import lab
from .mesh import Mesh

PROBES = ("startupProbe", "livenessProbe", "readinessProbe")
BUSY = {"busy-one": 1, "busy-three": 3}
CURATED = "mcr.microsoft.com/azureml/minimal-ubuntu22.04-py311-cpu-inference:20250801.v1"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, scoring_script: Path) -> Iterator[Mesh]:
    def fixed(workers: int, **extra: Any) -> dict[str, Any]:
        return version_spec("ver-a", models=[], replica_max_concurrent_requests=workers, num_replicas=1,
                            autoscale_enabled=False, max_request_wait_time=100, **extra)

    endpoints = {name: [fixed(workers, scoring_timeout_ms=30000)] for name, workers in BUSY.items()}
    endpoints["drain-lab"] = [fixed(1, scoring_timeout_ms=90000)]
    endpoints["curated-lab"] = [fixed(1, inference_config={"image": CURATED, "entry_script": "score.py"})]
    replicas = {f"{name}-ver-a": 1 for name in endpoints}
    for mesh in lab(tmp_path_factory, "scoring-pod", endpoints, scoring_script, replicas):
        for name in endpoints:  # every worker up (readiness needs one), the probes' spare one included
            [pod] = mesh.pods_of(f"{name}-ver-a")
            workers = int(env_of(pod)["WORKER_COUNT"])
            pod.wait_for_log("scoring", "ready for serving traffic", count=workers)
        yield mesh


def env_of(pod: Pod) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in scoring(pod)["env"]}


def scoring(pod: Pod) -> dict[str, Any]:
    return next(c for c in pod.spec["containers"] if c["name"] == "scoring")


def calls(mesh: Mesh, endpoint: str, count: int, seconds: float, results: list[Response]) -> threading.Thread:
    """`count` scoring calls of `seconds` each, sent at once through the gateway, in the background."""
    def send() -> None:
        def one(_: int) -> Response:
            return mesh.client(timeout=180).send("POST", f"/api/v1/service/{endpoint}/score",
                                                 json.dumps({"sleep": seconds}))
        with ThreadPoolExecutor(count) as pool:
            results.extend(pool.map(one, range(count)))
    thread = threading.Thread(target=lambda: mesh.call(send, timeout=300), daemon=True)
    thread.start()
    return thread


def timed_probe(pod: Pod, kind: str) -> tuple[bool, float]:
    began = time.monotonic()
    ok = pod.probe(scoring(pod), kind)
    return ok, time.monotonic() - began


@pytest.mark.parametrize("endpoint", sorted(BUSY))
def test_every_probe_answers_while_every_worker_scores(mesh: Mesh, endpoint: str) -> None:
    [pod] = mesh.pods_of(f"{endpoint}-ver-a")
    workers = BUSY[endpoint]
    container = scoring(pod)
    assert all(container[kind]["httpGet"]["path"].startswith("/app-health/scoring/") for kind in PROBES), \
        "istiod did not rewrite the probes to pilot-agent"
    results: list[Response] = []
    thread = calls(mesh, endpoint, workers, 8, results)
    time.sleep(2)  # all N calls are in the server's workers now, each for 8 s (longer than any probe timeout)
    for kind in PROBES:
        ok, seconds = timed_probe(pod, kind)
        assert ok and seconds < container[kind]["timeoutSeconds"], f"{kind}: ok={ok} after {seconds:.1f} s"
    thread.join(timeout=60)
    assert [r.status for r in results] == [200] * workers, [r.body for r in results]
    assert max(r.seconds for r in results) < 12  # the N calls ran side by side, not one after another


def test_a_hung_server_fails_the_liveness_probe(mesh: Mesh) -> None:
    [pod] = mesh.pods_of("busy-one-ver-a")
    assert timed_probe(pod, "livenessProbe")[0]
    pod.signal("scoring", signal.SIGSTOP)  # the master and every worker hang
    try:
        ok, seconds = timed_probe(pod, "livenessProbe")
        assert not ok and seconds >= scoring(pod)["livenessProbe"]["timeoutSeconds"] - 0.5
    finally:
        pod.signal("scoring", signal.SIGCONT)
    assert timed_probe(pod, "livenessProbe")[0]


def test_a_curated_azure_ml_image_starts_and_serves(mesh: Mesh) -> None:
    [pod] = mesh.pods_of("curated-lab-ver-a")
    container = scoring(pod)
    assert container["image"] == CURATED and mesh.images(CURATED).uid is None  # USER dockeruser: a name
    assert pod.spec["securityContext"]["runAsUser"] == 1000 and container["command"][0] == "azmlinfsrv"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    response = mesh.request("/api/v1/service/curated-lab/score", body="{}")
    assert response.status == 200 and response.json()["version"] == "ver-a", response.body
    assert all(timed_probe(pod, kind)[0] for kind in PROBES)


def test_a_call_longer_than_30_s_survives_the_pod_being_deleted(mesh: Mesh) -> None:
    """Last in this module: it deletes the drain lab's pod."""
    [pod] = mesh.pods_of("drain-lab-ver-a")
    proxy = json.loads(pod.obj["metadata"]["annotations"]["proxy.istio.io/config"])
    assert "istio-proxy" in pod.containers and proxy["terminationDrainDuration"]  # a classic sidecar
    results: list[Response] = []
    thread = calls(mesh, "drain-lab", 1, 40, results)
    time.sleep(2)
    exited = mesh.delete_pod(pod)
    thread.join(timeout=120)
    assert [r.status for r in results] == [200], [(r.status, r.body) for r in results]
    assert results[0].json()["version"] == "ver-a"
    grace = pod.spec["terminationGracePeriodSeconds"]
    assert max(exited.values()) < grace, exited
    # the server left when its call was done; the proxy as soon as no connection was left, not after the
    # whole drain: a pod does not wait out terminationDrainDuration
    assert exited["scoring"] > 38 - 2 and exited["istio-proxy"] < exited["scoring"] + 10, exited


def test_an_idle_pod_is_gone_soon_after_its_pre_stop(mesh: Mesh) -> None:
    """The proxy leaves once no connection is open (after MINIMUM_DRAIN_DURATION), not after the whole drain."""
    [pod] = mesh.pods_of("busy-three-ver-a")
    proxy = json.loads(pod.obj["metadata"]["annotations"]["proxy.istio.io/config"])
    drain = int(proxy["terminationDrainDuration"].rstrip("s"))
    minimum = int(proxy["proxyMetadata"]["MINIMUM_DRAIN_DURATION"].rstrip("s"))
    exited = mesh.delete_pod(pod)
    pre_stop = scoring(pod)["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pre_stop <= exited["scoring"] < pre_stop + 3, exited
    assert minimum <= exited["istio-proxy"] < minimum + 5 < drain, exited
