"""The prod example's routing, through Envoy as istiod configures it from the rendered objects.

The prod environment as rendered (sentiment: blue 90 % / green 10 %, key auth), each version one replica of
the real Azure ML inference server running the test's scoring script, behind the ingress gateway; every
request goes in as a client sends it (HTTPS to ml.contoso.com, the scoring URI, the endpoint's key).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from statistics import NormalDist
from typing import Any

import pytest

from .labs import PRIMARY, PROD_KEY_VAULT, rendered_objects, scoring_images, up
from .client import Client
from .mesh import Mesh
from render_helpers import copy_examples

SCORE = "/api/v1/service/sentiment/score"
KEY = {"Authorization": f"Bearer {PRIMARY}"}
FALSE_FAILURE = 1e-6  # the chance that a correct split fails the test, per version


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory, scoring_script: Path) -> Iterator[dict[str, Any]]:
    root = copy_examples(tmp_path_factory.mktemp("routing") / "repo")
    objects = rendered_objects(root, "prod")
    objects += rogue_route(objects)
    sentiment = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"].startswith("sentiment-")]
    [service] = [o for o in objects if o["kind"] == "VirtualService" and o["metadata"]["name"] == "sentiment"]
    replicas = {d["metadata"]["name"]: 1 for d in sentiment} | {"endpointgen-key-auth": 1}
    images = scoring_images(objects, scoring_script)
    for mesh in up(objects, tmp_path_factory.mktemp("routing-mesh"), scoring_images=images,
                   key_vaults={"kv-ml-prod": PROD_KEY_VAULT}, replicas=replicas):
        yield {"mesh": mesh, "virtual_service": service}


ROGUE = "/api/v1/service/rogue/score"


def rogue_route(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Another team's namespace with a VirtualService that names the prod Gateway and host, and sends a path of
    its own to sentiment's blue version: what the Gateway's `<namespace>/<host>` hosts must not let bind."""
    [gateway] = [o["metadata"] for o in objects if o["kind"] == "Gateway"]
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "rogue-team"}},
            {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
             "metadata": {"name": "rogue", "namespace": "rogue-team"},
             "spec": {"hosts": ["ml.contoso.com"], "gateways": [f"{gateway['namespace']}/{gateway['name']}"],
                      "http": [{"match": [{"uri": {"prefix": "/api/v1/service/rogue/"}}],
                                "rewrite": {"uri": "/"},
                                "route": [{"destination": {
                                    "host": "sentiment-blue.ml-endpoints.svc.cluster.local"}}]}]}}]


def test_a_route_from_another_namespace_does_not_bind_the_host(prod: dict[str, Any]) -> None:
    """The Gateway's hosts are `ml-endpoints/ml.contoso.com`: the rogue-team VirtualService gets no route (404),
    while the endpoint's own route serves."""
    mesh = prod["mesh"]
    assert mesh.request(ROGUE, body="{}", headers=KEY).status == 404
    assert mesh.request(SCORE, body="{}", headers=KEY).status == 200


def weights(virtual_service: dict[str, Any]) -> dict[str, int]:
    """The weighted route's versions and weights, as rendered ("sentiment-blue.ml-endpoints..." -> blue)."""
    [route] = [r for r in virtual_service["spec"]["http"] if r["name"] == "weighted"]
    return {d["destination"]["host"].split(".")[0].removeprefix("sentiment-"): d["weight"] for d in route["route"]}


def versions_served(mesh: Mesh, count: int, headers: dict[str, str]) -> Counter[str]:
    """`count` scoring calls on one keep-alive connection: which version answered each (status if not 200)."""
    def calls() -> Counter[str]:
        client = mesh.client()
        seen: Counter[str] = Counter()
        for _ in range(count):
            response = client.send("POST", SCORE, "{}", {**KEY, **headers})
            seen[response.json()["version"] if response.status == 200 else str(response.status)] += 1
        client.close()
        return seen
    return mesh.call(calls)


def test_the_traffic_split_follows_the_weights(prod: dict[str, Any]) -> None:
    """2,000 calls: each version's share within the binomial tolerance of its weight (z for 1e-6 per version)."""
    split = weights(prod["virtual_service"])
    assert split == {"blue": 90, "green": 10}  # the example's traffic_percentile, as rendered
    total = 2000
    seen = versions_served(prod["mesh"], total, {})
    assert set(seen) == set(split), seen  # every call answered by a version, none failed
    z = NormalDist().inv_cdf(1 - FALSE_FAILURE / 2)
    for version, weight in split.items():
        p = weight / 100
        tolerance = z * (total * p * (1 - p)) ** 0.5
        assert abs(seen[version] - total * p) <= tolerance, (version, seen, tolerance)


@pytest.mark.parametrize("version", ["blue", "green"])
def test_the_model_deployment_header_pins_a_version(prod: dict[str, Any], version: str) -> None:
    assert versions_served(prod["mesh"], 40, {"azureml-model-deployment": version}) == Counter({version: 40})


def test_an_unknown_version_in_the_header_takes_the_weighted_route(prod: dict[str, Any]) -> None:
    seen = versions_served(prod["mesh"], 40, {"azureml-model-deployment": "nosuch"})
    assert sum(seen.values()) == 40 and set(seen) <= {"blue", "green"}, seen


def test_the_endpoint_prefix_is_rewritten_to_the_server_routes(prod: dict[str, Any]) -> None:
    mesh: Mesh = prod["mesh"]
    scored = mesh.request(f"{SCORE}?verbose=true", body="{}", headers=KEY)
    assert scored.status == 200 and scored.json()["path"] == "/score?verbose=true"  # what azmlinfsrv received
    liveness = mesh.request("/api/v1/service/sentiment/", method="GET", headers=KEY)
    assert liveness.status == 200  # GET / on the server: its liveness route
    swagger = mesh.request("/api/v1/service/sentiment/swagger.json", method="GET", headers=KEY)
    assert swagger.status == 200 and "paths" in json.loads(swagger.body)
    assert mesh.request("/api/v1/service/other/score", body="{}", headers=KEY).status == 404  # no route
    assert mesh.request("/api/v1/service/sentimental/score", body="{}", headers=KEY).status == 404


def test_plain_http_is_redirected_to_https(prod: dict[str, Any]) -> None:
    mesh: Mesh = prod["mesh"]
    response = mesh.call(lambda: Client(mesh.gateway_ip, "ml.contoso.com", False, mesh.ca.root_pem, 30)
                         .send("GET", SCORE))
    assert response.status == 301 and response.headers["location"] == f"https://ml.contoso.com{SCORE}"
