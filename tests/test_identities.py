"""Issue 22, part 2: an identity per endpoint, within Entra ID's 20 federated credentials per identity."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import yaml

from render_helpers import copy_examples, manifests, of_kind, rendered_files, run_cli, version_spec, write_endpoint


def identity(n: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"endpoint-{n}.identities.test"))


def add_endpoints(root: Path, count: int, own: bool = False, same: str | None = None) -> list[Path]:
    paths = []
    for n in range(count):
        fields = {"workload_identity_client_id": same or identity(n)} if own or same else {}
        paths.append(write_endpoint(root, "dev", f"ep-{n:02d}", [version_spec("one")], **fields))
    return paths


def test_endpoints_on_one_identity_past_20_credentials_are_refused(tmp_path: Path) -> None:
    root = copy_examples(tmp_path / "repo")
    env_path = root / "environments" / "dev" / "environment.yaml"
    shared = yaml.safe_load(env_path.read_text())["key_vault"]["client_id"]
    add_endpoints(root, 25)
    # every ServiceAccount of dev federates with key_vault.client_id: 25 + the examples' 2 + the authorizer's
    for command in (["validate", "--specs-only"], ["validate"], ["render"]):
        result = run_cli(root, *command)
        assert result.exit_code == 1, command
        [problem] = [p for p in result.stderr.splitlines() if p.startswith("environments/")]
        line = next(i for i, t in enumerate(env_path.read_text().splitlines(), 1) if t.strip().startswith("client_id:"))
        assert problem.startswith(f"environments/dev/environment.yaml:{line}:") and "key_vault.client_id" in problem
        assert f"managed identity {shared} would need 28 federated credentials" in problem and "limit of 20" in problem
    assert not (root / "rendered" / "dev" / "endpoints" / "ep-00").exists()


def test_an_identity_per_endpoint_passes_and_names_each_service_account(tmp_path: Path) -> None:
    root = copy_examples(tmp_path / "repo")
    add_endpoints(root, 25, own=True)
    assert run_cli(root, "validate", "--specs-only").exit_code == 0
    accounts = of_kind(manifests(rendered_files(root, ["dev"])), "ServiceAccount")
    assert {n: accounts[f"ep-{n:02d}"]["metadata"]["annotations"]["azure.workload.identity/client-id"]
            for n in range(25)} == {n: identity(n) for n in range(25)}


def test_an_identity_set_by_many_endpoints_is_refused_at_each_of_them(tmp_path: Path) -> None:
    root = copy_examples(tmp_path / "repo")
    same = identity(99)
    paths = add_endpoints(root, 21, same=same)
    result = run_cli(root, "validate", "--specs-only")
    assert result.exit_code == 1
    problems = [p for p in result.stderr.splitlines() if p.startswith("environments/")]
    assert sorted(p.split(":")[0] for p in problems) == sorted(p.relative_to(root).as_posix() for p in paths)
    assert all(f"managed identity {same} would need 21 federated credentials" in p for p in problems)


def test_the_render_after_one_change_counts_the_recorded_endpoints_too(tmp_path: Path) -> None:
    root = copy_examples(tmp_path / "repo")
    add_endpoints(root, 17)  # 17 + 2 + the authorizer: 20, the limit
    assert run_cli(root, "render", "--env", "dev").exit_code == 0
    write_endpoint(root, "dev", "one-more", [version_spec("one")])
    result = run_cli(root, "render", "--env", "dev")
    assert result.exit_code == 1
    assert "would need 21 federated credentials" in result.stderr
    assert not (root / "rendered" / "dev" / "endpoints" / "one-more").exists()


def test_identities_lists_one_credential_per_service_account_and_the_roles_each_needs(tmp_path: Path) -> None:
    root = copy_examples(tmp_path / "repo")
    add_endpoints(root, 3, own=True)
    result = run_cli(root, "identities", "--output", "json")
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    credentials = [(c["issuer"] or c["cluster"], c["subject"]) for item in plan for c in item["credentials"]]
    assert len(credentials) == len(set(credentials))  # nothing twice
    # every rendered ServiceAccount with a workload identity has its credential, on that identity
    expected = set()
    for env in ("dev", "prod"):
        settings = yaml.safe_load((root / "environments" / env / "environment.yaml").read_text())
        for sa in of_kind(manifests(rendered_files(root, [env])), "ServiceAccount").values():
            client = sa["metadata"].get("annotations", {}).get("azure.workload.identity/client-id")
            if client:
                expected.add((client, settings.get("oidc_issuer") or settings["cluster_name"],
                              f"system:serviceaccount:{sa['metadata']['namespace']}:{sa['metadata']['name']}"))
        keda = settings.get("autoscaling", {}).get("prometheus", {}).get("identity_client_id")
        if keda:
            expected.add((keda, settings.get("oidc_issuer") or settings["cluster_name"],
                          "system:serviceaccount:kube-system:keda-operator"))
    assert {(item["client_id"], c["issuer"] or c["cluster"], c["subject"]) for item in plan
            for c in item["credentials"]} == expected
    assert all(c["audience"] == "api://AzureADTokenExchange" for item in plan for c in item["credentials"])
    roles = {item["client_id"]: {(r["role"], r["scope"]) for r in item["roles"]} for item in plan}
    prod = yaml.safe_load((root / "environments" / "prod" / "environment.yaml").read_text())
    assert ("Key Vault Secrets User", prod["key_vault"]["name"]) in roles[prod["key_auth"]["authorizer"]["client_id"]]
    assert roles[prod["autoscaling"]["prometheus"]["identity_client_id"]] == {
        ("Monitoring Data Reader", prod["autoscaling"]["prometheus"]["server_address"].split("//")[1])}
    assert ("Storage Blob Data Reader", "models") in roles[identity(0)]  # version_spec's model storage account
    # the endpoints' identity reads the App Insights secrets, one by one, never the vault of the scoring keys
    endpoints = roles[prod["key_vault"]["client_id"]]
    assert ("Key Vault Secrets User", f"{prod['key_vault']['name']}/{prod['app_insights']['instrumentation_key_secret']}") \
        in endpoints and ("Key Vault Secrets User", prod["key_vault"]["name"]) not in endpoints
    script = run_cli(root, "identities").stdout
    assert script.count("az identity federated-credential create") == len(credentials)
    assert "--subject system:serviceaccount:kube-system:keda-operator" in script
    assert subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True).returncode == 0
