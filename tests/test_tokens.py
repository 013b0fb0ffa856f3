"""Issue 22, part 1: token auth as Entra ID issues access tokens (the rendered rules; the data plane is in
tests/dataplane/test_tokens_e2e.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from render_helpers import copy_examples, manifests, of_kind, rendered_files, run_cli, version_spec, write_endpoint

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID = "6e1d2c3b-4a5f-4e6d-8c7b-9a0f1e2d3c4b"


def set_token_auth(root: Path, env: str, token_auth: dict[str, Any], revision: str | None = None) -> Path:
    path = root / "environments" / env / "environment.yaml"
    data = yaml.safe_load(path.read_text())
    data["token_auth"] = token_auth
    if revision:
        data["istio"]["revision"] = revision
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def token_endpoint(root: Path, env: str = "dev", **fields: Any) -> Path:
    return write_endpoint(root, env, "tokened", [version_spec("one")], token_auth_enabled=True, auth_enabled=False,
                          **fields)


def rendered(root: Path, env: str = "dev") -> tuple[dict[str, Any], dict[str, Any]]:
    objects = manifests(rendered_files(root, [env]))
    return (of_kind(objects, "RequestAuthentication")["tokened"],
            of_kind(objects, "AuthorizationPolicy")["tokened-require-token"])


@pytest.mark.parametrize("issuer", [f"https://login.microsoftonline.com/{TENANT}/v2.0",
                                    f"https://sts.windows.net/{TENANT}/"], ids=["v2-issuer", "v1-issuer"])
def test_an_entra_issuer_accepts_both_token_versions_of_its_tenant(tmp_path: Path, issuer: str) -> None:
    root = copy_examples(tmp_path / "repo")
    set_token_auth(root, "dev", {"issuer": issuer, "audiences": ["api://scoring", CLIENT_ID]})
    token_endpoint(root)
    request_auth, allow = rendered(root)
    assert [(r["issuer"], r["audiences"], r["jwksUri"]) for r in request_auth["spec"]["jwtRules"]] == [
        (f"https://sts.windows.net/{TENANT}/", ["api://scoring", CLIENT_ID],
         f"https://login.microsoftonline.com/{TENANT}/discovery/keys"),
        (f"https://login.microsoftonline.com/{TENANT}/v2.0", [CLIENT_ID],
         f"https://login.microsoftonline.com/{TENANT}/discovery/v2.0/keys")]
    assert allow["spec"]["rules"] == [{"from": [{"source": {"requestPrincipals": [
        f"https://sts.windows.net/{TENANT}//*", f"https://login.microsoftonline.com/{TENANT}/v2.0/*"]}}]}]


def test_without_a_client_id_only_v1_tokens_can_match(tmp_path: Path) -> None:
    """A v2 token's aud is always the client ID: with App ID URIs alone there is no v2 rule to fail open."""
    root = copy_examples(tmp_path / "repo")
    set_token_auth(root, "dev", {"issuer": f"https://login.microsoftonline.com/{TENANT}/v2.0",
                                 "audiences": ["api://scoring"]})
    token_endpoint(root)
    request_auth, _ = rendered(root)
    assert [r["issuer"] for r in request_auth["spec"]["jwtRules"]] == [f"https://sts.windows.net/{TENANT}/"]


def test_another_issuer_is_taken_as_given(tmp_path: Path) -> None:
    root = copy_examples(tmp_path / "repo")
    set_token_auth(root, "dev", {"issuer": "https://idp.contoso.com", "audiences": ["scoring"],
                                 "jwks_uri": "https://idp.contoso.com/keys"})
    token_endpoint(root)
    request_auth, allow = rendered(root)
    assert [(r["issuer"], r["audiences"], r["jwksUri"]) for r in request_auth["spec"]["jwtRules"]] == [
        ("https://idp.contoso.com", ["scoring"], "https://idp.contoso.com/keys")]
    assert allow["spec"]["rules"][0]["from"][0]["source"]["requestPrincipals"] == ["https://idp.contoso.com/*"]


def test_required_roles_and_scopes_are_each_required(tmp_path: Path) -> None:
    """Each role and scope is its own `when` condition (Istio ANDs conditions, ORs the values of one); an
    endpoint's list replaces the environment's; scopes need scp split (spaceDelimitedClaims)."""
    root = copy_examples(tmp_path / "repo")
    set_token_auth(root, "dev", {"issuer": f"https://login.microsoftonline.com/{TENANT}/v2.0",
                                 "audiences": [CLIENT_ID], "required_roles": ["Scoring.Invoke"],
                                 "required_scopes": ["Scoring.Read"]}, revision="asm-1-28")
    token_endpoint(root, required_roles=["Scoring.Invoke", "Scoring.Batch"])
    request_auth, allow = rendered(root)
    assert all(r["spaceDelimitedClaims"] == ["scp"] for r in request_auth["spec"]["jwtRules"])
    assert allow["spec"]["rules"][0]["when"] == [
        {"key": "request.auth.claims[roles]", "values": ["Scoring.Invoke"]},
        {"key": "request.auth.claims[roles]", "values": ["Scoring.Batch"]},
        {"key": "request.auth.claims[scp]", "values": ["Scoring.Read"]}]


def problem_line(result: Any, path: Path, key: str) -> tuple[str, int]:
    [problem] = [p for p in result.stderr.splitlines() if p.startswith("environments/")]
    lines = path.read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if text.strip().startswith(f"{key}:"))
    return problem, line + 1 if lines[line - 1].rstrip().endswith(":") else line  # a block list: its first item


def test_audiences_no_entra_token_carries_are_refused(tmp_path: Path) -> None:
    root = copy_examples(tmp_path / "repo")
    path = set_token_auth(root, "dev", {"issuer": f"https://login.microsoftonline.com/{TENANT}/v2.0",
                                        "audiences": ["ml-endpoints-dev"]})
    result = run_cli(root, "validate", "--specs-only", "--env", "dev")
    assert result.exit_code == 1
    problem, line = problem_line(result, path, "audiences")
    assert problem.startswith(f"environments/dev/environment.yaml:{line}:") and "token_auth.audiences" in problem
    assert "App ID URI" in problem and "client ID" in problem and "401" in problem


@pytest.mark.parametrize("where", ["environment", "endpoint"])
def test_required_scopes_need_a_revision_that_splits_scp(tmp_path: Path, where: str) -> None:
    root = copy_examples(tmp_path / "repo")
    token_auth = {"issuer": f"https://login.microsoftonline.com/{TENANT}/v2.0", "audiences": [CLIENT_ID]}
    if where == "environment":
        token_auth["required_scopes"] = ["Scoring.Read"]
    env_path = set_token_auth(root, "dev", token_auth, revision="asm-1-27")
    spec_path = token_endpoint(root, **({"required_scopes": ["Scoring.Read"]} if where == "endpoint" else {}))
    result = run_cli(root, "validate", "--specs-only", "--env", "dev")
    assert result.exit_code == 1
    path = env_path if where == "environment" else spec_path
    problem, line = problem_line(result, path, "required_scopes")
    assert problem.startswith(f"{path.relative_to(root).as_posix()}:{line}:")
    assert "asm-1-27" in problem and "asm-1-28" in problem
    set_token_auth(root, "dev", token_auth, revision="asm-1-28")
    assert run_cli(root, "validate", "--specs-only", "--env", "dev").exit_code == 0


def test_claims_on_an_endpoint_without_token_auth_are_refused(tmp_path: Path) -> None:
    root = copy_examples(tmp_path / "repo")
    path = write_endpoint(root, "dev", "keyed", [version_spec("one")], auth_enabled=False,
                          required_roles=["Scoring.Invoke"])
    result = run_cli(root, "validate", "--specs-only", "--env", "dev")
    assert result.exit_code == 1
    problem, line = problem_line(result, path, "required_roles")
    assert problem.startswith(f"environments/dev/endpoints/keyed.yaml:{line}:") and "token_auth_enabled" in problem
