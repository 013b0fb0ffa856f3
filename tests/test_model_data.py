"""collect_model_data really collects, proven with the real components.

prod's sentiment/green collects, and prod gives both paths (model_data_collection and App Insights). Its rendered
Deployment is laid out as a pod (generator.serve, as tests/test_serving.py does), with the file the rendered
ConfigMap mounts at /var/azureml-app/model_config_map.json (the collector reads that fixed path: the server
runs in a mount namespace of its own in which /var is overlaid and /var/azureml-app is the pod's app root). The
real inference server runs a scoring script that uses azureml-monitoring's real ModelDataCollector, with the
rendered environment; the Key Vault values are Azurite's connection string and a local App Insights ingestion
stand-in. Then:
- the collector's blobs appear in Azurite while the server runs, at v1's path (the workspace from the
  environment, the model's version from model_config_map.json), with the posted rows;
- a graceful stop commits the rest;
- the server's own collection sends each call's input and prediction to App Insights.
Harness-only settings: HBI_WORKSPACE_JOB=true (azureml-telemetry sends nothing to Microsoft) and
LD_LIBRARY_PATH for the libraries an Ubuntu 16.04 image would have (tests/model_data_collector.py).
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import io
import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from azure.storage.blob import BlobServiceClient

from generator.serve.pod import Pod, lay_out, scoring_container, under
from generator.serve.server import start, stop, wait_until_ready
from model_data_collector import azurite, native_libraries
from render_helpers import PROJECT, free_port
from test_serving import INSTRUMENTATION_KEY, Ingestion

FOLDER = PROJECT / "rendered/prod/endpoints/sentiment"
SCRIPT = '''\
"""v1's documented use of ModelDataCollector: inputs and predictions, the model's version left to the service."""
import json

from azureml.monitoring import ModelDataCollector


def init():
    global inputs_dc, prediction_dc
    inputs_dc = ModelDataCollector("sentiment-distilbert", designation="inputs", feature_names=["length", "stars"])
    prediction_dc = ModelDataCollector("sentiment-distilbert", designation="predictions", feature_names=["positive"])


def run(raw):
    row = json.loads(raw)["data"]
    positive = round(row[1] / 5, 2)
    inputs_dc.collect(row)
    prediction_dc.collect([positive])
    return {"positive": positive}
'''
# Overlay /var (writes go to a tmpfs) and put the pod's app root at /var/azureml-app, in this process's own mount
# namespace, then start the server there.
IN_MOUNT_NAMESPACE = ('mount -t tmpfs tmpfs "$0" && mkdir "$0/upper" "$0/work" && '
                      'mount -t overlay overlay -o "lowerdir=/var,upperdir=$0/upper,workdir=$0/work" /var && '
                      'mkdir -p /var/azureml-app && mount --bind "$1" /var/azureml-app && shift && exec "$@"')


@dataclasses.dataclass(frozen=True)
class MountedPod(Pod):
    """The pod, started in a mount namespace where /var/azureml-app is its app root."""

    layer: Path = Path()

    def command(self, port: int) -> list[str]:
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", IN_MOUNT_NAMESPACE,
                str(self.layer), str(self.app_root), *super().command(port)]


def rendered(name: str) -> dict[str, Any]:
    return yaml.safe_load((FOLDER / name).read_text())


@dataclasses.dataclass
class Collecting:
    base: str
    storage: BlobServiceClient
    ingestion: Ingestion
    process: Any
    log: Path

    def score(self, row: list[int]) -> dict[str, Any]:
        import urllib.request
        request = urllib.request.Request(f"{self.base}/score", data=json.dumps({"data": row}).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            return json.loads(response.read())  # type: ignore[no-any-return]

    def rows(self, designation: str) -> tuple[str, list[list[str]]]:
        """The blob name and the rows (header first) of the designation's blob, ([], "") while there is none."""
        container = self.storage.get_container_client("modeldata")
        if not container.exists():
            return "", []
        names = [b.name for b in container.list_blobs()  # .../<designation>/<yyyy>/<mm>/<dd>/<designation>.csv
                 if f"/{designation}/" in b.name and b.name.endswith(f"/{designation}.csv")]
        if not names:
            return "", []
        assert len(names) == 1, sorted(b.name for b in container.list_blobs())
        [name] = names
        text = container.download_blob(name).readall().decode()
        return name, list(csv.reader(io.StringIO(text)))


@pytest.fixture(scope="module")
def collecting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collecting]:
    work = tmp_path_factory.mktemp("model-data")
    deployment = rendered("deployment-sentiment-green.yaml")
    config_map = rendered("configmap-sentiment-green-model-config-map.yaml")
    source = work / "source"
    source.mkdir()
    (source / "score.py").write_text(SCRIPT)
    model = work / "model"
    model.mkdir()
    ingestion = Ingestion()
    threading.Thread(target=ingestion.serve_forever, daemon=True).start()
    libraries = native_libraries()
    with azurite(work / "azurite") as connection_string:
        secrets = {"AML_MODEL_DC_STORAGE": connection_string, "AML_APP_INSIGHTS_KEY": INSTRUMENTATION_KEY,
                   "APPLICATIONINSIGHTS_CONNECTION_STRING": f"InstrumentationKey={INSTRUMENTATION_KEY};"
                                                            f"IngestionEndpoint=http://127.0.0.1:{ingestion.server_port}/"}
        pod = lay_out(deployment, "/var/azureml-app/src", work / "pod", source,
                      {"sentiment-distilbert/8": model}, secrets)
        container = scoring_container(deployment)
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        for mount in container["volumeMounts"]:  # what the kubelet mounts from a ConfigMap
            if "configMap" in volumes[mount["name"]]:
                assert volumes[mount["name"]]["configMap"]["name"] == config_map["metadata"]["name"]
                target = under(pod.root, mount["mountPath"])
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(config_map["data"][mount["subPath"]])
        layer = work / "layer"
        layer.mkdir()
        mounted = MountedPod(**{f.name: getattr(pod, f.name) for f in dataclasses.fields(Pod)}, layer=layer)
        port = free_port()
        log = work / "server.log"
        with log.open("wb") as out:
            process = start(mounted, port, {"LD_LIBRARY_PATH": str(libraries), "HBI_WORKSPACE_JOB": "true"},
                            stdout=out, stderr=out)
        try:
            assert wait_until_ready(process, f"http://127.0.0.1:{port}{pod.liveness_path}", timeout=120), \
                log.read_text()[-3000:]
            yield Collecting(f"http://127.0.0.1:{port}", BlobServiceClient.from_connection_string(connection_string),
                             ingestion, process, log)
        finally:
            stop(process)
            ingestion.shutdown()


def wait_for(check: Any, timeout: float, what: str, log: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(2)
    raise AssertionError(f"no {what} within {timeout:.0f} s; the server's log:\n{log.read_text()[-3000:]}")


def test_the_collectors_blobs_arrive_while_the_server_runs_at_v1s_path(collecting: Collecting) -> None:
    rows = [[120, 5], [48, 1], [300, 4]]
    assert [collecting.score(row) for row in rows] == [{"positive": 1.0}, {"positive": 0.2}, {"positive": 0.8}]
    day = datetime.now(timezone.utc).strftime("%Y/%m/%d")
    # the rendered upload window (AML_MODEL_DC_STORAGE_{DATA,COMMIT}_WINDOW_LENGTH=1) is about a minute
    name, table = wait_for(lambda: (lambda r: r if len(r[1]) > 3 else None)(collecting.rows("inputs")), 150,
                           "committed inputs", collecting.log)
    workspace = "4c5d6e7f-8a9b-4c0d-9e1f-2a3b4c5d6e7f/rg-ml-prod/mlw-prod"  # environments/prod: workspace
    assert name == f"{workspace}/sentiment/sentiment-distilbert/8/inputs/{day}/inputs.csv"
    header, *data = table
    assert header[:2] == ["length", "stars"] and "$aml_dc_correlation_id" in header
    named = [dict(zip(header, row)) for row in data]
    # the native library does not keep the calls' order (a CI run saw predictions reordered): rows are compared as
    # sets, each value distinct
    assert sorted([r["length"], r["stars"]] for r in named) == sorted([str(a), str(b)] for a, b in rows)
    assert {(r["$aml_workspace"], r["$aml_service_name"], r["$aml_model_name"], r["$aml_model_version"])
            for r in named} == {(workspace, "sentiment", "sentiment-distilbert", "8")}
    name, table = wait_for(lambda: (lambda r: r if len(r[1]) > 3 else None)(collecting.rows("predictions")), 150,
                           "committed predictions", collecting.log)
    assert name == f"{workspace}/sentiment/sentiment-distilbert/8/predictions/{day}/predictions.csv"
    assert sorted(row[0] for row in table[1:]) == ["0.2", "0.8", "1.0"]


def test_the_server_sends_inputs_and_predictions_to_app_insights(collecting: Collecting) -> None:
    collecting.score([77, 3])

    def traces() -> list[dict[str, Any]]:
        """The model_data_collection traces' custom dimensions (the server logs them as a dict's repr)."""
        return [ast.literal_eval(item["data"]["baseData"]["properties"]["custom_dimensions"])
                for item in collecting.ingestion.received
                if item.get("data", {}).get("baseData", {}).get("message") == "model_data_collection"]

    def posted(trace: dict[str, Any]) -> Any:
        return json.loads(json.loads(trace["Input"]))  # the raw body, as a JSON string
    [found] = wait_for(lambda: [t for t in traces() if posted(t) == {"data": [77, 3]}], 60,
                       "model_data_collection trace", collecting.log)
    assert json.loads(found["Prediction"]) == {"positive": 0.6}
    assert (found["Service Name"], found["Workspace Name"], found["Models"]) == (
        "sentiment", "mlw-prod", ("sentiment-distilbert:8",))


def test_a_graceful_stop_commits_what_is_left(collecting: Collecting) -> None:
    collecting.score([5, 2])
    time.sleep(1)  # the library queues a collected row for a moment before it is in its buffer
    assert stop(collecting.process) == 0
    _, table = collecting.rows("inputs")
    assert ["5", "2"] in [row[:2] for row in table[1:]], collecting.log.read_text()[-3000:]
    assert os.path.exists(collecting.log)
