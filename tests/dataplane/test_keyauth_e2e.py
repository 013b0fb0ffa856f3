"""Key auth end to end: the sidecar istiod configured from the CUSTOM AuthorizationPolicy calls the real OPA-Envoy
plugin (the rendered Deployment's image, arguments, policy and config), which reads the keys from the projected
volume the kubelet lays out (atomically, as its AtomicWriter does) from the Secrets External Secrets makes for
the rendered ExternalSecrets (their template rendered by the operator's own engine), and decides by the identity
the scoring pod's sidecar presents over mTLS.

The prod example plus two keyed endpoints in another namespace with their keys in another Key Vault: fraud,
whose secondary key is not valid YAML, and churn, whose key is not in Key Vault yet.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .labs import PRIMARY, PROD_KEY_VAULT, SECONDARY, rendered_objects, scoring_images, up
from .mesh import Mesh
from render_helpers import copy_examples, version_spec, write_endpoint

FRAUD_KEY = "mlk_Fraud2Primary2ccccccccccccccccccc"
MALFORMED = '[mlk_Fraud3:"Secondary{3ddddddddddd'  # YAML, JSON and plain text parsers all refuse this as a file
CHURN_KEY = "mlk_Churn4Primary4eeeeeeeeeeeeeeeeeee"
VAULTS = {"kv-ml-prod": PROD_KEY_VAULT, "kv-fraud-keys": {"fraud-key-1": FRAUD_KEY, "fraud-key-2": MALFORMED}}
SENTIMENT, FRAUD = "/api/v1/service/sentiment/score", "/api/v1/service/fraud/score"
CHURN = "/api/v1/service/churn/score"
DENIED = 401


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, scoring_script: Path) -> Iterator[Mesh]:
    root = copy_examples(tmp_path_factory.mktemp("keyauth") / "repo")
    env_file = root / "environments" / "prod" / "environment.yaml"  # the platform team's own mesh setting
    env_file.write_text(env_file.read_text().replace("  hosts:\n", "  mesh_config:\n    accessLogFile: /dev/stdout\n"
                                                                   "  hosts:\n", 1))
    fraud = version_spec("gbm-v1", models=[], num_replicas=1, autoscale_enabled=False)
    write_endpoint(root, "prod", "fraud", [fraud], namespace="fraud-ml",
                   auth_keys={"key_vault": "kv-fraud-keys", "primary_key_secret": "fraud-key-1",
                              "secondary_key_secret": "fraud-key-2"})
    churn = version_spec("lr-v1", models=[], num_replicas=1, autoscale_enabled=False)
    write_endpoint(root, "prod", "churn", [churn], namespace="fraud-ml",
                   auth_keys={"key_vault": "kv-fraud-keys", "primary_key_secret": "churn-key-1"})
    objects = rendered_objects(root, "prod")
    images = scoring_images(objects, scoring_script)
    yield from up(objects, tmp_path_factory.mktemp("keyauth-mesh"), scoring_images=images, key_vaults=VAULTS,
                  replicas={"sentiment-blue": 1, "sentiment-green": 1, "fraud-gbm-v1": 1, "churn-lr-v1": 1,
                            "endpointgen-key-auth": 1})


def call(mesh: Mesh, path: str, authorization: str | None) -> Any:
    return mesh.request(path, body="{}", headers={"Authorization": authorization} if authorization else {})


@pytest.mark.parametrize("authorization", [f"Bearer {PRIMARY}", f"Bearer {SECONDARY}", f"bearer {PRIMARY}"])
def test_the_endpoints_keys_pass_and_never_reach_the_model(mesh: Mesh, authorization: str) -> None:
    response = call(mesh, SENTIMENT, authorization)
    assert response.status == 200, response.body
    assert response.json()["authorization"] is None  # the authorizer had the sidecar remove the header


@pytest.mark.parametrize("authorization", [None, f"Basic {PRIMARY}", PRIMARY, "Bearer ", f"Bearer {PRIMARY}x",
                                           f"Bearer {PRIMARY[:-1]}", f"Bearer {FRAUD_KEY}"])
def test_anything_else_gets_401_and_nothing_says_why(mesh: Mesh, authorization: str | None) -> None:
    response = call(mesh, SENTIMENT, authorization)
    assert (response.status, response.headers.get("www-authenticate"), response.body) == (DENIED, "Bearer", b"")


def test_the_platform_teams_mesh_setting_works_beside_the_provider(mesh: Mesh) -> None:
    """istio.mesh_config merged into the shared ConfigMap: istiod gives the sidecars its access log, and the
    key-auth provider in the same mesh config still decides (the tests above)."""
    assert call(mesh, SENTIMENT, f"Bearer {PRIMARY}").status == 200
    pods = [p for p in mesh.pods.values() if p.name.startswith("sentiment-")]
    line = f'"POST {SENTIMENT} HTTP/1.1" 200 '  # Envoy's default access log format: the original path
    deadline = time.monotonic() + 10
    while not any(line in p.tail(p.containers["istio-proxy"], 1_000_000) for p in pods):
        assert time.monotonic() < deadline, "no access log line from the sidecars"
        time.sleep(0.2)


def test_each_endpoint_takes_only_its_own_keys(mesh: Mesh) -> None:
    """Another namespace, another Key Vault: the decision follows the destination's SPIFFE identity."""
    assert call(mesh, FRAUD, f"Bearer {FRAUD_KEY}").status == 200
    assert call(mesh, FRAUD, f"Bearer {PRIMARY}").status == DENIED


def authorizer(mesh: Mesh) -> Any:
    [pod] = [p for p in mesh.pods.values() if p.namespace == "endpointgen-auth"]
    return pod


def until_status(mesh: Mesh, path: str, authorization: str, status: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while call(mesh, path, authorization).status != status:
        assert time.monotonic() < deadline, f"{path} did not answer {status} within {seconds} s"
        time.sleep(0.5)


def test_a_missing_and_a_malformed_key_fail_alone(mesh: Mesh) -> None:
    """churn's key is not in Key Vault and fraud's secondary is not YAML: the authorizer started all the same (its
    volume's Secrets are optional), churn admits nothing, and every other endpoint's keys pass."""
    assert authorizer(mesh).containers["opa"].process.poll() is None
    assert call(mesh, CHURN, f"Bearer {CHURN_KEY}").status == DENIED
    assert call(mesh, FRAUD, f"Bearer {FRAUD_KEY}").status == 200
    assert call(mesh, SENTIMENT, f"Bearer {PRIMARY}").status == 200
    assert call(mesh, FRAUD, f"Bearer {MALFORMED}").status == 200  # only a digest in valid JSON: it works too
    files = sorted(p.relative_to(authorizer(mesh).volumes["keys"]).as_posix()
                   for p in authorizer(mesh).volumes["keys"].glob("*/*/*/key.json"))
    assert files == ["fraud-ml/fraud/primary/key.json", "fraud-ml/fraud/secondary/key.json",
                     "ml-endpoints/sentiment/primary/key.json", "ml-endpoints/sentiment/secondary/key.json"]


def test_a_rotated_key_takes_effect_without_a_restart(mesh: Mesh) -> None:
    """Key Vault's new version: External Secrets' refresh rewrites its Secret, the kubelet's sync swaps the
    projected volume's ..data link, OPA's watch on the folder reloads; the old key stops working, the secondary
    keeps working, and the other endpoints never stop."""
    rotated = "mlk_Rotated9Primary9zzzzzzzzzzzzzzz"
    mesh.cluster.key_vaults["kv-ml-prod"]["sentiment-primary-key"] = rotated
    mesh.sync_external_secrets()
    authorizer(mesh).sync_volumes()
    until_status(mesh, SENTIMENT, f"Bearer {rotated}", 200)
    assert call(mesh, SENTIMENT, f"Bearer {PRIMARY}").status == DENIED
    assert call(mesh, SENTIMENT, f"Bearer {SECONDARY}").status == 200
    assert call(mesh, FRAUD, f"Bearer {FRAUD_KEY}").status == 200
    assert authorizer(mesh).containers["opa"].process.poll() is None  # reloaded, not restarted


def test_a_key_that_arrives_later_works_without_a_restart(mesh: Mesh) -> None:
    """churn's key written to Key Vault after the fact: its Secret appears, the optional source fills in."""
    mesh.cluster.key_vaults["kv-fraud-keys"]["churn-key-1"] = CHURN_KEY
    mesh.sync_external_secrets()
    authorizer(mesh).sync_volumes()
    until_status(mesh, CHURN, f"Bearer {CHURN_KEY}", 200)
    assert authorizer(mesh).containers["opa"].process.poll() is None


def test_without_the_authorizer_calls_fail_closed(mesh: Mesh) -> None:
    """failOpen false: with every authorizer replica gone, a keyed call gets the provider's statusOnError (503),
    even with a right key; nothing reaches the model. Last in this module: it stops the authorizer."""
    [authorizer] = [p for p in mesh.pods.values() if p.namespace == "endpointgen-auth"]
    authorizer.signal("opa", 9)
    authorizer.containers["opa"].process.wait(timeout=10)
    response = call(mesh, SENTIMENT, f"Bearer {SECONDARY}")
    assert response.status == 503, response.body
