"""An incremental render (only changed specs) writes exactly what a full render of the same specs writes."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from generator.pipeline import incremental
from render_helpers import copy_examples, edit_spec, run_cli, snapshot


def bump_traffic(spec: dict[str, Any]) -> None:
    spec["versions"][1]["traffic_percentile"] = 33.3


def move_namespace(spec: dict[str, Any]) -> None:
    spec["namespace"] = "ml-reviews"


def rename_key_secret(spec: dict[str, Any]) -> None:
    spec["auth_keys"]["secondary_key_secret"] = "sentiment-key-2026"


def drop_key_auth(spec: dict[str, Any]) -> None:
    spec["auth_enabled"] = False
    del spec["auth_keys"]


def full_render(tmp: Path, repo: Path) -> dict[str, bytes]:
    fresh = tmp / "fresh"
    shutil.copytree(repo / "environments", fresh / "environments")
    assert run_cli(fresh, "render").exit_code == 0
    return {rel: content for rel, content in snapshot(fresh).items() if not rel.startswith(".endpointgen-cache")}


@pytest.mark.parametrize("change", ["edit", "new-namespace", "delete", "add", "key-secret", "add-keyed",
                                    "drop-keys"])
def test_incremental_render_equals_a_full_render(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    repo = copy_examples(tmp_path / "repo")
    assert run_cli(repo, "render").exit_code == 0
    specs = repo / "environments/prod/endpoints"
    if change == "edit":
        edit_spec(repo, "prod", "sentiment", bump_traffic)
    elif change == "new-namespace":
        edit_spec(repo, "prod", "sentiment", move_namespace)
    elif change == "key-secret":  # the key's ExternalSecret in rendered/<env>/key-auth must follow a spec change
        edit_spec(repo, "prod", "sentiment", rename_key_secret)
    elif change == "drop-keys":  # prod's only keyed endpoint: the key-auth folder and Kustomization go
        edit_spec(repo, "prod", "sentiment", drop_key_auth)
    elif change == "add-keyed":
        (specs / "fraud.yaml").write_text((specs / "sentiment.yaml").read_text().replace("name: sentiment",
                                                                                          "name: fraud"))
    elif change == "delete":
        (specs / "image-classifier.yaml").unlink()
    else:
        (specs / "fraud.yaml").write_text((specs / "image-classifier.yaml").read_text()
                                          .replace("name: image-classifier", "name: fraud"))
    used: list[str] = []
    original = incremental.plan_changed

    def spy(root: Path, env: str, *checks: Any) -> incremental.Change | None:
        found = original(root, env, *checks)
        used.append(f"{env}:{'incremental' if found else 'full'}")
        assert found is None or (found.report is not None and found.report.objects > 0)  # and checked
        return found

    monkeypatch.setattr(incremental, "plan_changed", spy)
    result = run_cli(repo, "render")
    assert result.exit_code == 0, result.stderr
    assert used == ["prod:incremental"]  # dev did not change, and prod went the incremental way
    mine = {rel: content for rel, content in snapshot(repo).items() if not rel.startswith(".endpointgen-cache")}
    assert mine == full_render(tmp_path, repo)
    assert ("rendered/prod/key-auth/kustomization.yaml" in mine) == ("clusters/prod/key-auth.yaml" in mine) == (
        change != "drop-keys")
    assert run_cli(repo, "check").exit_code == 0
