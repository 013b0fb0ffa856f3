"""Writing rendered/ and clusters/: atomic, pruning, never touching what endpointgen did not generate."""

from __future__ import annotations

import re

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from generator.output import writer
from generator.pipeline import generate
from generator.pipeline.generate import check
from render_helpers import (
    EXAMPLE_ENVS, LOADER, copy_examples, edit_spec, leftovers, rendered_files, run_cli, snapshot, spec_file,
)

GOTK = "clusters/dev/flux-system/gotk-components.yaml"
GOTK_TEXT = "# written by `flux bootstrap`\napiVersion: v1\nkind: Namespace\nmetadata: {name: flux-system}\n"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A copy of the examples, rendered once, with the files `flux bootstrap` leaves in clusters/dev."""
    root = copy_examples(tmp_path / "repo")
    result = run_cli(root, "render")
    assert result.exit_code == 0, result.stderr
    for rel, text in ((GOTK, GOTK_TEXT), ("clusters/dev/flux-system/kustomization.yaml", "resources: []\n")):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def drop_version(name: str) -> Callable[[dict[str, Any]], None]:
    def change(spec: dict[str, Any]) -> None:
        spec["versions"] = [v for v in spec["versions"] if v["version_name"] != name]
        for v in spec["versions"]:
            v.pop("traffic_percentile", None)
    return change


def set_description(text: str) -> Callable[[dict[str, Any]], None]:
    def change(spec: dict[str, Any]) -> None:
        spec["description"] = text
    return change


def under(snap: dict[str, bytes], prefix: str) -> dict[str, bytes]:
    return {rel: content for rel, content in snap.items() if rel.startswith(prefix)}


# --- a render writes exactly what plan says -----------------------------------------------------------


def test_render_writes_the_plan(root: Path) -> None:
    expected = {rel: text.encode() for rel, text in rendered_files(root).items()}
    written = {rel: content for rel, content in snapshot(root).items() if not rel.startswith("clusters/dev/flux-")}
    assert written == expected
    assert check(root) == []
    unchanged = "".join(f"{e}: unchanged\n" for e in EXAMPLE_ENVS)
    result = run_cli(root, "render")  # the plan was never checked: render checks it all, and writes nothing new
    assert result.exit_code == 0 and result.stdout.startswith(unchanged)
    assert re.fullmatch(r"checked: \d+ rendered object\(s\) pass the schema, API-server and policy checks\n",
                        result.stdout[len(unchanged):])
    assert run_cli(root, "render").stdout == unchanged  # checked now: the cache answers


# --- atomicity ------------------------------------------------------------------------------------------


def test_invalid_spec_writes_nothing(root: Path) -> None:
    before = snapshot(root)
    edit_spec(root, "prod", "sentiment", set_description("changed"))  # valid, and would be written
    edit_spec(root, "dev", "sentiment", lambda spec: spec["versions"][0].update(cpu_cores=-1))
    result = run_cli(root, "render")
    assert result.exit_code == 1
    assert "environments/dev/endpoints/sentiment.yaml" in result.stderr and "cpu_cores" in result.stderr
    assert snapshot(root) == before


@pytest.mark.parametrize(("target", "failing_call"), [
    ("write", 1), ("write", 7), ("rename", 1), ("rename", 2),
])
def test_failure_while_writing_leaves_the_old_tree(root: Path, monkeypatch: pytest.MonkeyPatch,
                                                   target: str, failing_call: int) -> None:
    """A crash part-way through the write: rendered/<env> is the old tree, and no temporary folder is left."""
    before = snapshot(root)

    def change(spec: dict[str, Any]) -> None:  # rewrites every file of the endpoint and adds a namespace
        spec["description"] = "changed"
        spec["namespace"] = "ml-endpoints-dev-sentiment"

    edit_spec(root, "dev", "sentiment", change)
    calls = {"n": 0}
    original = writer._write_new if target == "write" else os.rename

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == failing_call:
            raise OSError(28, "No space left on device")
        return original(*args, **kwargs)

    if target == "write":
        monkeypatch.setattr(writer, "_write_new", failing)
    else:
        monkeypatch.setattr(writer.os, "rename", failing)
    with pytest.raises(OSError, match="No space left"):
        generate.render(root, ["dev"])
    monkeypatch.undo()
    assert calls["n"] >= failing_call
    assert snapshot(root) == before
    assert leftovers(root) == []
    assert run_cli(root, "render", "--env", "dev").exit_code == 0  # and the next render succeeds
    assert b"changed" in (root / "rendered/dev/endpoints/sentiment/virtualservice-sentiment.yaml").read_bytes()


def test_failed_swap_and_failed_restore_keep_the_old_tree(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even when putting the old tree back fails too, it is kept (as .dev.old-*), never deleted."""
    before = under(snapshot(root), "rendered/dev/")
    edit_spec(root, "dev", "sentiment", set_description("changed"))
    original = os.rename
    calls = {"n": 0}

    def failing(src: Any, dst: Any) -> None:
        calls["n"] += 1
        if calls["n"] >= 2:
            raise OSError(5, "I/O error")
        original(src, dst)

    monkeypatch.setattr(writer.os, "rename", failing)
    with pytest.raises(OSError):
        generate.render(root, ["dev"])
    monkeypatch.undo()
    kept = [p for p in (root / "rendered").iterdir() if p.name.startswith(".dev.old-")]
    assert len(kept) == 1, sorted(p.name for p in (root / "rendered").iterdir())
    restored = {f"rendered/dev/{p.relative_to(kept[0]).as_posix()}": p.read_bytes()
                for p in kept[0].rglob("*") if p.is_file()}
    assert restored == before


def test_failure_writing_clusters_file_leaves_it_whole(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = under(snapshot(root), "clusters/dev/")
    assert {"clusters/dev/platform.yaml", "clusters/dev/endpoints/sentiment.yaml"} <= set(before)
    path = root / "environments/dev/environment.yaml"
    path.write_text(path.read_text() + "flux:\n  interval: 7m\n")

    def failing(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer.os, "replace", failing)
    with pytest.raises(OSError):
        generate.render(root, ["dev"])
    monkeypatch.undo()
    assert under(snapshot(root), "clusters/dev/") == before
    assert leftovers(root) == []


# --- pruning --------------------------------------------------------------------------------------------


def test_deleting_a_version_removes_its_files(root: Path) -> None:
    edit_spec(root, "dev", "sentiment", drop_version("green"))
    result = run_cli(root, "render", "--env", "dev")
    assert result.exit_code == 0, result.stderr
    files = set(snapshot(root))
    assert not [rel for rel in files if rel.startswith("rendered/dev/") and "sentiment-green" in rel]
    assert "rendered/prod/endpoints/sentiment/deployment-sentiment-green.yaml" in files
    assert "rendered/dev/endpoints/sentiment/deployment-sentiment-blue.yaml" in files
    kustomization = yaml.load((root / "rendered/dev/endpoints/sentiment/kustomization.yaml").read_text(),
                              Loader=LOADER)
    assert "deployment-sentiment-blue.yaml" in kustomization["resources"]
    assert not [r for r in kustomization["resources"] if "green" in r]
    vs = yaml.load((root / "rendered/dev/endpoints/sentiment/virtualservice-sentiment.yaml").read_text(),
                   Loader=LOADER)
    assert "green" not in str(vs["spec"])
    assert check(root) == []


def test_deleting_an_endpoint_removes_its_folder(root: Path) -> None:
    before = snapshot(root)
    spec_file(root, "dev", "image-classifier").unlink()
    result = run_cli(root, "render")
    assert result.exit_code == 0, result.stderr
    after = snapshot(root)
    assert not (root / "rendered/dev/endpoints/image-classifier").exists()
    assert not (root / "clusters/dev/endpoints/image-classifier.yaml").exists()
    gone = set(before) - set(after)
    assert gone == {rel for rel in before if rel.startswith("rendered/dev/endpoints/image-classifier/")} | {
        "clusters/dev/endpoints/image-classifier.yaml"}
    assert set(after) - set(before) == set()
    changed = {rel for rel in after if after[rel] != before[rel]}
    assert changed == {"rendered/dev/kustomization.yaml"}  # the platform and the other endpoint stay as they were
    assert under(after, "rendered/prod/") == under(before, "rendered/prod/")
    assert under(after, "clusters/prod/") == under(before, "clusters/prod/")
    assert (root / GOTK).read_text() == GOTK_TEXT
    assert "prod: unchanged" in result.stdout


def test_removing_an_environment_removes_its_output(root: Path) -> None:
    shutil.rmtree(root / "environments/dev")
    ours = ["clusters/dev/platform.yaml", "clusters/dev/endpoints/image-classifier.yaml",
            "clusters/dev/endpoints/sentiment.yaml"]
    result = run_cli(root, "check")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert all(f"no longer rendered: {rel}" in lines for rel in ours), result.stderr
    result = run_cli(root, "render")
    assert result.exit_code == 0, result.stderr
    assert not (root / "rendered/dev").exists()
    assert not [rel for rel in ours if (root / rel).exists()]
    assert sorted(under(snapshot(root), "clusters/dev/")) == [GOTK, "clusters/dev/flux-system/kustomization.yaml"]
    assert (root / GOTK).read_text() == GOTK_TEXT  # flux bootstrap's files stay
    assert (root / "rendered/prod/kustomization.yaml").is_file()
    assert check(root) == []


# --- files endpointgen did not generate ----------------------------------------------------------------


@pytest.mark.parametrize("stray", ["rendered/dev/notes.md", "rendered/dev/endpoints/sentiment/extra-config.yaml",
                                   "rendered/prod/platform/gateway/hand-written.yaml"])
def test_hand_written_file_in_rendered_stops_render(root: Path, stray: str) -> None:
    (root / stray).write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: mine\n")
    edit_spec(root, "dev", "sentiment", set_description("changed"))
    edit_spec(root, "prod", "sentiment", set_description("changed"))
    before = snapshot(root)
    result = run_cli(root, "render")
    assert result.exit_code == 1
    assert stray in result.stderr
    assert snapshot(root) == before
    assert f"not generated by endpointgen: {stray}" in run_cli(root, "check").stderr


@pytest.mark.parametrize("rel", ["clusters/dev/platform.yaml", "clusters/dev/endpoints/sentiment.yaml"])
def test_hand_written_flux_file_in_clusters_is_not_overwritten(root: Path, rel: str) -> None:
    """clusters/<env>/ is shared with flux bootstrap: a file without our header there is not ours to replace."""
    path = root / rel
    path.write_text("# my own Flux objects\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: mine\n")
    before = snapshot(root)
    result = run_cli(root, "render")
    assert result.exit_code == 1
    assert rel in result.stderr
    assert snapshot(root) == before
    result = run_cli(root, "check")
    assert result.exit_code == 1
    assert f"not generated by endpointgen: {rel}" in result.stderr


def test_flux_bootstrap_files_are_never_touched(root: Path) -> None:
    extra = root / "clusters/dev/infrastructure.yaml"  # hand-written, beside ours
    extra.write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: infra\n")
    ours = set(rendered_files(root, ["dev"]))
    mine = {rel: content for rel, content in snapshot(root).items()
            if rel.startswith("clusters/dev/") and rel not in ours}
    assert sorted(mine) == ["clusters/dev/flux-system/gotk-components.yaml",
                            "clusters/dev/flux-system/kustomization.yaml", "clusters/dev/infrastructure.yaml"]
    edit_spec(root, "dev", "sentiment", set_description("changed"))
    assert run_cli(root, "render").exit_code == 0
    assert run_cli(root, "check").exit_code == 0
    spec_file(root, "dev", "sentiment").unlink()
    assert run_cli(root, "render").exit_code == 0
    after = snapshot(root)
    assert not (root / "clusters/dev/endpoints/sentiment.yaml").exists()
    assert {rel: after.get(rel) for rel in mine} == mine
    shutil.rmtree(root / "environments/dev")  # even when the whole environment goes
    assert run_cli(root, "render").exit_code == 0
    after = snapshot(root)
    assert {rel: after.get(rel) for rel in mine} == mine


# --- check -----------------------------------------------------------------------------------------------


def test_check_passes_when_current(root: Path) -> None:
    result = run_cli(root, "check")
    assert result.exit_code == 0
    assert result.stdout == "ok: rendered output is current\n"


def test_check_lists_stale_missing_and_leftover_files(root: Path) -> None:
    edit_spec(root, "dev", "sentiment", drop_version("green"))  # blue's files and the VS change, green's go
    edit_spec(root, "prod", "image-classifier", set_description("changed"))
    (root / "rendered/prod/platform/gateway/gateway-ml-endpoints.yaml").unlink()
    before = snapshot(root)
    result = run_cli(root, "check")
    assert result.exit_code == 1
    lines = set(result.stderr.splitlines())
    assert "stale: rendered/dev/endpoints/sentiment/virtualservice-sentiment.yaml" in lines
    assert "stale: rendered/dev/endpoints/sentiment/kustomization.yaml" in lines
    assert "stale: rendered/dev/kustomization.yaml" not in lines  # it lists folders, and they are all still there
    assert "stale: rendered/prod/endpoints/image-classifier/virtualservice-image-classifier.yaml" in lines
    assert "missing: rendered/prod/platform/gateway/gateway-ml-endpoints.yaml" in lines
    assert "no longer rendered: rendered/dev/endpoints/sentiment/deployment-sentiment-green.yaml" in lines
    assert "no longer rendered: rendered/dev/endpoints/sentiment/service-sentiment-green.yaml" in lines
    assert not [line for line in lines if "rendered/prod/endpoints/sentiment/" in line]
    assert "make render" in result.stderr
    assert snapshot(root) == before
    assert run_cli(root, "render").exit_code == 0
    assert run_cli(root, "check").exit_code == 0


def test_check_of_one_environment(root: Path) -> None:
    edit_spec(root, "prod", "sentiment", set_description("changed"))
    assert run_cli(root, "check", "--env", "dev").exit_code == 0
    assert run_cli(root, "check", "--env", "prod").exit_code == 1


def test_check_on_a_repo_never_rendered(tmp_path: Path) -> None:
    root = copy_examples(tmp_path / "fresh")
    result = run_cli(root, "check")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    for rel in ("clusters/dev/platform.yaml", "clusters/dev/endpoints/sentiment.yaml",
                "clusters/dev/endpoints/image-classifier.yaml", "rendered/dev/kustomization.yaml",
                "rendered/dev/platform/kustomization.yaml", "rendered/dev/endpoints/sentiment/kustomization.yaml"):
        assert f"missing: {rel}" in lines, rel


# --- what Flux and kubectl build -----------------------------------------------------------------------


def kustomize(folder: Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize <folder>` builds."""
    result = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.load_all(result.stdout, Loader=LOADER) if d is not None]


def identity(obj: dict[str, Any]) -> tuple[str, str | None, str]:
    return obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"]


def objects_in(folder: Path) -> set[tuple[str, str | None, str]]:
    """The objects of the manifest files under `folder` (kustomization.yaml files excluded)."""
    return {identity(yaml.load(p.read_text(), Loader=LOADER)) for p in folder.rglob("*.yaml")
            if p.name != "kustomization.yaml"}


def flux_paths(root: Path, env: str) -> list[str]:
    """spec.path of every Flux Kustomization endpointgen wrote in clusters/<env>."""
    files = [root / "clusters" / env / name for name in ("platform.yaml", "key-auth.yaml")
             if (root / "clusters" / env / name).is_file()]
    files += sorted((root / "clusters" / env / "endpoints").glob("*.yaml"))
    return [yaml.load(p.read_text(), Loader=LOADER)["spec"]["path"] for p in files]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("env", EXAMPLE_ENVS)
def test_kubectl_kustomize_builds_each_environment(root: Path, env: str) -> None:
    folder = root / "rendered" / env
    objects = kustomize(folder)
    files = [p for p in folder.rglob("*.yaml") if p.name != "kustomization.yaml"]
    assert len(objects) == len(files) > 0
    built = {identity(o) for o in objects}
    assert built == objects_in(folder)
    # what kustomize (as Flux runs it) reads is what we wrote: no value changes type on the way
    for o in objects:
        if o["kind"] == "Deployment":
            for c in o["spec"]["template"]["spec"]["containers"]:
                assert all(isinstance(e.get("value", ""), str) for e in c.get("env", [])), c.get("env")


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("env", EXAMPLE_ENVS)
def test_kubectl_kustomize_builds_each_flux_kustomization_path(root: Path, env: str) -> None:
    """Flux builds the platform folder, the key-auth folder and each endpoint folder on its own: together they are
    the environment."""
    paths = flux_paths(root, env)
    endpoints = sorted(p.name for p in (root / "rendered" / env / "endpoints").iterdir() if p.is_dir())
    assert paths == [f"./rendered/{env}/platform", f"./rendered/{env}/key-auth",
                     *(f"./rendered/{env}/endpoints/{ep}" for ep in endpoints)]
    assert len(endpoints) >= 2
    seen: list[tuple[str, str | None, str]] = []
    for path in paths:
        folder = root / path
        objects = kustomize(folder)
        built = [identity(o) for o in objects]
        assert len(built) == len(set(built)) == len(objects_in(folder)) > 0, path
        assert set(built) == objects_in(folder), path
        seen += built
    everything = [identity(o) for o in kustomize(root / "rendered" / env)]
    assert len(seen) == len(set(seen)) == len(everything)  # no object in two Flux Kustomizations, none left out
    assert set(seen) == set(everything)
    platform = {identity(o) for o in kustomize(root / paths[0])}
    platform_kinds = {"Gateway", "Namespace", "PeerAuthentication", "NetworkPolicy", "ConfigMap"}
    keda_auth = "auth: azure-workload" in (root / "environments" / env / "environment.yaml").read_text()
    assert {kind for kind, _, _ in platform} == platform_kinds | (
        {"TriggerAuthentication"} if keda_auth else set())
    key_auth = {identity(o) for o in kustomize(root / paths[1])}  # both example environments have a keyed endpoint
    assert {kind for kind, _, _ in key_auth} == {"Namespace", "PeerAuthentication", "NetworkPolicy", "ConfigMap",
                                                 "Deployment", "Service", "ServiceAccount", "PodDisruptionBudget",
                                                 "SecretStore", "ExternalSecret"}
    assert {ns for _, ns, _ in key_auth} <= {"endpointgen-auth", None}
    endpoint_owned = {i for i in seen if i[0] == "ConfigMap" and i[2].endswith("-model-config-map")}  # per version
    assert not [i for i in seen if i not in platform | key_auth | endpoint_owned
                and i[0] in platform_kinds | {"TriggerAuthentication"}]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_kustomize_keeps_string_values(root: Path) -> None:
    def tricky(spec: dict[str, Any]) -> None:
        spec["description"] = "1e3"
        spec["versions"][1]["inference_config"]["environment_variables"] = {"RATE": "1e-3", "FLAG": "y",
                                                                            "MODE": "0o17"}
    edit_spec(root, "dev", "sentiment", tricky)
    assert run_cli(root, "render", "--env", "dev").exit_code == 0
    result = subprocess.run(["kubectl", "kustomize", str(root / "rendered/dev")], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    objects = {(o["kind"], o["metadata"]["name"]): o for o in yaml.load_all(result.stdout, Loader=LOADER)}
    (container,) = objects[("Deployment", "sentiment-green")]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (env["RATE"], env["FLAG"], env["MODE"]) == ("1e-3", "y", "0o17")
    assert objects[("VirtualService", "sentiment")]["metadata"]["annotations"]["endpointgen.io/description"] == "1e3"


def flux_settings(root: Path, env: str) -> dict[str, Any]:
    settings = yaml.load((root / "environments" / env / "environment.yaml").read_text(), Loader=LOADER)
    return {"git_repository": "flux-system", "namespace": "flux-system", "interval": "5m", "timeout": "10m",
            **settings.get("flux", {})}


def check_flux_kustomization(root: Path, env: str, rel: str, name: str, path: str,
                             depends_on: list[dict[str, str]] | None) -> None:
    text = (root / rel).read_text()
    assert text.startswith(f"# Generated by endpointgen from environments/{env}/environment.yaml; do not edit.\n")
    obj = yaml.load(text, Loader=LOADER)
    flux = flux_settings(root, env)
    assert (obj["apiVersion"], obj["kind"]) == ("kustomize.toolkit.fluxcd.io/v1", "Kustomization")
    assert obj["metadata"] == {"name": name, "namespace": flux["namespace"],
                               "labels": {"app.kubernetes.io/managed-by": "endpointgen"}}
    spec = obj["spec"]
    assert spec["path"] == path
    assert (root / spec["path"] / "kustomization.yaml").is_file()
    assert spec["prune"] is True and spec["wait"] is True
    assert (spec["interval"], spec["timeout"], spec["retryInterval"]) == (flux["interval"], flux["timeout"], "1m")
    assert spec["sourceRef"] == {"kind": "GitRepository", "name": flux["git_repository"]}
    assert spec.get("dependsOn") == depends_on


def check_flux_kustomizations(root: Path, env: str) -> None:
    """One Flux Kustomization for rendered/<env>/platform, one for rendered/<env>/key-auth that nothing waits for,
    then one per endpoint that waits for the platform."""
    endpoints = sorted(p.stem for p in spec_file(root, env, "x").parent.glob("*.yaml"))
    assert len(endpoints) >= 2
    ours = sorted(rel for rel in rendered_files(root, [env]) if rel.startswith(f"clusters/{env}/"))
    assert ours == [*(f"clusters/{env}/endpoints/{ep}.yaml" for ep in endpoints), f"clusters/{env}/key-auth.yaml",
                    f"clusters/{env}/platform.yaml"]
    assert not (root / "clusters" / env / "endpoints.yaml").exists()
    check_flux_kustomization(root, env, f"clusters/{env}/platform.yaml", f"{env}-platform",
                             f"./rendered/{env}/platform", None)
    check_flux_kustomization(root, env, f"clusters/{env}/key-auth.yaml", f"{env}-key-auth",
                             f"./rendered/{env}/key-auth", None)
    for ep in endpoints:
        check_flux_kustomization(root, env, f"clusters/{env}/endpoints/{ep}.yaml", f"{env}-{ep}",
                                 f"./rendered/{env}/endpoints/{ep}", [{"name": f"{env}-platform"}])


@pytest.mark.parametrize("env", EXAMPLE_ENVS)
def test_flux_kustomizations_point_at_the_rendered_folders(root: Path, env: str) -> None:
    check_flux_kustomizations(root, env)


def test_flux_settings_reach_every_flux_kustomization(root: Path) -> None:
    path = root / "environments/dev/environment.yaml"
    path.write_text(path.read_text() + "flux:\n  interval: 7m\n  timeout: 3m\n  git_repository: gitops\n")
    assert run_cli(root, "render", "--env", "dev").exit_code == 0
    assert flux_settings(root, "dev")["interval"] == "7m"
    check_flux_kustomizations(root, "dev")


def test_deleting_an_endpoint_removes_its_flux_kustomization_and_kustomization_entry(root: Path) -> None:
    """Remove a spec and render again: its Flux Kustomization goes, and rendered/<env> no longer lists its folder."""
    def resources(rel: str) -> list[str]:
        return yaml.load((root / rel).read_text(), Loader=LOADER)["resources"]

    assert resources("rendered/dev/kustomization.yaml") == ["endpoints/image-classifier", "endpoints/sentiment",
                                                            "key-auth", "platform"]
    assert (root / "clusters/dev/endpoints/sentiment.yaml").is_file()
    spec_file(root, "dev", "sentiment").unlink()
    result = run_cli(root, "render", "--env", "dev")
    assert result.exit_code == 0, result.stderr
    assert not (root / "clusters/dev/endpoints/sentiment.yaml").exists()
    assert (root / "clusters/dev/endpoints/image-classifier.yaml").is_file()
    assert (root / "clusters/dev/platform.yaml").is_file()
    assert not (root / "rendered/dev/endpoints/sentiment").exists()
    # sentiment was dev's only keyed endpoint: the authorizer and its Flux Kustomization go with it
    assert not (root / "rendered/dev/key-auth").exists() and not (root / "clusters/dev/key-auth.yaml").exists()
    assert resources("rendered/dev/kustomization.yaml") == ["endpoints/image-classifier", "platform"]
    assert (root / "clusters/prod/endpoints/sentiment.yaml").is_file()  # other environments keep theirs
    assert "endpoints/sentiment" in resources("rendered/prod/kustomization.yaml")
    assert (root / GOTK).read_text() == GOTK_TEXT
    assert check(root) == []
