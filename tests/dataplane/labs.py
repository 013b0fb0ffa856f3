"""Rendered environments for the data-plane tests: the scoring script their pods run, and meshes of them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

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
    time.sleep(float(body.get("sleep", 0)))
    with open(CALLS, "a") as log:
        log.write(f"{began} {time.time()}\\n")
    return {"version": os.environ.get("SERVICE_VERSION"), "path": request.full_path.rstrip("?"),
            "authorization": request.headers.get("Authorization"),
            "models": sorted(os.listdir(os.environ["AZUREML_MODEL_DIR"])) if os.environ.get("AZUREML_MODEL_DIR") else []}
'''


def inference_image(script: Path, entry_script: str) -> images.Image:
    """An Azure ML inference image holding the test's scoring script where the spec's entry_script says."""
    return images.inference({f"/var/azureml-app/{entry_script}": script})


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
    image = inference_image(scoring_script, "score.py")  # version_spec's entry_script
    images = {c["image"]: image for o in objects if o["kind"] == "Deployment"
              for c in o["spec"]["template"]["spec"]["containers"] if c["name"] == "scoring"}
    yield from up(objects, tmp_path_factory.mktemp(f"{name}-mesh"), scoring_images=images, replicas=replicas)
