"""The manifest checker as a library: parsing rendered files, schema stores and locations, check_environment."""

from __future__ import annotations

import http.server
import json
import shutil
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from generator.check.kubeschemas import (DEFAULT_TEMPLATE, SchemaError, SchemaStore, as_template, builtin_dir,
                                         builtin_versions, expand)
from generator.check.manifests import (KubeconformError, Options, RenderedObject, Report, check_environment,
                                       disagreements, offline_builtin_schemas,
                                       objects_from_files, run_kubeconform, schema_store, schema_violations)
from generator.pipeline.generate import plan
from generator.render.objects import render_manifests
from generator.spec.repository import load_repository
from manifest_fixtures.objects import deployment, endpoint_objects, scoring

PROJECT = Path(__file__).resolve().parent.parent
CRD_SCHEMAS = PROJECT / "schema" / "crds"
K8S = "1.33"


def rendered(obj: dict[str, Any], path: str = "rendered/dev/x.yaml") -> RenderedObject:
    return RenderedObject(path, yaml.safe_dump(obj, sort_keys=False), obj)


def check(objects: list[RenderedObject], options: Options | None = None,
          waivers: dict[str, dict[str, str]] | None = None) -> Report:
    report = Report()
    check_environment(objects, K8S, options or Options(locations=[str(CRD_SCHEMAS)]), waivers or {}, report)
    return report


# --- objects_from_files --------------------------------------------------------------------------------------


def test_one_object_per_file() -> None:
    files = {"b.yaml": "# header\napiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: ns}\n",
             "a.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: ns}\n",
             "kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: []\n"}
    objects, problems = objects_from_files(files)
    assert problems == []
    assert [(o.path, o.subject) for o in objects] == [("a.yaml", "Namespace ns"), ("b.yaml", "Service ns/s")]
    assert objects[1].text == files["b.yaml"]


@pytest.mark.parametrize(("text", "line", "col", "message"), [
    ("a: 1\n---\n# the second one\nb: 2\n", 4, 1, "expected exactly one object, found 2 document(s)"),
    ("---\na: 1\n---\n---\nb: 2\n---\n", 5, 1, "expected exactly one object, found 2 document(s)"),
    ("", 1, 1, "expected exactly one object, found 0 document(s)"),
    ("# only a comment\n", 1, 1, "expected exactly one object, found 0 document(s)"),
    ("- a\n- b\n", 1, 1, "expected exactly one object, found 1 document(s)"),
    ("a: 1\nb: [\n", 3, 1, "invalid YAML: "),
    ("a: 1\n  b: 2\n", 2, 4, "invalid YAML: mapping values are not allowed"),
])
def test_files_that_are_not_one_object(text: str, line: int, col: int, message: str) -> None:
    objects, problems = objects_from_files({"f.yaml": text})
    assert objects == []
    assert [(p.path, p.line, p.col, p.rule) for p in problems] == [("f.yaml", line, col, "one-object-per-file")]
    assert problems[0].message.startswith(message)


def test_subject_without_namespace_or_metadata() -> None:
    assert rendered({"kind": "Namespace", "metadata": {"name": "ns"}}).subject == "Namespace ns"
    assert rendered({"kind": "Thing"}).subject == "Thing None"
    assert rendered({"kind": "Thing", "metadata": ["not", "a", "mapping"]}).subject == "Thing None"


# --- the example output, object by object ---------------------------------------------------------------------


def _example_objects(tmp_path: Path) -> dict[str, list[RenderedObject]]:
    shutil.copytree(PROJECT / "environments", tmp_path / "environments")
    repo = load_repository(tmp_path)
    assert not repo.problems
    return {env.name: [RenderedObject(m.path, m.text, m.obj) for m in render_manifests(env, repo.endpoints_of(env.name))]
            for env in repo.environments}


def test_every_example_object_has_a_schema_and_passes_it(tmp_path: Path) -> None:
    for env, objects in _example_objects(tmp_path).items():
        version = next(e for e in plan(tmp_path, [env]).repo.environments).settings["kubernetes_version"]
        store = SchemaStore(version, [str(CRD_SCHEMAS)])
        for o in objects:
            validator = store.validator(o.obj["apiVersion"], o.obj["kind"])
            assert validator is not None, o.subject
            assert list(validator.iter_errors(o.obj)) == [], o.subject


def test_check_environment_on_the_example(tmp_path: Path) -> None:
    report = Report()
    for env, objects in _example_objects(tmp_path).items():
        check_environment(objects, K8S, Options(locations=[str(CRD_SCHEMAS)]), {}, report)
    assert report.problems == [] and report.waived == []
    assert report.objects == len(report.files) > 40
    assert report.summary().endswith(f"valid: {report.objects}, invalid: 0, skipped: 0, waived findings: 0")


# --- check_environment --------------------------------------------------------------------------------------------


def test_unknown_field_points_at_its_key() -> None:
    obj = deployment()
    scoring(obj)["sidecars"] = {"a": 1}
    [problem] = check([rendered(obj)]).problems
    line = obj_line = next(i for i, text in enumerate(rendered(obj).text.splitlines(), 1) if "sidecars:" in text)
    assert (problem.line, problem.field, problem.rule) == (line, "spec.template.spec.containers[0].sidecars", "schema")
    assert problem.col == rendered(obj).text.splitlines()[obj_line - 1].index("sidecars") + 1
    assert problem.message == "unknown field 'sidecars': the schema does not define it"


def test_several_unknown_fields_are_reported_one_each() -> None:
    obj = deployment()
    obj["spec"]["color"] = "blue"
    obj["spec"]["size"] = 3
    assert sorted(p.field for p in check([rendered(obj)]).problems) == ["spec.color", "spec.size"]


def test_strict_is_about_unknown_fields_only() -> None:
    obj = deployment()
    obj["spec"]["color"] = "blue"
    assert [p.field for p in check([rendered(obj)]).problems] == ["spec.color"]
    assert check([rendered(obj)], Options(strict=False)).problems == []
    obj["spec"]["paused"] = "yes"
    assert [p.field for p in check([rendered(obj)], Options(strict=False)).problems] == ["spec.paused"]


def test_waivers_are_per_endpoint_and_per_policy() -> None:
    objects = endpoint_objects()
    for o in objects[:2]:
        scoring(o)["image"] = "acr.azurecr.io/scoring/demo:latest"
    other = deployment("other-blue")
    other["metadata"]["labels"]["endpointgen.io/endpoint"] = "other"
    scoring(other)["image"] = "acr.azurecr.io/scoring/demo:latest"
    scoring(objects[0])["securityContext"]["privileged"] = True
    reason = "nightly builds on purpose"
    report = check([rendered(o, f"f{i}.yaml") for i, o in enumerate(objects + [other])],
                   Options(ignore_missing_schemas=True), {"demo": {"image-pinned": reason}})
    assert sorted((p.path, p.rule, p.waiver) for p in report.waived) == [("f0.yaml", "image-pinned", reason),
                                                                         ("f1.yaml", "image-pinned", reason)]
    assert sorted((p.path, p.rule) for p in report.problems) == [("f0.yaml", "pss-privileged"),
                                                                 ("f6.yaml", "image-pinned")]
    assert report.invalid == {"f0.yaml", "f6.yaml"}
    assert report.summary() == ("Summary: 7 objects in 7 files - valid: 5, invalid: 2, skipped: 0, waived findings: 2")


def test_waivers_never_cover_api_server_rules() -> None:
    obj = deployment()
    scoring(obj)["resources"]["requests"]["cpu"] = "lots"
    report = check([rendered(obj)], Options(ignore_missing_schemas=True), {"demo": {"quantities": "no"}})
    assert [(p.rule, p.waiver) for p in report.problems] == [("quantities", "")]


def test_skipped_kinds_are_context_for_cross_object_rules() -> None:
    objects = endpoint_objects()
    objects[0]["spec"]["replicas"] = 2  # managed by the HPA: a finding on a skipped Deployment
    objects[0]["spec"]["color"] = "blue"
    report = check([rendered(o, f"f{i}.yaml") for i, o in enumerate(objects)],
                   Options(locations=[str(CRD_SCHEMAS)], skip_kinds=frozenset({"Deployment", "Service"})))
    assert report.problems == []
    assert (report.objects, report.skipped) == (6, 4)
    report = check([rendered(o, f"f{i}.yaml") for i, o in enumerate(objects)], Options(locations=[str(CRD_SCHEMAS)]))
    assert sorted(p.rule for p in report.problems) == ["no-replicas-under-hpa", "schema"]


@pytest.mark.parametrize("http", [["not-a-route"], "not-a-list", [{"route": [{"destination": "x"}, 7]}]])
def test_malformed_objects_are_reported_not_a_crash(http: Any) -> None:
    objects = endpoint_objects("key")
    objects[5]["spec"]["http"] = http  # the VirtualService: its CRD schema is ignored below
    objects[6]["spec"] = "not-a-spec"  # the AuthorizationPolicy
    objects[0]["spec"]["template"]["spec"]["containers"] = ["not-a-container"]
    objects[4]["metadata"]["namespace"] = ["not", "a", "name"]  # the HPA
    report = check([rendered(o, f"f{i}.yaml") for i, o in enumerate(objects)], Options(ignore_missing_schemas=True))
    rules = sorted((p.path, p.rule) for p in report.problems if p.rule != "schema-missing")
    assert ("f0.yaml", "malformed-object") in rules
    assert ("f5.yaml", "auth-objects-present") in rules  # the malformed AuthorizationPolicy does not count
    assert {path for path, rule in rules if rule == "schema"} == {"f0.yaml", "f4.yaml"}
    [malformed] = [p for p in report.problems if p.rule == "malformed-object"]
    assert (malformed.line, malformed.col, malformed.field) == (1, 1, "")
    assert malformed.message.startswith("the API-server rules and policies cannot check this object")


def test_missing_schema_is_a_problem_unless_ignored() -> None:
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    [problem] = check([rendered(obj)]).problems
    assert problem.rule == "schema-missing"
    assert problem.message.startswith(f"no schema for example.com/v1 Widget (looked in: bundled Kubernetes {K8S} "
                                      f"schemas, {CRD_SCHEMAS})")
    assert check([rendered(obj)], Options(locations=[str(CRD_SCHEMAS)], ignore_missing_schemas=True)).problems == []


def test_schema_violations_compile_each_schema_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []
    original = SchemaStore._compile

    def counting(self: SchemaStore, api_version: str, kind: str) -> Any:
        calls.append((api_version, kind))
        return original(self, api_version, kind)

    monkeypatch.setattr(SchemaStore, "_compile", counting)
    schema_store.cache_clear()
    objects = [rendered(o) for o in endpoint_objects("key") * 3]
    assert schema_violations(objects, K8S, Options(locations=[str(CRD_SCHEMAS)])) == []
    assert sorted(calls) == sorted({(o.obj["apiVersion"], o.obj["kind"]) for o in objects})


# --- schema stores and locations ---------------------------------------------------------------------------------


def test_builtin_and_crd_schemas() -> None:
    store = SchemaStore(K8S, [str(CRD_SCHEMAS)])
    assert store.validator("apps/v1", "Deployment") is store.validator("apps/v1", "Deployment")
    assert store.validator("v1", "Service") is not None
    assert store.validator("autoscaling/v2", "HorizontalPodAutoscaler") is not None
    assert store.validator("networking.istio.io/v1", "VirtualService") is not None
    assert store.validator("kustomize.toolkit.fluxcd.io/v1", "Kustomization") is not None
    assert store.validator("apps/v1beta1", "Deployment") is None  # removed long ago
    assert store.validator("networking.istio.io/v9", "VirtualService") is None
    assert SchemaStore(K8S, []).validator("networking.istio.io/v1", "VirtualService") is None


def test_crd_in_a_k8s_io_group_falls_back_to_the_locations(tmp_path: Path) -> None:
    folder = tmp_path / "schemas" / "gateway.networking.k8s.io"
    folder.mkdir(parents=True)
    (folder / "httproute_v1.json").write_text(json.dumps({"type": "object", "required": ["spec"]}))
    store = SchemaStore(K8S, [str(tmp_path / "schemas")])
    validator = store.validator("gateway.networking.k8s.io/v1", "HTTPRoute")
    assert validator is not None and not validator.is_valid({"kind": "HTTPRoute"})


def test_x_k8s_io_groups_are_not_builtin(tmp_path: Path) -> None:
    assert SchemaStore(K8S, []).validator("secrets-store.csi.x-k8s.io/v1", "SecretProviderClass") is None
    assert SchemaStore(K8S, [str(CRD_SCHEMAS)]).validator("secrets-store.csi.x-k8s.io/v1",
                                                          "SecretProviderClass") is not None


def test_unusable_schemas_are_errors(tmp_path: Path) -> None:
    folder = tmp_path / "example.com"
    folder.mkdir()
    (folder / "broken_v1.json").write_text("{")
    (folder / "uncompilable_v1.json").write_text(json.dumps({"type": "no-such-type"}))
    (folder / "remote_v1.json").write_text(json.dumps({"$ref": "https://example.com/other.json"}))
    store = SchemaStore(K8S, [str(tmp_path)])
    with pytest.raises(SchemaError, match=r"cannot read schema .*broken_v1\.json"):
        store.validator("example.com/v1", "Broken")
    with pytest.raises(SchemaError, match=r"schema .*uncompilable_v1\.json for example\.com/v1/Uncompilable does not"):
        store.validator("example.com/v1", "Uncompilable")
    with pytest.raises(SchemaError, match="not available offline"):
        store.validator("example.com/v1", "Remote")


def test_expand_every_variable() -> None:
    template = ("{{ .NormalizedKubernetesVersion }}{{ .StrictSuffix }}/{{ .Group }}/{{ .ResourceKind }}"
                "{{ .KindSuffix }}_{{.ResourceAPIVersion}}.json")
    assert expand(template, "networking.istio.io", "v1", "VirtualService", "1.33", True) == \
        "v1.33.0-strict/networking.istio.io/virtualservice-networking-v1_v1.json"
    assert expand(template, "", "v1", "Service", "1.33.2", False) == "v1.33.2//service-v1_v1.json"


def test_plain_locations_get_the_default_layout() -> None:
    assert as_template("/schemas/") == f"/schemas/{DEFAULT_TEMPLATE}"
    assert as_template("https://example.com/crds") == f"https://example.com/crds/{DEFAULT_TEMPLATE}"
    assert as_template("/schemas/one.json") == "/schemas/one.json"
    assert expand("/schemas", "keda.sh", "v1alpha1", "ScaledObject", K8S, True) == \
        "/schemas/keda.sh/scaledobject_v1alpha1.json"


def test_unknown_template_variable() -> None:
    with pytest.raises(SchemaError, match=r"unknown variable \{\{ \.Kind \}\} in schema location /s/\{\{ \.Kind \}\}"):
        expand("/s/{{ .Kind }}.json", "keda.sh", "v1alpha1", "ScaledObject", K8S, True)


def test_builtin_dir_picks_the_newest_bundled_version_not_newer_than_asked() -> None:
    newest = builtin_versions()[-1]
    assert builtin_dir("1.33", True).name == "v1.33.0-local-strict"
    assert builtin_dir("1.33.4", False).name == "v1.33.0-local"
    assert builtin_dir("1.99", True).name == f"v{newest[0]}.{newest[1]}.0-local-strict"
    with pytest.raises(SchemaError, match="no bundled Kubernetes schemas for 1.2"):
        builtin_dir("1.2", True)


class _Server:
    def __init__(self, root: Path) -> None:
        self.requests: list[str] = []
        requests = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self) -> None:  # noqa: N802
                requests.append(self.path)
                super().do_GET()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Server]:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    s = _Server(CRD_SCHEMAS)
    try:
        yield s
    finally:
        s.stop()


def test_http_schemas_and_404s_are_cached(server: _Server, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = SchemaStore(K8S, [server.url], cache_dir=cache)
    assert first.validator("networking.istio.io/v1", "VirtualService") is not None
    assert first.validator("example.com/v1", "Widget") is None  # a 404: no schema, not an error
    assert sorted(server.requests) == ["/example.com/widget_v1.json", "/networking.istio.io/virtualservice_v1.json"]
    server.stop()
    second = SchemaStore(K8S, [server.url], cache_dir=cache)
    assert second.validator("networking.istio.io/v1", "VirtualService") is not None
    assert second.validator("example.com/v1", "Widget") is None
    assert len(server.requests) == 2
    with pytest.raises(SchemaError, match="cannot fetch schema"):
        SchemaStore(K8S, [server.url], cache_dir=tmp_path / "empty-cache").validator("keda.sh/v1alpha1", "ScaledObject")


# --- run_kubeconform, directly: the pinned kubeconform (built by make tools, or here on first use) ---------------


def test_kubeconform_results_map_back_to_objects() -> None:
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    typed = deployment("b")
    typed["spec"]["template"]["spec"]["containers"][0]["name"] = 7
    typed["metadata"]["annotations"] = {"a/b": 3}
    extra = deployment("c")
    extra["spec"]["replicaz"] = 1
    objects = [rendered(widget, "rendered/dev/a.yaml"), rendered(typed, "rendered/dev/b.yaml"),
               rendered(extra, "rendered/dev/c.yaml"), rendered(deployment("d"), "rendered/dev/d.yaml")]
    found = {(o.path, path, rule): message for o, path, message, rule in run_kubeconform(objects, K8S, Options())}
    assert set(found) == {
        ("rendered/dev/a.yaml", (), "schema-missing"),
        ("rendered/dev/b.yaml", ("spec", "template", "spec", "containers", 0, "name"), "schema"),
        ("rendered/dev/b.yaml", ("metadata", "annotations", "a/b"), "schema"),
        ("rendered/dev/c.yaml", ("spec", "replicaz"), "schema"),
    }
    assert found[("rendered/dev/a.yaml", (), "schema-missing")] == "could not find schema for Widget (kubeconform)"
    assert found[("rendered/dev/c.yaml", ("spec", "replicaz"), "schema")] == \
        "unknown field 'replicaz': additional property not allowed (kubeconform)"
    assert all(message.endswith("(kubeconform)") for message in found.values())


def test_kubeconform_reads_the_bundled_kubernetes_schemas_offline(tmp_path: Path) -> None:
    """kubernetes-validate's schemas refer to https://kubernetes.io/api/_definitions.json; the copies kubeconform
    gets refer to the file beside them, so a nested field deep in the definitions is still checked."""
    bad = deployment()
    bad["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": {"nested": 1}}}
    found = run_kubeconform([rendered(bad)], K8S, Options())
    [(_, path, message, rule)] = found  # the quantity's oneOf: one finding naming each alternative
    assert (path, rule) == (("spec", "template", "spec", "containers", 0, "resources", "requests", "cpu"), "schema")
    assert "want null or string" in message and "want null or number" in message
    offline_builtin_schemas(builtin_dir(K8S, True), tmp_path / "schemas", [rendered(deployment())])
    text = (tmp_path / "schemas" / "deployment-apps-v1.json").read_text()
    assert "kubernetes.io" not in text and '"_definitions.json#' in text


def test_kubeconform_valid_objects_have_no_findings() -> None:
    assert run_kubeconform([rendered(deployment())], K8S, Options()) == []


def test_a_kubeconform_that_prints_no_report_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "kubeconform"
    script.write_text("#!/bin/sh\necho '[1, 2]'\nexit 1\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("ENDPOINTGEN_KUBECONFORM", str(script))
    with pytest.raises(KubeconformError, match="kubeconform printed no JSON report"):
        run_kubeconform([rendered(deployment())], K8S, Options())


def test_engines_disagree_is_reported_per_object() -> None:
    a, b, c = (rendered(deployment(name), f"{name}.yaml") for name in "abc")
    builtin = [(a, ("spec",), "bad", "schema"), (c, ("spec",), "bad", "schema"),
               (b, (), "privileged", "pss-privileged")]
    theirs = [(b, ("spec", "x"), "worse (kubeconform)", "schema"), (c, (), "also bad (kubeconform)", "schema")]
    found = disagreements([a, b, c], builtin, theirs)
    assert [(o.path, rule) for o, _, _, rule in found] == [("a.yaml", "engines-disagree"),
                                                           ("b.yaml", "engines-disagree")]
    assert found[0][2] == "the schema engines disagree: built-in says spec: bad; kubeconform says valid"
    assert found[1][2] == ("the schema engines disagree: built-in says valid; kubeconform says spec.x: worse "
                           "(kubeconform)")
