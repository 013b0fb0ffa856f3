"""istiod's validating admission webhook on every rendered Istio object (meshlab validate runs its handler).

On a cluster the API server sends each Istio object Flux applies to istiod's webhook, which refuses what its
translation cannot take; a refused object fails the whole Flux Kustomization. The examples and the every-field
fixture must pass it, with no warning; objects it refuses show that the check can fail.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .labs import rendered_objects
from generator.check import gotools
from render_helpers import PROJECT, copy_examples

EVERY_FIELD = PROJECT / "tests" / "fixtures" / "every-field"


def webhook(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """istiod's verdict on each Istio object: {kind, namespace, name, allowed, message, warnings}."""
    stream = "\n---\n".join(yaml.safe_dump(o) for o in objects)
    result = subprocess.run([str(gotools.binary("istio", "meshlab")), "validate"], input=stream, capture_output=True,
                            text=True, check=True)
    return [json.loads(line) for line in result.stdout.splitlines()]


def repository(tmp_path: Path, source: Path) -> Path:
    """A throw-away copy of the examples (source PROJECT) or of a fixture repository."""
    if source == PROJECT:
        return copy_examples(tmp_path / "repo")
    shutil.copytree(source, tmp_path / "repo")
    return tmp_path / "repo"


@pytest.mark.parametrize("source, env", [(PROJECT, "dev"), (PROJECT, "prod"), (EVERY_FIELD, "lab"),
                                         (EVERY_FIELD, "lab-cpu")])
def test_istiod_admits_every_rendered_istio_object(tmp_path: Path, source: Path, env: str) -> None:
    objects = rendered_objects(repository(tmp_path, source), env)
    istio = [o for o in objects if o["apiVersion"].split("/")[0].endswith(".istio.io")]
    verdicts = webhook(objects)
    assert len(verdicts) == len(istio) > 0  # one verdict per Istio object, none for the others
    refused = [v for v in verdicts if not v["allowed"] or v["warnings"]]
    assert refused == []


def test_istiod_refuses_what_it_cannot_translate(tmp_path: Path) -> None:
    objects = rendered_objects(repository(tmp_path, PROJECT), "prod")
    [rule] = [o for o in objects if o["kind"] == "DestinationRule" and o["metadata"]["name"] == "sentiment-blue"]
    [policy] = [o for o in objects if o["kind"] == "AuthorizationPolicy" and o["spec"].get("action") == "CUSTOM"]
    bad_rule = copy.deepcopy(rule)
    bad_rule["spec"]["trafficPolicy"]["outlierDetection"]["maxEjectionPercent"] = 150
    bad_policy = copy.deepcopy(policy)
    del bad_policy["spec"]["provider"]
    verdicts = {v["kind"]: v for v in webhook([bad_rule, bad_policy])}
    assert not verdicts["DestinationRule"]["allowed"] and "percentage 150 is not in range" in \
        verdicts["DestinationRule"]["message"].lower()
    assert not verdicts["AuthorizationPolicy"]["allowed"] and "provider" in verdicts["AuthorizationPolicy"]["message"]
