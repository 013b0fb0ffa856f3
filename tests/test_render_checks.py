"""`endpointgen render` refuses what `validate` refuses, in the same pass, and writes nothing when it does.

A full render checks every object; one with a few changed specs checks theirs and the shared objects (the
others passed the same checks in the render the cache recorded); nothing changed since a render that passed
the same checks needs no check at all. A finding names the spec line it came from.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import line_of
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from render_helpers import copy_examples, leftovers, run_cli, snapshot

SENTIMENT = "environments/prod/endpoints/sentiment.yaml"
UNCHANGED = "dev: unchanged\nprod: unchanged\n"


def pin_latest(root: Path) -> Path:
    spec = root / SENTIMENT
    spec.write_text(spec.read_text().replace("sentiment:1.4.2", "sentiment:latest"))
    return spec


def refused(root: Path, spec: Path) -> list[str]:
    """render's stderr lines, after asserting it exited 1, named the spec line, and wrote nothing."""
    before = snapshot(root)
    result = run_cli(root, "render", "--quiet")
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"{SENTIMENT}:{line_of(spec, 'sentiment:latest')}:14: versions[1].inference_config"
                               ".image: image 'mlacrprod.azurecr.io/scoring/sentiment:latest' is not pinned")
    assert "; in rendered/prod/endpoints/sentiment/deployment-sentiment-green.yaml:" in lines[0]
    assert lines[-1] == "endpointgen: nothing was written"
    assert snapshot(root) == before and leftovers(root) == []
    return lines


def test_a_latest_image_fails_the_first_render_at_its_spec_line(tmp_path: Path) -> None:
    root = copy_examples(tmp_path / "repo")
    refused(root, pin_latest(root))
    assert not (root / "rendered").exists() and not (root / "clusters").exists()


def test_a_latest_image_fails_a_render_of_one_changed_spec(tmp_path: Path) -> None:
    root = copy_examples(tmp_path / "repo")
    assert run_cli(root, "render").exit_code == 0
    spec = pin_latest(root)
    refused(root, spec)
    refused(root, spec)  # the failed render recorded nothing: still refused
    spec.write_text(spec.read_text().replace("sentiment:latest", "sentiment:1.4.3"))
    result = run_cli(root, "render")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("dev: unchanged\nprod: 1 file(s) written, 0 removed\nchecked: ")
    assert run_cli(root, "check").exit_code == 0


def test_only_the_changed_endpoint_and_the_shared_objects_are_checked_again(tmp_path: Path) -> None:
    root = copy_examples(tmp_path / "repo")
    first = run_cli(root, "render")
    everything = int(re.search(r"checked: (\d+) rendered object", first.stdout).group(1))
    spec = root / SENTIMENT
    spec.write_text(spec.read_text().replace("sentiment:1.4.2", "sentiment:1.4.3"))
    again = int(re.search(r"checked: (\d+) rendered object", run_cli(root, "render").stdout).group(1))
    assert 0 < again < everything / 2
    assert run_cli(root, "render").stdout == UNCHANGED  # nothing changed since a render that passed the checks


def test_other_checks_than_the_recorded_ones_render_and_check_again(tmp_path: Path) -> None:
    """The cache answers "unchanged" only for the same checks: other options, or a schema file changed."""
    root = copy_examples(tmp_path / "repo")
    assert run_cli(root, "render").exit_code == 0
    assert run_cli(root, "render").stdout == UNCHANGED
    result = run_cli(root, "render", "--schema-location", str(tmp_path / "nothing-here"))
    assert result.exit_code == 1 and "[schema-missing]" in result.stderr  # no CRD schemas: the Istio kinds fail
    result = run_cli(root, "render", "--skip", "Deployment")
    assert result.exit_code == 0 and "checked: " in result.stdout
    assert run_cli(root, "render", "--skip", "Deployment").stdout == UNCHANGED
    assert "checked: " in run_cli(root, "render").stdout  # back to all kinds: checked again

    schemas = root / "schema" / "crds"  # the repository's own schemas (the default location) change
    schemas.mkdir(parents=True)
    assert "checked: " in run_cli(root, "render").stdout
    assert run_cli(root, "render").stdout == UNCHANGED
    (schemas / "README.md").write_text("not a schema\n")
    assert run_cli(root, "render").stdout == UNCHANGED  # only *.json files count
    (schemas / "example.com").mkdir()
    (schemas / "example.com" / "thing_v1.json").write_text("{}")
    assert "checked: " in run_cli(root, "render").stdout


def test_validate_is_still_accepted_and_changes_nothing(tmp_path: Path) -> None:
    root = copy_examples(tmp_path / "repo")
    assert run_cli(root, "render").exit_code == 0
    assert run_cli(root, "render", "--validate").stdout == UNCHANGED
    refused(root, pin_latest(root))


IMAGES = st.sampled_from(["acr.azurecr.io/scoring/x:1", "acr.azurecr.io/scoring/x:latest", "acr.azurecr.io/scoring/x",
                          "acr.azurecr.io/scoring/x@sha256:" + "a" * 64, "acr.azurecr.io/scoring/x:LATEST",
                          "acr.azurecr.io:5000/scoring/x"])
VALUES = st.sampled_from(["info", "4", "password=hunter2", "AccountKey=" + "a" * 40, "eyJhbGciOiJIUzI1NiJ9.e30.x",
                          "'; rm -rf /", "a\nb: c", "{{ x }}"])


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    """Specs that pass the spec checks as often as not, with what the manifest checks judge: images, values."""
    names = draw(st.lists(st.sampled_from(["blue", "green", "gold"]), min_size=1, max_size=3, unique=True))
    versions = []
    for name in names:
        inference = {"image": draw(IMAGES), "entry_script": "score.py"}
        if draw(st.booleans()):
            inference["environment_variables"] = {"SETTING": draw(VALUES)}
        versions.append({"version_name": name, "models": [{"name": "m", "version": 1,
                                                            "uri": "https://blob.example.com/m/1"}],
                         "inference_config": inference})
    spec: dict[str, Any] = {"name": "fuzz", "versions": versions}
    if draw(st.booleans()):
        spec["description"] = draw(VALUES)
    if draw(st.booleans()):
        spec["tags"] = {"team": draw(VALUES)}
    return spec


@pytest.fixture(scope="module")
def rendered_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_examples(tmp_path_factory.mktemp("render-checks") / "repo")
    assert run_cli(root, "render", "--env", "dev").exit_code == 0
    return root


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(specs())
def test_render_refuses_exactly_what_validate_refuses(rendered_repo: Path, spec: dict[str, Any]) -> None:
    path = rendered_repo / "environments/dev/endpoints/fuzz.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    before = snapshot(rendered_repo)
    validated = run_cli(rendered_repo, "validate", "--env", "dev", "--quiet")
    rendered = run_cli(rendered_repo, "render", "--env", "dev", "--quiet")
    event(f"validate exit {validated.exit_code}, manifests refused: {'rendered manifests' in validated.stderr}")
    assert rendered.exit_code == validated.exit_code, (validated.output, rendered.output)
    if rendered.exit_code:
        assert snapshot(rendered_repo) == before
        problem = re.compile(r"^[^:\s]+:\d+:\d+: ")
        assert sorted(filter(problem.match, rendered.stderr.splitlines())) == sorted(
            filter(problem.match, validated.stderr.splitlines()))  # the same findings, at the same places
    path.unlink()
    assert run_cli(rendered_repo, "render", "--env", "dev", "--quiet").exit_code == 0
