"""Rendered environments for the data-plane tests: the scoring script their pods run, and meshes of them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from generator.edit.importer import curated_image
from render_helpers import copy_examples, manifests, rendered_files, write_endpoint

from . import images
from .mesh import Mesh

SCORE = '''\
"""The data-plane tests' scoring script: what reached it, and how long it took."""
import json, os, time
from azureml.contrib.services.aml_request import rawhttp

CALLS = "/tmp/calls.log"

def init():
    pass

@rawhttp
def run(request):
    began = time.time()
    body = request.get_json(silent=True) or {}
    if body.get("fail"):  # what a client's bad payload does: run() raises, the server answers 500
        raise ValueError("bad payload")
    time.sleep(float(body.get("sleep", 0)))
    with open(CALLS, "a") as log:
        log.write(f"{began} {time.time()}\\n")
    return {"version": os.environ.get("SERVICE_VERSION"), "path": request.full_path.rstrip("?"),
            "authorization": request.headers.get("Authorization"),
            "models": sorted(os.listdir(os.environ["AZUREML_MODEL_DIR"])) if os.environ.get("AZUREML_MODEL_DIR") else []}
'''


# The prod example's Key Vault, as the stand-in serves it: its keys (never in git but here), the App Insights
# secrets and the model data storage's connection string.
PRIMARY, SECONDARY = "mlk_Sentiment0Primary0aaaaaaaaaaaaaaa", "mlk_Sentiment1Second1bbbbbbbbbbbbbb"
PROD_KEY_VAULT = {"sentiment-primary-key": PRIMARY, "sentiment-secondary-key": SECONDARY,
                  "appinsights-instrumentation-key": "00000000-0000-0000-0000-000000000000",
                  "appinsights-connection-string": "InstrumentationKey=00000000-0000-0000-0000-000000000000",
                  # model data collection's storage: a closed loopback port (tests/test_model_data.py uploads)
                  "modeldata-storage-connection-string": "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                                                         "AccountKey=AAAA;BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;"}


def scoring_images(objects: list[dict[str, Any]], script: Path) -> dict[str, images.Image]:
    """For each rendered scoring container's image, an Azure ML inference image holding the test's script
    where the server will look for it (AML_APP_ROOT / AZUREML_ENTRY_SCRIPT of that container); a curated one
    (mcr.microsoft.com/azureml/*-inference) as Azure ML builds those."""
    out = {}
    for o in objects:
        if o["kind"] != "Deployment":
            continue
        for container in o["spec"]["template"]["spec"]["containers"]:
            if container["name"] == "scoring":
                env = {e["name"]: e.get("value") for e in container.get("env", [])}
                entry = f"{env.get('AML_APP_ROOT', '/var/azureml-app')}/{env['AZUREML_ENTRY_SCRIPT']}"
                make = images.curated_inference if curated_image(container["image"]) else images.inference
                out[container["image"]] = make({entry: script})
    return out


def rendered_objects(root: Path, env: str) -> list[dict[str, Any]]:
    """What `make render` writes under rendered/<env>/ (the objects Flux applies), rendered in memory."""
    return [o for rel, o in manifests(rendered_files(root, [env])).items() if rel.startswith(f"rendered/{env}/")]


def up(objects: list[dict[str, Any]], work: Path, **options: Any) -> Iterator[Mesh]:
    """A mesh of these objects for the duration of a fixture; its logs stay in `work` for a failure's reader."""
    with Mesh(objects, work, **options) as mesh:
        yield mesh


def lab(tmp_path_factory: pytest.TempPathFactory, name: str, endpoints: dict[str, list[dict[str, Any]]],
        scoring_script: Path, replicas: dict[str, int]) -> Iterator[Mesh]:
    """The dev example plus test endpoints (no auth, no models), the named Deployments running in a mesh."""
    root = copy_examples(tmp_path_factory.mktemp(name) / "repo")
    for endpoint, versions in endpoints.items():
        write_endpoint(root, "dev", endpoint, versions, auth_enabled=False)
    objects = rendered_objects(root, "dev")
    images = scoring_images(objects, scoring_script)
    yield from up(objects, tmp_path_factory.mktemp(f"{name}-mesh"), scoring_images=images, replicas=replicas)
