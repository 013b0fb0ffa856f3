"""Render behaviour: determinism, injection resistance, and the checks on what templates produce."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest
import ruamel.yaml
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.render import templates
from generator.render.files import render_files
from generator.render.objects import render_environment
from generator.render.templates import RenderError, check_object, render_object
from generator.spec.model import Endpoint, Environment
from generator.spec.repository import load_repository
from generator.spec.rules import endpoint_problems
from generator.spec.schema import ENDPOINT_SCHEMA, schema_problems
from render_helpers import EXAMPLE_ENVS, LOADER, PROJECT, copy_examples, rendered_files, run_cli, snapshot

INJECTION = "\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding"
CLUSTER_ROLE_BINDING = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRoleBinding",
    "metadata": {"name": "pwned"},
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
    "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}],
}
YAML12 = ruamel.yaml.YAML(typ="safe", pure=True)


# --- determinism ---------------------------------------------------------------------------------------


def test_render_twice_gives_identical_bytes() -> None:
    assert rendered_files(PROJECT) == rendered_files(PROJECT)
    repo = load_repository(PROJECT)
    for env in repo.environments:
        first = render_files(env, repo.endpoints_of(env.name))
        second = render_files(env, list(reversed(repo.endpoints_of(env.name))))
        assert first == second, f"{env.name}: output depends on the order endpoints are given in"


def test_render_is_independent_of_the_hash_seed(tmp_path: Path) -> None:
    trees = []
    for seed in ("0", "4242"):
        root = copy_examples(tmp_path / f"seed-{seed}")
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run([sys.executable, "-m", "generator", "--root", str(root), "render"],
                                env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        trees.append(snapshot(root))
    assert trees[0] and trees[0] == trees[1]
    assert len(trees[0]) == len(rendered_files(PROJECT))


# --- injection resistance ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def example_endpoints() -> tuple[Environment, list[Endpoint]]:
    repo = load_repository(PROJECT, ["prod"])
    assert not repo.problems
    return repo.environments[0], repo.endpoints_of("prod")


def with_metadata(ep: Endpoint, description: str, tags: dict[str, str]) -> Endpoint:
    """The endpoint rebuilt from its spec with another description and tags (on the endpoint and version 0)."""
    data = {**ep.doc.data, "description": description, "tags": tags}
    data["versions"] = [{**data["versions"][0], "description": description, "tags": tags}, *data["versions"][1:]]
    doc = dataclasses.replace(ep.doc, data=data)
    assert schema_problems(doc, ENDPOINT_SCHEMA) == []
    built = Endpoint.build(ep.env, doc)
    assert endpoint_problems(built) == []
    return built


def shape(manifests: list[templates.Manifest]) -> Counter[tuple[str, str]]:
    return Counter((m.path, m.obj["kind"]) for m in manifests)


def documents(text: str) -> list[Any]:
    return [d for d in yaml.load_all(text, Loader=LOADER) if d is not None]


text_values = st.one_of(
    st.sampled_from([INJECTION, INJECTION + "\nmetadata: {name: x}", "\n...\n---\n", "{{ 7 * 7 }}", "{% raw %}",
                     "'\"", "- a\n- b", "key: value", "&a [*a]", "!!python/object:os.system ls", "|\n  x",
                     "\x85\u2028\u2029\ufeff", "y", "1e3", "null", "# comment", " ", "\t\r\n"]),
    st.text(max_size=200),
).filter(lambda s: len(s) <= 256)


@settings(max_examples=100, deadline=None)
@given(description=text_values, tag_key=st.text(min_size=1, max_size=40), tag_value=text_values)
def test_spec_text_cannot_change_the_output_shape(example_endpoints: tuple[Environment, list[Endpoint]],
                                                  description: str, tag_key: str, tag_value: str) -> None:
    env, endpoints = example_endpoints
    expected = shape(render_environment(env, endpoints))
    changed = [with_metadata(ep, description, {tag_key: tag_value, "team": INJECTION}) for ep in endpoints]
    manifests = render_environment(env, changed)
    assert shape(manifests) == expected
    carriers = {ep.name for ep in changed} | {f"{ep.name}-{ep.versions[0].name}" for ep in changed}
    checked = 0
    for m in manifests:
        text = m.text
        (obj,) = documents(text)
        assert obj == m.obj
        if obj["kind"] in ("VirtualService", "Deployment") and obj["metadata"]["name"] in carriers:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                assert YAML12.load(text) == obj, f"{m.path} reads differently as YAML 1.2"
            annotations = obj["metadata"]["annotations"]
            if description:
                assert annotations["endpointgen.io/description"] == description, m.path
            else:
                assert "endpointgen.io/description" not in annotations, m.path
            assert json.loads(annotations["endpointgen.io/tags"]) == {tag_key: tag_value, "team": INJECTION}
            checked += 1
        assert obj["kind"] != "ClusterRoleBinding"
    assert checked == 2 * len(changed)


def test_template_values_are_inert(tmp_templates: Path) -> None:
    (tmp_templates / "echo.yaml.j2").write_text(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: echo\n  namespace: ns\n"
        "  annotations:\n    a: {{ value }}\n    b: {{ items }}\n")
    for value in (INJECTION, "}}{{", "a: b\nc: d", "\u2028x\x85"):
        obj = render_object("echo.yaml.j2", "ns", value=value, items=[value, {"k": value}])
        assert obj["metadata"]["annotations"] == {"a": value, "b": [value, {"k": value}]}


# --- what templates may produce ------------------------------------------------------------------------


@pytest.fixture
def tmp_templates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """render_object reads templates from an empty temporary folder for the duration of a test."""
    folder = tmp_path / "templates"
    folder.mkdir()
    monkeypatch.setattr(templates, "TEMPLATE_DIR", folder)
    templates.jinja_environment.cache_clear()
    yield folder
    templates.jinja_environment.cache_clear()


SERVICE_ACCOUNT = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: ok\n  namespace: ns\n"


@pytest.mark.parametrize(("template", "message"), [
    ("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: x\n",
     "not on the list"),
    (SERVICE_ACCOUNT + "---\n" + SERVICE_ACCOUNT.replace("ok", "second"), "exactly one object, got 2"),
    (SERVICE_ACCOUNT + "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\n",
     "exactly one object, got 2"),
    ("", "exactly one object, got 0"),
    ("- " + SERVICE_ACCOUNT.replace("\n", "\n  "), "exactly one object"),
    ("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: ns\nstringData:\n  key: v\n",
     "not on the list"),
    ("apiVersion: apps/v1\nkind: Service\nmetadata:\n  name: s\n  namespace: ns\n", "not on the list"),
    (SERVICE_ACCOUNT.replace("namespace: ns", "namespace: kube-system"), "expected 'ns'"),
    (SERVICE_ACCOUNT.replace("  namespace: ns\n", ""), "expected 'ns'"),
    (SERVICE_ACCOUNT.replace("name: ok", "name: Not_Valid"), "not a valid object name"),
    (SERVICE_ACCOUNT.replace("name: ok", "name: " + "a" * 254), "not a valid object name"),
    ("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns\n  namespace: ns\n", "expected None"),
    ("key: [unclosed\n", "invalid YAML"),
    ("{{ undefined_name }}\n", "'undefined_name' is undefined"),
    ("metadata: {{ ep.missing_attribute }}\n", "missing_attribute"),
    ("{% for x in %}\n", "template bad.yaml.j2"),
])
def test_bad_templates_raise_render_error(tmp_templates: Path, template: str, message: str) -> None:
    (tmp_templates / "bad.yaml.j2").write_text(template)
    with pytest.raises(RenderError, match="bad.yaml.j2") as caught:
        render_object("bad.yaml.j2", "ns", ep={"name": "x"})
    assert message in str(caught.value)


def test_good_template_in_temp_folder_renders(tmp_templates: Path) -> None:
    (tmp_templates / "good.yaml.j2").write_text(SERVICE_ACCOUNT)
    assert render_object("good.yaml.j2", "ns")["metadata"] == {"name": "ok", "namespace": "ns"}


def test_check_object_refuses_cluster_role_binding() -> None:
    with pytest.raises(RenderError, match="ClusterRoleBinding is not on the list"):
        check_object(CLUSTER_ROLE_BINDING, "x.yaml.j2", None)
    with pytest.raises(RenderError, match="not on the list"):
        check_object({**CLUSTER_ROLE_BINDING, "kind": "Deployment"}, "x.yaml.j2", None)


def test_a_template_gone_bad_stops_the_whole_render(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A built-in template that starts emitting a second document fails render; nothing is written."""
    folder = tmp_path / "templates"
    shutil.copytree(templates.TEMPLATE_DIR, folder)
    path = folder / "serviceaccount.yaml.j2"
    path.write_text(path.read_text() + "---\n" + yaml.safe_dump(CLUSTER_ROLE_BINDING))
    monkeypatch.setattr(templates, "TEMPLATE_DIR", folder)
    templates.jinja_environment.cache_clear()
    try:
        root = copy_examples(tmp_path / "repo")
        result = run_cli(root, "render")
        assert result.exit_code == 1
        assert "serviceaccount.yaml.j2 must produce exactly one object, got 2" in result.stderr
        assert snapshot(root) == {}
    finally:
        templates.jinja_environment.cache_clear()


def test_templates_use_strict_undefined() -> None:
    assert templates.jinja_environment().undefined is jinja2.StrictUndefined


@pytest.mark.parametrize("env", EXAMPLE_ENVS)
def test_every_template_output_passes_check_object(env: str) -> None:
    """Belt and braces: the objects in the written files pass the same check render_object applies."""
    for rel, text in rendered_files(PROJECT, [env]).items():
        if rel.endswith("/kustomization.yaml") and rel.startswith("rendered/"):
            continue
        (obj,) = documents(text)
        check_object(obj, rel, obj["metadata"].get("namespace"))


def test_the_platform_folder_exists_even_with_nothing_in_it() -> None:
    """Flux's <env>-platform Kustomization points at rendered/<env>/platform: it must build even when empty."""
    from generator.render.files import kustomizations

    files = kustomizations("dev", [])
    assert sorted(files) == ["rendered/dev/kustomization.yaml", "rendered/dev/platform/kustomization.yaml"]
    assert "resources: []" in files["rendered/dev/platform/kustomization.yaml"]
    assert "- platform" in files["rendered/dev/kustomization.yaml"]
