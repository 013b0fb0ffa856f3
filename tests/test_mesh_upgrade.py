"""The Istio add-on's canary upgrade as README's three pull requests, on the prod example (asm-1-25 -> asm-1-26),
each committed in a temporary git repository: after every step the shared mesh ConfigMaps, the namespaces'
istio.io/rev and the pod templates are what the runbook says, and `check --base` / `diff` warn on the two
orders that break endpoints. Also the platform team's own mesh settings (istio.mesh_config) and their rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import Result
from conftest import replace_in
from test_edit_cli import base  # noqa: F401 - base is a fixture
from test_pr import commit

Run = Callable[[list[str]], Result]
ENV_FILE = "environments/prod/environment.yaml"
OLD, NEW = "asm-1-25", "asm-1-26"
MESH = "rendered/prod/platform/mesh"


def set_revisions(root: Path, revision: str, additional: list[str]) -> None:
    """Edit prod's istio.revision and istio.additional_revisions as a person would, comments kept."""
    path = root / ENV_FILE
    lines = [line for line in path.read_text().splitlines(keepends=True) if "additional_revisions:" not in line]
    text = re.sub(r"^  revision: \S+", f"  revision: {revision}", "".join(lines), count=1, flags=re.M)
    if additional:
        text = text.replace("  hosts:\n", f"  additional_revisions: [{', '.join(additional)}]\n  hosts:\n", 1)
    path.write_text(text)


def shared_configmaps(root: Path) -> dict[str, str]:
    """ConfigMap name -> its `mesh` key, for the shared ConfigMaps rendered for prod."""
    found = {}
    for path in sorted((root / MESH).glob("configmap-*.yaml")):
        obj = yaml.safe_load(path.read_text())
        found[obj["metadata"]["name"]] = obj["data"]["mesh"]
    return found


def namespace_revisions(root: Path) -> set[str]:
    return {yaml.safe_load(p.read_text())["metadata"]["labels"]["istio.io/rev"]
            for p in (root / "rendered/prod/platform").rglob("namespace-*.yaml")}


def pod_revisions(root: Path) -> set[str]:
    return {yaml.safe_load(p.read_text())["spec"]["template"]["metadata"]["labels"]["istio.io/rev"]
            for p in (root / "rendered/prod").rglob("deployment-*.yaml")}


def warnings(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if ": warning: " in line]


def check_base(run_cli: Run) -> Result:
    """Render the change, then check it against HEAD, as the pull request's CI does."""
    assert run_cli(["render"]).exit_code == 0
    result = run_cli(["check", "--base", "HEAD"])
    assert result.exit_code == 0, result.stderr  # warnings, not failures: a new cluster may do this on purpose
    return result


def test_the_runbook_step_by_step(base: Path, run_cli: Run) -> None:
    before = shared_configmaps(base)
    assert list(before) == [f"istio-shared-configmap-{OLD}"]
    assert "name: endpointgen-key-auth" in before[f"istio-shared-configmap-{OLD}"]

    # PR 1: install the new revision beside the old; then `az aks mesh upgrade start`
    set_revisions(base, OLD, [NEW])
    assert warnings(check_base(run_cli)) == []
    commit(base, run_cli, "PR 1")
    after_pr1 = shared_configmaps(base)
    assert sorted(after_pr1) == [f"istio-shared-configmap-{OLD}", f"istio-shared-configmap-{NEW}"]
    assert len(set(after_pr1.values())) == 1  # the same providers for both revisions
    assert namespace_revisions(base) == {OLD} and pod_revisions(base) == {OLD}

    # PR 2: swap; every pod template changes, so every pod rolls onto the new proxies; then `upgrade complete`
    templates_before = {p.name: p.read_text() for p in (base / "rendered/prod").rglob("deployment-*.yaml")}
    set_revisions(base, NEW, [OLD])
    assert warnings(check_base(run_cli)) == []
    commit(base, run_cli, "PR 2")
    assert sorted(shared_configmaps(base)) == sorted(after_pr1)
    assert namespace_revisions(base) == {NEW} and pod_revisions(base) == {NEW}
    templates_after = {p.name: p.read_text() for p in (base / "rendered/prod").rglob("deployment-*.yaml")}
    assert templates_after.keys() == templates_before.keys()
    assert all(templates_after[name] != templates_before[name] for name in templates_before)

    # PR 3: drop the old revision
    set_revisions(base, NEW, [])
    assert warnings(check_base(run_cli)) == []
    commit(base, run_cli, "PR 3")
    assert list(shared_configmaps(base)) == [f"istio-shared-configmap-{NEW}"]
    assert namespace_revisions(base) == {NEW} and pod_revisions(base) == {NEW}


def test_swapping_before_the_new_revision_is_installed_warns(base: Path, run_cli: Run) -> None:
    set_revisions(base, NEW, [OLD])  # PR 2 without PR 1
    [warning] = warnings(check_base(run_cli))
    assert warning.startswith(f"{ENV_FILE}:") and ": warning: istio.revision: " in warning
    assert f"namespaces move to {NEW}, which HEAD does not install" in warning
    diff = run_cli(["diff", "--base", "HEAD"])
    assert diff.exit_code == 0 and warning in diff.stdout


def test_dropping_the_revision_pods_run_on_warns(base: Path, run_cli: Run) -> None:
    set_revisions(base, OLD, [NEW])
    commit(base, run_cli, "PR 1")
    set_revisions(base, NEW, [])  # PR 2 and PR 3 at once
    [warning] = warnings(check_base(run_cli))
    assert f"the pods run on {OLD} (on HEAD) and this removes istio-shared-configmap-{OLD}" in warning
    markdown = run_cli(["diff", "--base", "HEAD", "--format", "markdown"]).stdout
    assert "> [!WARNING]" in markdown and f"removes istio-shared-configmap-{OLD}" in markdown


def test_changing_the_revision_in_one_step_warns_twice(base: Path, run_cli: Run) -> None:
    set_revisions(base, NEW, [])
    assert len(warnings(check_base(run_cli))) == 2


def add_mesh_config(root: Path, text: str) -> None:
    replace_in(root / ENV_FILE, "  hosts:\n", f"  mesh_config:\n{text}  hosts:\n")


def test_the_platform_teams_mesh_settings_are_kept_beside_the_provider(base: Path, run_cli: Run) -> None:
    add_mesh_config(base, "    accessLogFile: /dev/stdout\n"
                          "    defaultConfig:\n      holdApplicationUntilProxyStarts: true\n"
                          "    extensionProviders:\n      - name: otel\n"
                          "        opentelemetry: {service: otel-collector.observability.svc.cluster.local, "
                          "port: 4317}\n")
    set_revisions(base, OLD, [NEW])
    assert run_cli(["render"]).exit_code == 0
    meshes = {name: yaml.safe_load(text) for name, text in shared_configmaps(base).items()}
    assert len(meshes) == 2
    for mesh in meshes.values():
        assert mesh["accessLogFile"] == "/dev/stdout"
        assert mesh["defaultConfig"] == {"holdApplicationUntilProxyStarts": True}
        assert [p["name"] for p in mesh["extensionProviders"]] == ["otel", "endpointgen-key-auth"]
        assert mesh["extensionProviders"][1]["envoyExtAuthzGrpc"]["failOpen"] is False


def test_mesh_settings_alone_get_their_configmap(base: Path, run_cli: Run) -> None:
    """Without a keyed endpoint there is no provider, but the team's settings still reach the add-on."""
    for name in ("sentiment", "image-classifier"):
        (base / f"environments/prod/endpoints/{name}.yaml").unlink()
    assert run_cli(["render"]).exit_code == 0
    assert shared_configmaps(base) == {}
    add_mesh_config(base, "    accessLogFile: /dev/stdout\n")
    assert run_cli(["render"]).exit_code == 0
    assert shared_configmaps(base) == {f"istio-shared-configmap-{OLD}": "accessLogFile: /dev/stdout\n"}


@pytest.mark.parametrize(("setting", "message"), [
    ("  additional_revisions: [asm-1-25]\n", "asm-1-25 cannot run beside asm-1-25"),
    ("  additional_revisions: [asm-1-29]\n", "asm-1-29 cannot run beside asm-1-25"),
    ("  mesh_config:\n    extensionProviders:\n      - name: endpointgen-key-auth\n        envoyExtAuthzHttp: {}\n",
     "endpointgen-key-auth is the key-auth provider endpointgen registers"),
])
def test_mesh_rules(base: Path, run_cli: Run, setting: str, message: str) -> None:
    replace_in(base / ENV_FILE, "  hosts:\n", setting + "  hosts:\n")
    snapshot = {p: p.read_bytes() for p in (base / "rendered").rglob("*") if p.is_file()}
    result = run_cli(["render"])
    assert result.exit_code == 1 and message in result.stderr and f"{ENV_FILE}:" in result.stderr
    assert {p: p.read_bytes() for p in (base / "rendered").rglob("*") if p.is_file()} == snapshot


def test_mesh_settings_need_the_rendered_configmap(base: Path, run_cli: Run) -> None:
    add_mesh_config(base, "    accessLogFile: /dev/stdout\n")
    replace_in(base / ENV_FILE, "key_auth:\n", "key_auth:\n  mesh_config: snippet\n")
    result = run_cli(["render"])
    assert result.exit_code == 1 and "istio.mesh_config" in result.stderr and "snippet" in result.stderr


def test_a_hostile_mesh_setting_stays_a_value(base: Path, run_cli: Run) -> None:
    add_mesh_config(base, '    accessLogFormat: "x\\n---\\nkind: Secret\\n"\n')
    assert run_cli(["render"]).exit_code == 0
    [path] = (base / MESH).glob("configmap-*.yaml")
    [obj] = list(yaml.safe_load_all(path.read_text()))
    assert yaml.safe_load(obj["data"]["mesh"])["accessLogFormat"] == "x\n---\nkind: Secret\n"
