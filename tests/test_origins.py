"""A finding in a rendered object names the spec line its value came from (check/origins.py).

Each case puts a value the checks refuse into a spec the way a user would, then reads what `validate` says:
the spec's file:line:col and field, with where it was rendered as context; a value no single spec field
holds stays at the rendered file, the spec named.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from click.testing import Result
from conftest import line_of, replace_in, spec_path

from generator.check.manifests import RenderedObject
from generator.check.origins import traced
from generator.problems import Problem
from generator.spec.repository import load_repository

Run = Callable[[list[str]], Result]
PROD = "environments/prod/environment.yaml"
SENTIMENT = "environments/prod/endpoints/sentiment.yaml"
LATEST = "is not pinned (use a version tag or a digest) [image-pinned]"


def problems(run_cli: Run, *args: str) -> list[str]:
    result = run_cli(["validate", "--env", "prod", *args])
    assert result.exit_code == 1, result.output
    return [line for line in result.stderr.splitlines() if re.match(r"^[^:\s]+:\d+:\d+: ", line)]


def test_an_image_a_version_sets_is_found_at_its_line(repo: Path, run_cli: Run) -> None:
    spec = spec_path(repo, "sentiment", "prod")
    replace_in(spec, "sentiment:1.4.2", "sentiment:latest")
    [line] = problems(run_cli)
    where = re.escape("rendered/prod/endpoints/sentiment/deployment-sentiment-green.yaml")
    assert re.fullmatch(rf"{SENTIMENT}:{line_of(spec, 'sentiment:latest')}:14: versions\[1\]\.inference_config\.image: "
                        rf"image 'mlacrprod\.azurecr\.io/scoring/sentiment:latest' {re.escape(LATEST)} \(Deployment "
                        rf"ml-endpoints/sentiment-green; in {where}:\d+:18 at spec\.template\.spec\.containers\[0\]"
                        r"\.image\)", line), line


def test_an_image_the_environment_sets_is_found_in_the_environment_file(repo: Path, run_cli: Run) -> None:
    """The model loader's image is the environment's: every endpoint's finding points at that one line."""
    env_file = repo / PROD
    replace_in(env_file, "model-loader:1.3.0", "model-loader:latest")
    found = problems(run_cli)
    assert found and all(line.startswith(f"{PROD}:{line_of(env_file, 'model-loader:latest')}:10: model_loader.image: ")
                         for line in found), found
    assert all(re.search(r"; in rendered/prod/endpoints/[\w-]+/deployment-[\w-]+\.yaml:\d+:\d+ at "
                         r"spec\.template\.spec\.initContainers\[\d+\]\.image\)$", line) for line in found), found


def test_a_platform_object_is_found_in_the_environment_file(repo: Path, run_cli: Run) -> None:
    env_file = repo / PROD
    replace_in(env_file, "  authorizer:\n", "  authorizer:\n    image: openpolicyagent/opa:latest\n")
    [line] = problems(run_cli)
    assert line.startswith(f"{PROD}:{line_of(env_file, 'opa:latest')}:12: key_auth.authorizer.image: image "
                           f"'openpolicyagent/opa:latest' {LATEST} (Deployment ")
    assert "; in rendered/prod/key-auth/" in line


def test_a_number_stays_at_the_rendered_file_with_its_spec_named(repo: Path) -> None:
    """A number is never traced (too many fields hold a 1): the finding stays, the spec and version named."""
    ep = next(e for e in load_repository(repo, ["prod"]).endpoints if e.name == "sentiment")
    obj = RenderedObject("rendered/prod/endpoints/sentiment/deployment-sentiment-green.yaml", "",
                         {"kind": "Deployment", "metadata": {"labels": {"endpointgen.io/version": "green"}},
                          "spec": {"replicas": 1}})
    problem = Problem(obj.path, 9, 13, "spec.replicas", "refused", rule="some-rule")
    found = traced(problem, obj, ("spec", "replicas"), ep.env, ep)
    assert (found.path, found.line, found.col, found.field) == (obj.path, 9, 13, "spec.replicas")
    assert found.context == f"from {SENTIMENT} versions[1]"
    assert str(found) == f"{obj.path}:9:13: spec.replicas: refused [some-rule] (from {SENTIMENT} versions[1])"


def test_a_value_several_fields_hold_is_not_guessed(repo: Path) -> None:
    """An object of no version searches all versions together: two run the same image, so neither is named."""
    spec = spec_path(repo, "sentiment", "prod")
    replace_in(spec, "sentiment:1.4.2", "sentiment:1.4.1")  # both versions now run the same image
    ep = next(e for e in load_repository(repo, ["prod"]).endpoints if e.name == "sentiment")
    obj = RenderedObject("rendered/prod/endpoints/sentiment/x.yaml", "",
                         {"kind": "VirtualService", "metadata": {"name": "sentiment"},
                          "spec": {"image": "mlacrprod.azurecr.io/scoring/sentiment:1.4.1"}})
    problem = Problem(obj.path, 3, 10, "spec.image", "refused", rule="image-pinned")
    assert traced(problem, obj, ("spec", "image"), ep.env, ep).path == obj.path  # not one version's, two
    assert traced(problem, obj, ("spec", "image"), ep.env, ep).context == f"from {SENTIMENT}"
    obj.obj["metadata"]["labels"] = {"endpointgen.io/version": "green"}  # one version's object: its own entry
    mine = traced(problem, obj, ("spec", "image"), ep.env, ep)
    image_lines = [i for i, text in enumerate(spec.read_text().splitlines(), 1) if "sentiment:1.4.1" in text]
    assert (mine.path, mine.field, mine.line) == (SENTIMENT, "versions[1].inference_config.image", image_lines[1])
    assert mine.context == "in rendered/prod/endpoints/sentiment/x.yaml:3:10 at spec.image"
