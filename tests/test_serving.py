"""The pod contract, proven with the real Azure ML inference server (azureml-inference-server-http).

For every version of the example environments and of a lab repo covering the cases (default and custom
source_directory, one outside the app root, nested entry scripts, zero, one and several models, App Insights
on and off, a short scoring timeout, several workers), the rendered Deployment is turned into a pod on this
machine by generator.serve (absolute paths moved under a temporary folder, the script where the spec says the
image has it, each model where its init container puts it) and the server is started as the images start it,
configured by the rendered environment alone. Ports and paths come from the rendered objects: the probes'
paths, the container port (mapped to a free local port, as a port-forward would), and the path the
VirtualService rewrites `/api/v1/service/<endpoint>/score` to. All servers start at once, in parallel.

Harness-only settings, not part of the contract: HOME and TMPDIR in the pod folder, statsbeat off (no call to
Azure's metadata address) and, for App Insights, fake Key Vault values whose ingestion endpoint is a local
receiver, which must then get the server's request telemetry.
"""

from __future__ import annotations

import gzip
import http.server
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from generator.serve.pod import Pod, lay_out, model_destinations, scoring_container
from generator.serve.server import start, stop, wait_until_ready
from render_helpers import (
    PROJECT, copy_examples, free_port, manifests, of_kind, rendered_files, version_spec, write_endpoint,
)

INSTRUMENTATION_KEY = "11111111-2222-4333-8444-555555555555"
SCORE_PY = '''\
"""A scoring script that reports what the server gave it."""
import json
import os
import time

import contract_helper  # lives at the top of the source folder: AZUREML_SOURCE_DIRECTORY must be on sys.path

MODELS = []


def init():
    global MODELS
    base = os.environ.get("AZUREML_MODEL_DIR")
    if base:
        MODELS = sorted(f for _, _, files in os.walk(base, followlinks=True) for f in files if f.startswith("MODEL-"))


def run(raw):
    data = json.loads(raw)
    time.sleep(data.get("sleep", 0))
    import psutil
    from azureml_inference_server_http.server import routes
    from azureml_inference_server_http.server.config import config
    return {
        "script": __file__,
        "helper": contract_helper.NAME,
        "models": MODELS,
        "model_dir_set": "AZUREML_MODEL_DIR" in os.environ,
        "workers": len(psutil.Process(os.getppid()).children()),
        "app_insights_config": bool(config.app_insights_enabled),
        "app_insights_client": bool(routes.main_blueprint.appinsights_client.enabled),
        "scoring_timeout_ms": config.scoring_timeout,
    }
'''


class Ingestion(http.server.ThreadingHTTPServer):
    """A stand-in for App Insights' ingestion endpoint on loopback: records the telemetry items and their names."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.received: list[dict[str, Any]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                items = json.loads(body)
                items = items if isinstance(items, list) else [items]
                outer.received += items
                outer.items += [i.get("name", "") for i in items]
                reply = json.dumps({"itemsReceived": len(items), "itemsAccepted": len(items), "errors": []}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


def build_lab(root: Path) -> Path:
    """The examples plus the cases they do not cover, in prod (which has App Insights configured)."""
    copy_examples(root)
    three = [{"name": f"part-{i}", "version": i, "uri": f"https://models.blob.core.windows.net/part/{i}"}
             for i in (1, 2, 3)]
    outside = version_spec("outside", inference_config={"image": "acr.azurecr.io/s:1", "entry_script": "score.py",
                                                        "source_directory": "/opt/model-server"},
                           replica_max_concurrent_requests=3, traffic_percentile=30)
    del outside["models"]
    write_endpoint(root, "prod", "contract-lab", [
        version_spec("nested", models=three, scoring_timeout_ms=1000,
                     inference_config={"image": "acr.azurecr.io/s:1", "entry_script": "pkg/deep/score.py",
                                       "source_directory": "/var/azureml-app/code"}),
        outside,
    ], auth_enabled=False, enable_app_insights=True)
    return root


@dataclass
class Served:
    """One version's pod running the real server."""

    env: str
    endpoint: str
    version: str
    endpoint_spec: dict[str, Any]
    spec: dict[str, Any]
    deployment: dict[str, Any]
    virtual_service: dict[str, Any]
    service: dict[str, Any]
    pod: Pod
    port: int
    process: Any = None
    ingestion: Ingestion | None = None
    log: Path | None = None
    ready: bool = False
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def scoring_path(self) -> str:
        """Where the gateway's /api/v1/service/<endpoint>/score lands: the VirtualService's rewrite of it, for the
        route pinned to this version (header azureml-model-deployment), through the Service to the container."""
        public = f"/api/v1/service/{self.endpoint}/score"
        route = next(r for r in self.virtual_service["spec"]["http"]
                     if any(m.get("headers", {}).get("azureml-model-deployment", {}).get("exact") == self.version
                            for m in r["match"]))
        prefix = next(m["uri"]["prefix"] for m in route["match"] if public.startswith(m["uri"]["prefix"]))
        destination = route["route"][0]["destination"]
        assert destination["host"].split(".")[0] == self.service["metadata"]["name"]
        service_port = next(p for p in self.service["spec"]["ports"] if p["port"] == destination["port"]["number"])
        container = scoring_container(self.deployment)
        target = service_port["targetPort"]
        named = {p.get("name"): p["containerPort"] for p in container["ports"]}
        assert (named.get(target) if isinstance(target, str) else target) == self.pod.container_port
        return route["rewrite"]["uri"] + public[len(prefix):]

    def post(self, body: dict[str, Any], timeout: float = 30) -> tuple[int, dict[str, Any], float]:
        request = urllib.request.Request(self.base + self.scoring_path(), data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        began = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
                return response.status, json.loads(response.read()), time.monotonic() - began
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}"), time.monotonic() - began


def lay_out_version(root: Path, work: Path, env: str, ep: dict[str, Any], version: dict[str, Any],
                    objects: dict[str, dict[str, Any]]) -> Served:
    """The version's pod folder: the test script where the spec puts it, a marker file in every model folder."""
    name = f"{ep['name']}-{version['version_name']}"
    in_env = {rel: o for rel, o in objects.items() if rel.startswith(f"rendered/{env}/")}
    deployment = of_kind(in_env, "Deployment")[name]
    config = version["inference_config"]
    source = work / name / "source"
    script = source / config["entry_script"]
    script.parent.mkdir(parents=True)
    script.write_text(SCORE_PY)
    (source / "contract_helper.py").write_text(f"NAME = {name!r}\n")
    models = {}
    for destination in model_destinations(deployment):
        model_name, model_version = destination.rstrip("/").split("/")[-2:]
        folder = work / name / "models" / model_name / model_version
        folder.mkdir(parents=True)
        (folder / f"MODEL-{model_name}-{model_version}").write_text("weights")
        models[f"{model_name}/{model_version}"] = folder
    pod_root = work / name / "pod"
    pod_root.mkdir()
    secrets = {}
    ingestion = None
    container_env = {item["name"] for item in scoring_container(deployment)["env"]}
    if "AML_APP_INSIGHTS_KEY" in container_env:
        ingestion = Ingestion()
        secrets["AML_APP_INSIGHTS_KEY"] = INSTRUMENTATION_KEY
        secrets["APPLICATIONINSIGHTS_CONNECTION_STRING"] = (
            f"InstrumentationKey={INSTRUMENTATION_KEY};IngestionEndpoint=http://127.0.0.1:{ingestion.server_port}/")
    pod = lay_out(deployment, config.get("source_directory", "/var/azureml-app"), pod_root, source, models, secrets)
    return Served(env, ep["name"], version["version_name"], ep, version, deployment,
                  of_kind(in_env, "VirtualService")[ep["name"]], of_kind(in_env, "Service")[name], pod, free_port(),
                  ingestion=ingestion)


def specs(root: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    import yaml
    for path in sorted((root / "environments").glob("*/endpoints/*.yaml")):
        yield path.parent.parent.name, yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Served]]:
    """Every version of the examples and of the lab, each served by the real server, started all at once."""
    work = tmp_path_factory.mktemp("serving")
    lab = build_lab(work / "lab")
    served: dict[str, Served] = {}
    for root, label in ((PROJECT, "examples"), (lab, "lab")):
        objects = manifests(rendered_files(root))
        for env, ep in specs(root):
            if label == "lab" and ep["name"] != "contract-lab":
                continue  # the lab's copies of the examples are the examples
            for version in ep["versions"]:
                key = f"{env}/{ep['name']}/{version['version_name']}"
                served[key] = lay_out_version(root, work / label / env, env, ep, version, objects)
    threads = []
    for s in served.values():
        if s.ingestion is not None:
            threads.append(threading.Thread(target=s.ingestion.serve_forever, daemon=True))
            threads[-1].start()
        s.log = s.pod.root / "server.log"
        with s.log.open("wb") as log:
            s.process = start(s.pod, s.port, stdout=log, stderr=log)
    try:
        for s in served.values():
            s.ready = wait_until_ready(s.process, s.base + s.pod.liveness_path, timeout=120)
        yield served
    finally:
        for s in served.values():
            stop(s.process)
            if s.ingestion is not None:
                s.ingestion.shutdown()


def example_keys() -> list[str]:
    return [f"{env}/{ep['name']}/{v['version_name']}" for env, ep in specs(PROJECT) for v in ep["versions"]]


LAB_KEYS = ["prod/contract-lab/nested", "prod/contract-lab/outside"]


def log_of(s: Served) -> str:
    return s.log.read_text(errors="replace")[-3000:] if s.log else ""


@pytest.mark.parametrize("key", example_keys() + LAB_KEYS)
def test_probes_answer_and_the_score_path_runs_the_script_with_exactly_its_models(fleet: dict[str, Served],
                                                                                  key: str) -> None:
    s = fleet[key]
    assert s.ready, f"{key}: the server did not start:\n{log_of(s)}"
    for path in (s.pod.liveness_path, s.pod.readiness_path):
        with urllib.request.urlopen(s.base + path, timeout=5) as response:  # noqa: S310 - loopback
            assert response.status == 200
    status, body, _ = s.post({"data": [1, 2]})
    assert status == 200, f"{key}: {body}\n{log_of(s)}"
    config = s.spec["inference_config"]
    assert body["script"].endswith("/source/" + config["entry_script"])  # the script the spec names, nothing else
    assert body["helper"] == f"{s.endpoint}-{s.version}"
    wanted = sorted(f"MODEL-{m['name']}-{m['version']}" for m in s.spec.get("models", []))
    assert body["models"] == wanted
    assert body["model_dir_set"] == bool(wanted)


def test_the_cases_are_covered(fleet: dict[str, Served]) -> None:
    """Guard for the parametrized test: the examples and the lab cover every case the contract has."""
    versions = [s.spec for s in fleet.values()]
    sources = {v["inference_config"].get("source_directory", "/var/azureml-app") for v in versions}
    assert "/var/azureml-app" in sources and len(sources) >= 3  # default, custom inside, outside the app root
    assert any("/" in v["inference_config"]["entry_script"] for v in versions)
    assert {len(v.get("models", [])) for v in versions} >= {0, 1, 3}
    assert {s.endpoint_spec.get("enable_app_insights", False) for s in fleet.values()} == {True, False}


@pytest.mark.parametrize("key", example_keys() + LAB_KEYS)
def test_app_insights_is_on_in_the_server_exactly_when_the_spec_enables_it(fleet: dict[str, Served],
                                                                           key: str) -> None:
    s = fleet[key]
    status, body, _ = s.post({})
    assert status == 200, log_of(s)
    wanted = s.endpoint_spec.get("enable_app_insights", False)
    assert body["app_insights_config"] is wanted
    assert body["app_insights_client"] is wanted  # the exporters really started


def test_app_insights_receives_request_telemetry(fleet: dict[str, Served]) -> None:
    s = fleet["prod/sentiment/blue"]
    assert s.ingestion is not None
    for _ in range(3):
        assert s.post({})[0] == 200
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "Microsoft.ApplicationInsights.Request" not in s.ingestion.items:
        time.sleep(0.5)
    assert "Microsoft.ApplicationInsights.Request" in s.ingestion.items, (s.ingestion.items, log_of(s))
    assert fleet["dev/sentiment/blue"].ingestion is None  # App Insights off: no key, nothing to send to


def test_a_run_longer_than_scoring_timeout_ms_is_cut_off(fleet: dict[str, Served]) -> None:
    s = fleet["prod/contract-lab/nested"]
    assert s.spec["scoring_timeout_ms"] == 1000
    status, body, elapsed = s.post({"sleep": 4})
    assert status == 500
    assert body == {"message": "Scoring timeout after 1000 ms"}
    assert 0.9 < elapsed < 3.0
    assert s.post({})[0] == 200  # the worker survives


def test_the_server_has_a_worker_per_concurrent_request_and_one_for_the_probes(fleet: dict[str, Served]) -> None:
    """replica_max_concurrent_requests workers score (the Sidecar lets no more calls in); one more answers
    the kubelet's probes while they are all busy (tests/dataplane/test_scoring_pod.py)."""
    for key, s in fleet.items():
        status, body, _ = s.post({})
        assert status == 200
        assert body["workers"] == s.spec.get("replica_max_concurrent_requests", 1) + 1, key
    assert fleet["prod/contract-lab/outside"].spec["replica_max_concurrent_requests"] == 3


def test_scoring_timeout_reaches_the_server(fleet: dict[str, Served]) -> None:
    for key, s in fleet.items():
        assert s.post({})[1]["scoring_timeout_ms"] == s.spec.get("scoring_timeout_ms", 60000), key
