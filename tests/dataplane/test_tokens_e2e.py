"""Token auth as Entra ID issues tokens, through the ingress gateway and the scoring pods' sidecars, whose
jwt_authn and RBAC filters istiod generated from the rendered RequestAuthentication and AuthorizationPolicy.

The dev example on asm-1-28 with an Entra issuer for a stand-in tenant (entra.py: its keys served on the
sandbox's loopback, where istiod fetches them, as it would fetch login.microsoftonline.com's), the API's App ID
URI and client ID as audiences, and two endpoints: one requiring an app role, one a delegated scope.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from render_helpers import copy_examples, version_spec, write_endpoint

from .entra import KEYS_PATH, Tenant, new_key
from .labs import rendered_objects, scoring_images, up
from .mesh import ENTRA_KEYS_PORT, Mesh

TENANT = Tenant("5c1e4b2a-7d3f-4e8a-9b6c-0d1e2f3a4b5c", "api://ml-endpoints-dev",
                "9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d")
OTHER_TENANT = "0a9b8c7d-6e5f-4a3b-9c2d-1e0f2a3b4c5d"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, scoring_script: Path) -> Iterator[Mesh]:
    root = copy_examples(tmp_path_factory.mktemp("tokens") / "repo")
    path = root / "environments" / "dev" / "environment.yaml"
    env = yaml.safe_load(path.read_text())
    env["istio"]["revision"] = "asm-1-28"  # splits scp (spaceDelimitedClaims)
    env["token_auth"] = {"issuer": f"https://login.microsoftonline.com/{TENANT.tenant_id}/v2.0",
                         "audiences": [TENANT.app_id_uri, TENANT.client_id],
                         "jwks_uri": f"https://127.0.0.1:{ENTRA_KEYS_PORT}{KEYS_PATH}"}
    path.write_text(yaml.safe_dump(env, sort_keys=False))
    one = version_spec("one", models=[], num_replicas=1, autoscale_enabled=False)
    write_endpoint(root, "dev", "role-lab", [one], token_auth_enabled=True, auth_enabled=False,
                   required_roles=["Scoring.Invoke"])
    write_endpoint(root, "dev", "scope-lab", [one], token_auth_enabled=True, auth_enabled=False,
                   required_scopes=["Scoring.Read"])
    objects = rendered_objects(root, "dev")
    yield from up(objects, tmp_path_factory.mktemp("tokens-mesh"), scoring_images=scoring_images(objects, scoring_script),
                  replicas={"role-lab-one": 1, "scope-lab-one": 1}, tenant=TENANT)


def call(mesh: Mesh, endpoint: str, token: str | None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    response = mesh.request(f"/api/v1/service/{endpoint}/score", body=json.dumps({}), headers=headers)
    return response.status, response.body.decode(errors="replace")


def test_istiod_built_both_token_versions_from_the_rendered_rules(mesh: Mesh) -> None:
    """The scoring pod's jwt_authn providers: one per issuer of the tenant, each with its audiences and the
    keys istiod fetched (not its fail-closed public-only set)."""
    [pod] = mesh.pods_of("role-lab-one")
    dump = mesh.envoy_admin(pod, "/config_dump?include_eds=false")
    providers = {}
    for match in _jwt_providers(json.loads(dump)):
        providers[match["issuer"]] = match
    assert set(providers) == {f"https://sts.windows.net/{TENANT.tenant_id}/",
                              f"https://login.microsoftonline.com/{TENANT.tenant_id}/v2.0"}
    assert providers[f"https://sts.windows.net/{TENANT.tenant_id}/"]["audiences"] == [TENANT.app_id_uri,
                                                                                      TENANT.client_id]
    assert providers[f"https://login.microsoftonline.com/{TENANT.tenant_id}/v2.0"]["audiences"] == [TENANT.client_id]
    for provider in providers.values():
        assert json.loads(provider["local_jwks"]["inline_string"]) == json.loads(TENANT.jwks())


def _jwt_providers(dump: dict) -> Iterator[dict]:
    """Every JwtProvider in a config dump (the inbound listeners' jwt_authn filters)."""
    stack = [dump]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "providers" in node and "rules" in node or "providers" in node and "requirement_map" in node:
                yield from node["providers"].values()
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def test_v1_and_v2_tokens_of_the_tenant_with_the_role_are_served(mesh: Mesh) -> None:
    for token in (TENANT.token("1.0", roles=("Scoring.Invoke",)),  # aud: the App ID URI
                  TENANT.token("1.0", aud=TENANT.client_id, roles=("Scoring.Invoke",)),  # v1 asked by client ID
                  TENANT.token("2.0", roles=("Scoring.Invoke", "Other.Role"))):  # aud: the client ID
        status, body = call(mesh, "role-lab", token)
        assert status == 200, body


@pytest.mark.parametrize("case, token, answer", [
    # Envoy's jwt_authn answers a token it cannot verify with 401, one for another audience with 403
    ("v2 with the App ID URI as aud", TENANT.token("2.0", aud=TENANT.app_id_uri, roles=("Scoring.Invoke",)),
     (403, "Audiences in Jwt are not allowed")),
    ("another API's audience", TENANT.token("1.0", aud="api://another-api", roles=("Scoring.Invoke",)),
     (403, "Audiences in Jwt are not allowed")),
    ("another tenant", TENANT.token("2.0", tenant=OTHER_TENANT, roles=("Scoring.Invoke",)),
     (401, "Jwt issuer is not configured")),
    ("expired", TENANT.token("2.0", roles=("Scoring.Invoke",), lifetime=-600), (401, "Jwt is expired")),
    ("signed by another key", TENANT.token("2.0", roles=("Scoring.Invoke",), key=new_key()),
     (401, "Jwt verification fails")),
    ("not a token", "not-a-jwt", (401, "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections")),
])
def test_a_bad_token_is_refused_by_jwt_authn(mesh: Mesh, case: str, token: str, answer: tuple[int, str]) -> None:
    assert call(mesh, "role-lab", token) == answer, case


def test_no_token_or_a_missing_role_gets_403(mesh: Mesh) -> None:
    for token in (None, TENANT.token("2.0"), TENANT.token("2.0", roles=("Scoring.Invoker",))):
        status, body = call(mesh, "role-lab", token)
        assert (status, body) == (403, "RBAC: access denied"), token


def test_a_required_scope_is_found_among_the_tokens_scopes(mesh: Mesh) -> None:
    """scp is one space-separated string; the rule splits it (spaceDelimitedClaims), so the scope counts in
    any position, and only as a whole word."""
    for scp in ("Scoring.Read", "user_impersonation Scoring.Read", "openid Scoring.Read profile"):
        status, body = call(mesh, "scope-lab", TENANT.token("2.0", scp=scp))
        assert status == 200, (scp, body)
    for scp in ("user_impersonation", "Scoring.ReadWrite openid", None):
        status, body = call(mesh, "scope-lab", TENANT.token("2.0", scp=scp))
        assert status == 403, (scp, body)
