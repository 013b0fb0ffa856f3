"""Issue 22, part 2: an identity per endpoint, within Entra ID's 20 federated credentials per identity."""

from __future__ import annotations

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
