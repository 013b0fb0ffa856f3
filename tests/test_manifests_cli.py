"""`endpointgen validate` on rendered manifests: broken files, options, waivers, output formats, engines.

Most tests copy the example repo (environments/, rendered/ and clusters/) into tmp_path, break one rendered
file by hand and run `validate --rendered`; expected positions are computed from the edited file itself.
"""

from __future__ import annotations

import http.server
import json
import shutil
import stat
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from generator.check import gotools
from generator.cli import cli

PROJECT = Path(__file__).resolve().parent.parent
CRD_SCHEMAS = PROJECT / "schema" / "crds"

SENTIMENT = "rendered/dev/endpoints/sentiment"
BLUE = f"{SENTIMENT}/deployment-sentiment-blue.yaml"
BLUE_SUBJECT = "Deployment ml-endpoints-dev/sentiment-blue"
VS = f"{SENTIMENT}/virtualservice-sentiment.yaml"
VS_SUBJECT = "VirtualService ml-endpoints-dev/sentiment"
SERVICE = f"{SENTIMENT}/service-sentiment-blue.yaml"
CLASSIFIER = "rendered/dev/endpoints/image-classifier/deployment-image-classifier-resnet-v3.yaml"
CLASSIFIER_SUBJECT = "Deployment ml-endpoints-dev/image-classifier-resnet-v3"
SCORING = "        - name: scoring\n"
MEMORY_REQUEST = "cpu: 100m\n              memory: 512Mi"  # the scoring container's request (its limit is 512Mi too)  # the scoring container of a rendered Deployment (after the init containers)


# --- helpers ----------------------------------------------------------------------------------------


@pytest.fixture
def rendered_repo(tmp_path: Path) -> Path:
    """A private copy of the example repo with its committed rendered/ and clusters/ output."""
    root = tmp_path / "repo"
    for top in ("environments", "rendered", "clusters"):
        shutil.copytree(PROJECT / top, root / top)
    return root


def validate(root: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    """`endpointgen --root ROOT validate ARGS`, with the vendored CRD schemas unless `env` says otherwise."""
    environ = {"ENDPOINTGEN_SCHEMA_LOCATION": str(CRD_SCHEMAS), **(env or {})}
    return CliRunner().invoke(cli, ["--root", str(root), "validate", *args], catch_exceptions=False, env=environ)


def json_problems(result: Result) -> list[dict[str, Any]]:
    problems = json.loads(result.stdout)
    assert isinstance(problems, list)
    return problems


def with_rule(problems: list[dict[str, Any]], rule: str) -> list[dict[str, Any]]:
    return [p for p in problems if p["rule"] == rule]


def replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def replace_after(path: Path, anchor: str, old: str, new: str) -> None:
    """Replace the first `old` that follows the one occurrence of `anchor`."""
    text = path.read_text(encoding="utf-8")
    assert text.count(anchor) == 1, f"{anchor!r} occurs {text.count(anchor)} times in {path}"
    at = text.index(old, text.index(anchor))
    path.write_text(text[:at] + new + text[at + len(old):], encoding="utf-8")


def position(path: Path, anchor: str, token: str) -> tuple[int, int]:
    """1-based line and column of the first `token` at or after the one occurrence of `anchor`."""
    text = path.read_text(encoding="utf-8")
    assert text.count(anchor) == 1, f"{anchor!r} occurs {text.count(anchor)} times in {path}"
    offset = text.index(token, text.index(anchor))
    return text.count("\n", 0, offset) + 1, offset - text.rfind("\n", 0, offset)


def object_files(root: Path, env: str | None = None) -> list[str]:
    """The rendered object files of the repo (kustomize kustomization.yaml files excluded)."""
    envs = [env] if env else sorted(p.name for p in (root / "environments").iterdir())
    found = []
    for name in envs:
        found += [p for p in (root / "rendered" / name).rglob("*.yaml") if p.name != "kustomization.yaml"]
        found += list((root / "clusters" / name).rglob("*.yaml"))
    return sorted(p.relative_to(root).as_posix() for p in found)


def summary(objects: int, files: int, valid: int, invalid: int, skipped: int, waived: int) -> str:
    return (f"Summary: {objects} objects in {files} files - valid: {valid}, invalid: {invalid}, "
            f"skipped: {skipped}, waived findings: {waived}")


# --- 1. the example output is valid ----------------------------------------------------------------


@pytest.mark.parametrize("mode", [[], ["--rendered"]], ids=["in-memory", "rendered"])
def test_every_example_object_passes(rendered_repo: Path, mode: list[str]) -> None:
    count = len(object_files(rendered_repo))
    result = validate(rendered_repo, *mode, "--summary")
    assert result.exit_code == 0, result.stderr
    assert summary(count, count, count, 0, 0, 0) in result.stdout
    assert f"{count} rendered object(s) pass" in result.stdout
    assert result.stderr == ""


def test_example_uses_crd_kinds_that_the_vendored_schemas_cover(rendered_repo: Path) -> None:
    """Guard for the test above: the example really exercises CRD schemas, not only built-in kinds."""
    kinds = set()
    for rel in object_files(rendered_repo):
        text = (rendered_repo / rel).read_text()
        kinds.add(next(line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("kind: ")))
    assert {"VirtualService", "DestinationRule", "AuthorizationPolicy", "Gateway", "Kustomization"} <= kinds
    result = validate(rendered_repo, "--rendered", env={"ENDPOINTGEN_SCHEMA_LOCATION": str(rendered_repo / "none")})
    assert result.exit_code == 1


# --- 2. broken manifests -----------------------------------------------------------------------------


@dataclass
class Broken:
    """One hand-made defect: how to make it, and where and how it must be reported."""

    id: str
    file: str
    edit: Callable[[Path], None]
    rule: str
    field: str
    subject: str
    anchor: str  # the expected line:col is that of `token` at or after this unique text of the edited file
    token: str
    message: str  # a fragment of the expected message


def _add_secret(root: Path) -> None:
    (root / SENTIMENT / "secret-sentiment-keys.yaml").write_text(
        "# added by hand\napiVersion: v1\nkind: Secret\nmetadata:\n  name: sentiment-keys\n"
        "  namespace: ml-endpoints-dev\ndata:\n  primary: c2VjcmV0\n")


def _spec_line(line: str) -> Callable[[Path], None]:
    """Add a line at the top of a Deployment's spec."""
    return lambda r: replace_once(r / BLUE, "  revisionHistoryLimit: 5\n", f"{line}\n  revisionHistoryLimit: 5\n")


BROKEN = [
    Broken("unknown-field-deployment", BLUE, _spec_line("  surgeLimit: 3"),
           "schema", "spec.surgeLimit", BLUE_SUBJECT, "  surgeLimit: 3", "surgeLimit", "unknown field 'surgeLimit'"),
    Broken("unknown-field-virtualservice", VS,
           lambda r: replace_once(r / VS, "  gateways:\n", "  retryPolicy: fast\n  gateways:\n"),
           "schema", "spec.retryPolicy", VS_SUBJECT, "  retryPolicy: fast", "retryPolicy",
           "unknown field 'retryPolicy'"),
    Broken("wrong-type", BLUE, _spec_line("  replicas: two"),
           "schema", "spec.replicas", BLUE_SUBJECT, "  replicas: two", "two", "integer"),
    Broken("container-without-name", BLUE,
           lambda r: replace_once(r / BLUE, SCORING + "          image: ", "        - image: "),
           "schema", "spec.template.spec.containers[0]", BLUE_SUBJECT, '        - image: "mlacrdev.azurecr.io/scoring',
           "image", '"name" is a required property'),
    Broken("service-port-without-port", SERVICE,
           lambda r: replace_once(r / SERVICE, "      port: 80\n", ""),
           "schema", "spec.ports[0]", "Service ml-endpoints-dev/sentiment-blue", "  - name: http", "name",
           '"port" is a required property'),
    Broken("liveness-success-threshold", BLUE,
           lambda r: replace_after(r / BLUE, "        livenessProbe:", "successThreshold: 1", "successThreshold: 3"),
           "probes", "spec.template.spec.containers[0].livenessProbe.successThreshold", BLUE_SUBJECT,
           "successThreshold: 3", "3", "successThreshold must be 1, got 3"),
    Broken("privileged", BLUE,
           lambda r: replace_after(r / BLUE, SCORING, "            allowPrivilegeEscalation: false\n",
                                   "            allowPrivilegeEscalation: false\n            privileged: true\n"),
           "pss-privileged", "spec.template.spec.containers[0].securityContext.privileged", BLUE_SUBJECT,
           "privileged: true", "true", "privileged containers are not allowed"),
    Broken("privilege-escalation", BLUE,
           lambda r: replace_after(r / BLUE, SCORING, "allowPrivilegeEscalation: false",
                                   "allowPrivilegeEscalation: true"),
           "pss-privilege-escalation", "spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation",
           BLUE_SUBJECT, "allowPrivilegeEscalation: true", "true", "allowPrivilegeEscalation must be false"),
    Broken("weights-sum-to-90", VS,
           lambda r: replace_once(r / VS, "weight: 50\n      timeout: 60s", "weight: 40\n      timeout: 60s"),
           "traffic-weights", "spec.http[2].route", VS_SUBJECT, "  - name: weighted", "- destination",
           "weights [50, 40] must be integers summing to 100"),
    Broken("route-to-missing-host", VS,
           lambda r: replace_after(r / VS, "  - name: pinned-blue", "host: sentiment-blue.",
                                   "host: sentiment-purple."),
           "route-destination-exists", "spec.http[0].route[0].destination.host", VS_SUBJECT, "sentiment-purple",
           "sentiment-purple", "'sentiment-purple.ml-endpoints-dev.svc.cluster.local' is not a rendered Service"),
    Broken("replicas-under-hpa", BLUE, _spec_line("  replicas: 3"),
           "no-replicas-under-hpa", "spec.replicas", BLUE_SUBJECT, "  replicas: 3", "3",
           "ScaledObject sentiment-blue manages the scale"),
    Broken("gpu-request-differs-from-limit", CLASSIFIER,
           lambda r: replace_once(r / CLASSIFIER, 'limits:\n              memory: 8Gi\n              nvidia.com/gpu: "1"',
                                  'limits:\n              memory: 8Gi\n              nvidia.com/gpu: "2"'),
           "extended-resources", "spec.template.spec.containers[0].resources.requests.nvidia.com/gpu",
           CLASSIFIER_SUBJECT, 'nvidia.com/gpu: "1"', '"1"', "extended resource: requests must equal limits"),
    Broken("bad-quantity", BLUE,
           lambda r: replace_once(r / BLUE, MEMORY_REQUEST, MEMORY_REQUEST.replace("512Mi", "512MB")),
           "quantities", "spec.template.spec.containers[0].resources.requests.memory", BLUE_SUBJECT,
           "memory: 512MB", "512MB", "'512MB' is not a valid quantity"),
    Broken("selector-does-not-match-template", BLUE,
           lambda r: replace_after(r / BLUE, "  revisionHistoryLimit: 5\n  selector:\n", "endpointgen.io/version: blue",
                                   "endpointgen.io/version: purple"),
           "selector-matches-template", "spec.selector.matchLabels.endpointgen.io/version", BLUE_SUBJECT,
           "endpointgen.io/version: purple", "purple", "does not match the pod template labels"),
    Broken("key-auth-without-authorization-policy", VS,
           lambda r: (r / SENTIMENT / "authorizationpolicy-sentiment-require-key.yaml").unlink(),
           "auth-objects-present", "metadata.annotations.endpointgen.io/auth", VS_SUBJECT, "endpointgen.io/auth: key",
           "key", "CUSTOM AuthorizationPolicy is missing"),
    Broken("secret-with-data", f"{SENTIMENT}/secret-sentiment-keys.yaml", _add_secret,
           "no-secret-material", "", "Secret ml-endpoints-dev/sentiment-keys", "apiVersion: v1", "apiVersion",
           "never go into git"),
    Broken("latest-image", BLUE,
           lambda r: replace_once(r / BLUE, "scoring/sentiment:1.4.1", "scoring/sentiment:latest"),
           "image-pinned", "spec.template.spec.containers[0].image", BLUE_SUBJECT,
           'image: "mlacrdev.azurecr.io/scoring/sentiment:latest"', '"mlacrdev.azurecr.io', "is not pinned"),
    Broken("two-documents-in-one-file", SERVICE,
           lambda r: (r / SERVICE).write_text((r / SERVICE).read_text() + "---\napiVersion: v1\nkind: ConfigMap\n"
                                              "metadata:\n  name: extra\n"),
           "one-object-per-file", "", "", "---\n", "apiVersion", "expected exactly one object, found 2 document(s)"),
]


@pytest.mark.parametrize("case", BROKEN, ids=[c.id for c in BROKEN])
def test_broken_manifest_is_reported_where_it_is(rendered_repo: Path, case: Broken) -> None:
    case.edit(rendered_repo)
    result = validate(rendered_repo, "--rendered", "--env", "dev", "--output", "json")
    assert result.exit_code == 1
    problems = json_problems(result)
    line, col = position(rendered_repo / case.file, case.anchor, case.token)
    expected = {"path": case.file, "line": line, "col": col, "field": case.field, "subject": case.subject,
                "rule": case.rule, "waiver": ""}
    matching = [p for p in problems if {k: p[k] for k in expected} == expected]
    assert matching, f"no problem {expected}; got:\n" + "\n".join(map(str, problems))
    assert any(case.message in p["message"] for p in matching), matching
    assert all(p["path"] == case.file or p["rule"] != case.rule for p in problems), problems


def test_broken_manifest_text_output(rendered_repo: Path) -> None:
    replace_once(rendered_repo / BLUE, MEMORY_REQUEST, MEMORY_REQUEST.replace("512Mi", "512MB"))
    result = validate(rendered_repo, "--rendered", "--env", "dev")
    assert result.exit_code == 1
    line, col = position(rendered_repo / BLUE, "memory: 512MB", "512MB")
    assert (f"{BLUE}:{line}:{col}: spec.template.spec.containers[0].resources.requests.memory: '512MB' is not a "
            f"valid quantity [quantities] ({BLUE_SUBJECT}; from environments/dev/endpoints/sentiment.yaml versions[0])"
            ) in result.stderr.splitlines()  # a value no spec sets (edited in): found where it is, the spec named
    assert "endpointgen: 1 problem(s) found in rendered manifests" in result.stderr
    assert "ok:" not in result.stdout


def test_untouched_environment_is_not_blamed(rendered_repo: Path) -> None:
    replace_once(rendered_repo / BLUE, MEMORY_REQUEST, MEMORY_REQUEST.replace("512Mi", "512MB"))
    assert validate(rendered_repo, "--rendered", "--env", "prod").exit_code == 0
    assert validate(rendered_repo, "--env", "dev").exit_code == 0  # in memory: the specs still render fine


def test_malformed_object_is_a_problem_not_a_crash(rendered_repo: Path) -> None:
    """Wrong shapes the rules cannot walk (a port that is a number, a Deployment without a name)."""
    replace_once(rendered_repo / BLUE, "            - name: http\n              containerPort: 5001\n"
                 "              protocol: TCP\n", "            - 5001\n")
    replace_once(rendered_repo / CLASSIFIER, "  name: image-classifier-resnet-v3\n  namespace", "  namespace")
    result = validate(rendered_repo, "--rendered", "--env", "dev", "--output", "json")
    assert result.exit_code == 1
    problems = json_problems(result)
    assert {(p["path"], p["rule"]) for p in with_rule(problems, "malformed-object")} == {(BLUE, "malformed-object")}
    assert any(p["path"] == BLUE and p["field"] == "spec.template.spec.containers[0].ports[0]" for p in problems)
    assert [(p["path"], p["field"]) for p in with_rule(problems, "object-name")] == [(CLASSIFIER, "metadata.name")]
    # the HPA of the (still existing) blue Deployment is not blamed for its malformed target
    assert not [p for p in with_rule(problems, "hpa-target-exists") if "sentiment-blue" in p["path"]]


# --- 3. options: strictness, skipping, missing schemas, schema locations ------------------------------


def _unknown_deployment_field(root: Path) -> None:
    replace_once(root / BLUE, "  revisionHistoryLimit: 5\n", "  revisionHistoryLimit: 5\n  surgeLimit: 3\n")


def test_no_strict_accepts_an_unknown_field_that_strict_rejects(rendered_repo: Path) -> None:
    _unknown_deployment_field(rendered_repo)
    strict = validate(rendered_repo, "--rendered", "--env", "dev", "--strict", "--output", "json")
    assert strict.exit_code == 1
    assert [p["field"] for p in json_problems(strict)] == ["spec.surgeLimit"]
    assert validate(rendered_repo, "--rendered", "--env", "dev", "--no-strict").exit_code == 0


def test_no_strict_still_checks_types(rendered_repo: Path) -> None:
    replace_once(rendered_repo / BLUE, "  revisionHistoryLimit: 5\n", "  revisionHistoryLimit: five\n")
    result = validate(rendered_repo, "--rendered", "--env", "dev", "--no-strict", "--output", "json")
    assert result.exit_code == 1
    assert [p["field"] for p in json_problems(result)] == ["spec.revisionHistoryLimit"]


def test_skip_a_kind(rendered_repo: Path) -> None:
    _unknown_deployment_field(rendered_repo)
    count = len(object_files(rendered_repo, "dev"))
    deployments = sum("/deployment-" in rel for rel in object_files(rendered_repo, "dev"))
    assert deployments == 4  # three versions and the key-auth authorizer
    result = validate(rendered_repo, "--rendered", "--env", "dev", "--skip", "Deployment", "--summary")
    assert result.exit_code == 0, result.stderr
    # the HPAs still find their (skipped) Deployments: skipping a kind does not make it disappear
    assert summary(count, count, count - deployments, 0, deployments, 0) in result.stdout


def test_skip_accepts_a_comma_separated_list(rendered_repo: Path) -> None:
    _unknown_deployment_field(rendered_repo)
    replace_once(rendered_repo / VS, "  gateways:\n", "  retryPolicy: fast\n  gateways:\n")
    assert validate(rendered_repo, "--rendered", "--env", "dev", "--skip", "Deployment").exit_code == 1
    result = validate(rendered_repo, "--rendered", "--env", "dev", "--skip", "Deployment,VirtualService", "--summary")
    assert result.exit_code == 0, result.stderr
    assert "skipped: 6," in result.stdout  # 4 Deployments (3 versions, the authorizer) and 2 VirtualServices


def test_skipped_service_is_still_a_route_destination(rendered_repo: Path) -> None:
    result = validate(rendered_repo, "--rendered", "--env", "dev", "--skip", "Service", "--output", "json")
    assert result.exit_code == 0, result.stdout
    assert json_problems(result) == []


def test_kind_without_schema_is_reported_not_skipped(rendered_repo: Path, tmp_path: Path) -> None:
    empty = tmp_path / "no-schemas"
    empty.mkdir()
    result = validate(rendered_repo, "--rendered", "--env", "dev", "--output", "json", "--summary",
                      env={"ENDPOINTGEN_SCHEMA_LOCATION": str(empty)})
    assert result.exit_code == 1
    problems = json_problems(result)
    builtin = ("v1", "apps/v1", "autoscaling/v2", "policy/v1", "networking.k8s.io/v1")
    crd_files = [rel for rel in object_files(rendered_repo, "dev")
                 if yaml.safe_load((rendered_repo / rel).read_text())["apiVersion"] not in builtin]
    assert sorted(p["path"] for p in problems) == crd_files
    assert {p["rule"] for p in problems} == {"schema-missing"}
    vs = next(p for p in problems if p["path"] == VS)
    assert vs["message"].startswith("no schema for networking.istio.io/v1 VirtualService")
    assert str(empty) in vs["message"] and "--ignore-missing-schemas" in vs["message"]
    assert (vs["line"], vs["col"], vs["subject"]) == (*position(rendered_repo / VS, "apiVersion", "apiVersion"),
                                                      VS_SUBJECT)
    assert "skipped: 0," in result.stderr  # a missing schema is a failure, never a silent skip
    ignored = validate(rendered_repo, "--rendered", "--env", "dev", "--ignore-missing-schemas",
                       env={"ENDPOINTGEN_SCHEMA_LOCATION": str(empty)})
    assert ignored.exit_code == 0, ignored.stderr


def test_without_schema_location_the_repo_schema_crds_folder_comes_first(rendered_repo: Path) -> None:
    env = {"ENDPOINTGEN_SCHEMA_LOCATION": ""}
    assert validate(rendered_repo, "--env", "dev", env=env).exit_code == 0  # the schemas vendored with endpointgen
    mine = rendered_repo / "schema" / "crds" / "networking.istio.io"
    mine.mkdir(parents=True)
    (mine / "virtualservice_v1.json").write_text(json.dumps({"type": "object", "required": ["house-rule"]}))
    result = validate(rendered_repo, "--env", "dev", env=env)
    assert result.exit_code == 1
    assert '"house-rule" is a required property' in result.stderr


def test_schema_location_option_overrides_the_environment_variable(rendered_repo: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = validate(rendered_repo, "--env", "dev", "--schema-location", str(CRD_SCHEMAS),
                      env={"ENDPOINTGEN_SCHEMA_LOCATION": str(tmp_path / "empty")})
    assert result.exit_code == 0, result.stderr


def test_kubeconform_template_location(rendered_repo: Path) -> None:
    template = f"{CRD_SCHEMAS}/{{{{ .Group }}}}/{{{{ .ResourceKind }}}}_{{{{ .ResourceAPIVersion }}}}.json"
    assert "{{ .Group }}" in template
    result = validate(rendered_repo, "--rendered", "--schema-location", template,
                      env={"ENDPOINTGEN_SCHEMA_LOCATION": ""})
    assert result.exit_code == 0, result.stderr
    # the template is really used: one that names no existing file finds no CRD schema
    wrong = f"{CRD_SCHEMAS}/{{{{ .ResourceKind }}}}_{{{{ .ResourceAPIVersion }}}}.json"
    result = validate(rendered_repo, "--rendered", "--schema-location", wrong, "--output", "json")
    assert result.exit_code == 1
    assert {p["rule"] for p in json_problems(result)} == {"schema-missing"}


def test_several_locations_are_searched_in_order(rendered_repo: Path, tmp_path: Path) -> None:
    """A first location holding only the VirtualService schema (a broken-down copy) wins for that kind."""
    first = tmp_path / "first" / "networking.istio.io"
    first.mkdir(parents=True)
    schema = json.loads((CRD_SCHEMAS / "networking.istio.io" / "virtualservice_v1.json").read_text())
    schema["properties"]["spec"]["required"] = ["tcp"]  # a rule the real schema does not have
    (first / "virtualservice_v1.json").write_text(json.dumps(schema))
    result = validate(rendered_repo, "--rendered", "--env", "dev", "--schema-location", str(tmp_path / "first"),
                      "--schema-location", str(CRD_SCHEMAS), "--output", "json")
    assert result.exit_code == 1
    problems = json_problems(result)
    assert {p["subject"].split()[0] for p in problems} == {"VirtualService"}
    assert all('"tcp" is a required property' in p["message"] for p in problems)


def test_unknown_template_variable_is_a_clear_error(rendered_repo: Path) -> None:
    location = f"{CRD_SCHEMAS}/{{{{ .Group }}}}/{{{{ .Kind }}}}.json"
    result = validate(rendered_repo, "--schema-location", location)
    assert result.exit_code == 1
    assert result.stderr.startswith("endpointgen: error: unknown variable {{ .Kind }} in schema location")
    assert "Traceback" not in result.output


def test_broken_schema_file_is_a_clear_error(rendered_repo: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken" / "networking.istio.io"
    broken.mkdir(parents=True)
    (broken / "virtualservice_v1.json").write_text("{not json")
    result = validate(rendered_repo, "--schema-location", str(tmp_path / "broken"))
    assert result.exit_code == 1
    assert result.stderr.startswith("endpointgen: error: cannot read schema ")
    assert "virtualservice_v1.json" in result.stderr


class _SchemaServer:
    """The vendored CRD schemas over http on 127.0.0.1, recording the paths asked for."""

    def __init__(self) -> None:
        requests = self.requests = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(CRD_SCHEMAS), **kwargs)

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                requests.append(self.path)
                super().do_GET()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def schema_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[_SchemaServer]:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    server = _SchemaServer()
    try:
        yield server
    finally:
        server.stop()


def test_http_location_is_fetched_once_then_served_from_the_cache(rendered_repo: Path,
                                                                  schema_server: _SchemaServer) -> None:
    env = {"ENDPOINTGEN_SCHEMA_LOCATION": schema_server.url}
    first = validate(rendered_repo, "--rendered", "--summary", env=env)
    assert first.exit_code == 0, first.stderr
    fetched = sorted(schema_server.requests)
    assert "/networking.istio.io/virtualservice_v1.json" in fetched
    assert "/kustomize.toolkit.fluxcd.io/kustomization_v1.json" in fetched
    assert len(fetched) == len(set(fetched)), "a schema was fetched twice"  # dev and prod share each schema
    assert not any("deployment" in path for path in fetched)  # built-in kinds never leave the machine
    cache = rendered_repo / ".endpointgen-cache" / "schemas"
    assert len(list(cache.glob("*.json"))) == len(fetched)

    schema_server.stop()
    again = validate(rendered_repo, "--rendered", "--summary", env=env)
    assert again.exit_code == 0, again.stderr
    assert sorted(schema_server.requests) == fetched
    # the cached schemas still validate: an unknown VirtualService field is caught offline
    replace_once(rendered_repo / VS, "  gateways:\n", "  retryPolicy: fast\n  gateways:\n")
    broken = validate(rendered_repo, "--rendered", "--output", "json", env=env)
    assert broken.exit_code == 1
    assert [p["field"] for p in json_problems(broken)] == ["spec.retryPolicy"]


def test_http_location_that_cannot_be_reached_is_a_clear_error(rendered_repo: Path,
                                                               schema_server: _SchemaServer) -> None:
    url = schema_server.url
    schema_server.stop()
    result = validate(rendered_repo, "--env", "dev", env={"ENDPOINTGEN_SCHEMA_LOCATION": url})
    assert result.exit_code == 1
    assert result.stderr.startswith(f"endpointgen: error: cannot fetch schema {url}/")


def test_http_location_without_the_schema_reports_it_missing(rendered_repo: Path,
                                                             schema_server: _SchemaServer) -> None:
    result = validate(rendered_repo, "--env", "dev", "--output", "json",
                      env={"ENDPOINTGEN_SCHEMA_LOCATION": schema_server.url + "/nothing-here"})
    assert result.exit_code == 1
    assert {p["rule"] for p in json_problems(result)} == {"schema-missing"}


# --- 4. waivers ----------------------------------------------------------------------------------------

REASON = "dev follows the nightly scoring image on purpose"
SPEC = "environments/dev/endpoints/sentiment.yaml"


def _waive(root: Path, *policies: str) -> None:
    lines = "".join(f"  - policy: {p}\n    reason: \"{REASON}\"\n" for p in policies)
    with (root / SPEC).open("a", encoding="utf-8") as handle:
        handle.write("waivers:\n" + lines)


def _latest_in_spec(root: Path) -> None:
    replace_once(root / SPEC, "scoring/sentiment:1.4.1", "scoring/sentiment:latest")


def test_waived_policy_passes_and_shows_its_reason(rendered_repo: Path) -> None:
    _latest_in_spec(rendered_repo)
    assert validate(rendered_repo, "--env", "dev").exit_code == 1  # without the waiver
    _waive(rendered_repo, "image-pinned")
    result = validate(rendered_repo, "--env", "dev", "--summary")
    assert result.exit_code == 0, result.stderr
    waived = [line for line in result.stderr.splitlines() if "waived: " in line]
    assert len(waived) == 1
    line, col = position(rendered_repo / SPEC, "mlacrdev.azurecr.io/scoring/sentiment:latest", "mlacrdev")
    rendered_line, rendered_col = position(rendered_repo / BLUE, "mlacrdev.azurecr.io/scoring/sentiment:1.4.1", "mlacrdev")
    assert waived[0] == (  # at the spec line the user wrote, where it was rendered as context
        f"{SPEC}:{line}:{col}: versions[0].inference_config.image: image 'mlacrdev.azurecr.io/scoring/sentiment:latest' "
        f"is not pinned (use a version tag or a digest) [image-pinned] ({BLUE_SUBJECT}; in {BLUE}:{rendered_line}:"
        f"{rendered_col - 1} at spec.template.spec.containers[0].image) -- waived: {REASON}")
    assert "waived findings: 1" in result.stdout and "invalid: 0," in result.stdout


def test_waived_policy_in_json_output(rendered_repo: Path) -> None:
    _latest_in_spec(rendered_repo)
    _waive(rendered_repo, "image-pinned")
    result = validate(rendered_repo, "--env", "dev", "--output", "json")
    assert result.exit_code == 0
    [problem] = json_problems(result)
    assert (problem["path"], problem["rule"], problem["waiver"]) == (SPEC, "image-pinned", REASON)
    assert problem["field"] == "versions[0].inference_config.image"
    assert problem["context"].startswith(f"in {BLUE}:") and problem["context"].endswith(
        " at spec.template.spec.containers[0].image")


def test_waived_policy_in_github_output_is_an_escaped_notice(rendered_repo: Path) -> None:
    _latest_in_spec(rendered_repo)
    _waive(rendered_repo, "image-pinned")
    result = validate(rendered_repo, "--env", "dev", "--output", "github")
    assert result.exit_code == 0
    [notice] = [line for line in result.stderr.splitlines() if line.startswith("::")]
    assert notice.startswith(f"::notice file={SPEC},line=")
    assert notice.endswith(f"[image-pinned] waived: {REASON}")
    assert "::error" not in result.stderr


def test_waiver_applies_to_the_rendered_files_too(rendered_repo: Path) -> None:
    _waive(rendered_repo, "image-pinned")
    replace_once(rendered_repo / BLUE, "scoring/sentiment:1.4.1", "scoring/sentiment:latest")
    result = validate(rendered_repo, "--rendered", "--env", "dev", "--output", "json")
    assert result.exit_code == 0
    assert [(p["rule"], p["waiver"]) for p in json_problems(result)] == [("image-pinned", REASON)]


def test_waiving_one_policy_does_not_waive_another(rendered_repo: Path) -> None:
    _waive(rendered_repo, "image-pinned")
    replace_once(rendered_repo / BLUE, "scoring/sentiment:1.4.1", "scoring/sentiment:latest")
    replace_after(rendered_repo / BLUE, SCORING, "            allowPrivilegeEscalation: false\n",
                  "            allowPrivilegeEscalation: false\n            privileged: true\n")
    result = validate(rendered_repo, "--rendered", "--env", "dev", "--output", "json", "--summary")
    assert result.exit_code == 1
    problems = json_problems(result)
    assert {(p["rule"], p["waiver"]) for p in problems} == {("image-pinned", REASON), ("pss-privileged", "")}
    assert "invalid: 1, skipped: 0, waived findings: 1" in result.stderr


def test_waiver_of_one_endpoint_does_not_cover_another(rendered_repo: Path) -> None:
    _waive(rendered_repo, "image-pinned")
    replace_once(rendered_repo / CLASSIFIER, "scoring/image-classifier:2.0.0", "scoring/image-classifier:latest")
    result = validate(rendered_repo, "--rendered", "--env", "dev", "--output", "json")
    assert result.exit_code == 1
    assert [(p["path"], p["rule"], p["waiver"]) for p in json_problems(result)] == [(CLASSIFIER, "image-pinned", "")]


def test_api_server_rules_cannot_be_waived(rendered_repo: Path) -> None:
    _waive(rendered_repo, "image-pinned")
    replace_once(rendered_repo / BLUE, MEMORY_REQUEST, MEMORY_REQUEST.replace("512Mi", "512MB"))
    result = validate(rendered_repo, "--rendered", "--env", "dev", "--output", "json")
    assert result.exit_code == 1
    assert [(p["rule"], p["waiver"]) for p in json_problems(result)] == [("quantities", "")]


def test_unknown_policy_in_a_waiver_is_a_spec_error(rendered_repo: Path) -> None:
    _waive(rendered_repo, "image-pined")
    result = validate(rendered_repo, "--env", "dev")
    assert result.exit_code == 1
    line, col = position(rendered_repo / SPEC, "policy: image-pined", "image-pined")
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"{SPEC}:{line}:{col}: waivers[0].policy: unknown policy 'image-pined'")
    assert "image-pinned" in first  # the known ids are listed


# --- 5. output formats ---------------------------------------------------------------------------------


def _three_problems_in_two_files(root: Path) -> None:
    replace_once(root / BLUE, MEMORY_REQUEST, MEMORY_REQUEST.replace("512Mi", "512MB"))
    replace_once(root / BLUE, "scoring/sentiment:1.4.1", "scoring/sentiment:latest")
    replace_once(root / VS, "  gateways:\n", "  retryPolicy: fast\n  gateways:\n")


def test_json_output(rendered_repo: Path) -> None:
    _three_problems_in_two_files(rendered_repo)
    result = validate(rendered_repo, "--rendered", "--env", "dev", "--output", "json")
    assert result.exit_code == 1
    problems = json_problems(result)
    assert len(problems) == 3
    for p in problems:
        assert set(p) == {"path", "line", "col", "field", "message", "subject", "rule", "waiver", "context"}
        assert isinstance(p["line"], int) and isinstance(p["col"], int)
    assert sorted((p["path"], p["rule"]) for p in problems) == [(BLUE, "image-pinned"), (BLUE, "quantities"),
                                                                (VS, "schema")]
    assert result.stderr == ""


def test_junit_output(rendered_repo: Path) -> None:
    _three_problems_in_two_files(rendered_repo)
    result = validate(rendered_repo, "--rendered", "--env", "dev", "--output", "junit")
    assert result.exit_code == 1
    root = ET.fromstring(result.stdout.encode())
    assert root.tag == "testsuites"
    files = object_files(rendered_repo, "dev")
    suites = root.findall("testsuite")
    assert sorted(s.get("name") for s in suites) == files  # a suite per file, the valid ones included
    assert len(root.findall("testsuite/testcase")) == len(files)  # one object per file
    assert root.get("failures") == "3"
    assert len(root.findall(".//failure")) == 3
    by_name = {s.get("name"): s for s in suites}
    blue = by_name[BLUE]
    assert (blue.get("tests"), blue.get("failures")) == ("1", "2")
    [case] = blue.findall("testcase")
    assert case.get("name") == BLUE_SUBJECT
    assert sorted(f.get("type") for f in case.findall("failure")) == ["image-pinned", "quantities"]
    assert by_name[VS].find("testcase/failure").get("type") == "schema"
    assert by_name[SERVICE].find("testcase/failure") is None


def test_junit_output_when_valid(rendered_repo: Path) -> None:
    result = validate(rendered_repo, "--rendered", "--env", "dev", "--output", "junit")
    assert result.exit_code == 0
    root = ET.fromstring(result.stdout.encode())
    assert len(root.findall("testsuite")) == len(object_files(rendered_repo, "dev"))
    assert root.findall(".//failure") == []


def test_summary_counts(rendered_repo: Path) -> None:
    _three_problems_in_two_files(rendered_repo)
    _waive(rendered_repo, "image-pinned")
    files = object_files(rendered_repo, "dev")
    services = sum("/service-" in rel for rel in files)
    assert services == 4  # three versions and the key-auth authorizer
    result = validate(rendered_repo, "--rendered", "--env", "dev", "--summary", "--skip", "Service")
    assert result.exit_code == 1
    # blue: quantities (invalid) + image-pinned (waived); the VirtualService: an unknown field (invalid)
    assert summary(len(files), len(files), len(files) - services - 2, 2, services, 1) in result.stdout


def test_github_output(rendered_repo: Path) -> None:
    replace_once(rendered_repo / BLUE, MEMORY_REQUEST, MEMORY_REQUEST.replace("512Mi", "512MB"))
    result = validate(rendered_repo, "--rendered", "--env", "dev", "--output", "github")
    assert result.exit_code == 1
    line, col = position(rendered_repo / BLUE, "memory: 512MB", "512MB")
    assert f"::error file={BLUE},line={line},col={col}::" in result.stderr


# --- 6. the kubeconform engine: the pinned kubeconform (tools/kubeconform) -------------------------------------


def test_both_engines_agree_on_the_committed_output(rendered_repo: Path) -> None:
    result = validate(rendered_repo, "--rendered", "--engine", "both", "--summary")
    assert result.exit_code == 0, result.stderr
    count = len(object_files(rendered_repo))
    assert summary(count, count, count, 0, 0, 0) in result.stdout


def test_kubeconform_checks_bundled_and_vendored_schemas(rendered_repo: Path) -> None:
    """A Deployment (bundled Kubernetes schema) and a VirtualService (schema/crds) each with a wrong field: the
    real kubeconform finds both, located at the line endpointgen points to, merged with endpointgen's rules."""
    replace_once(rendered_repo / BLUE, "  revisionHistoryLimit: 5\n", "  replicas: two\n  revisionHistoryLimit: 5\n")
    replace_after(rendered_repo / BLUE, SCORING, "            allowPrivilegeEscalation: false\n",
                  "            allowPrivilegeEscalation: false\n            privileged: true\n")
    replace_once(rendered_repo / VS, "  gateways:\n", "  retryPolicy: fast\n  gateways:\n")
    result = validate(rendered_repo, "--rendered", "--env", "dev", "--engine", "kubeconform", "--output", "json")
    assert result.exit_code == 1
    problems = json_problems(result)
    schema = {p["path"]: p for p in with_rule(problems, "schema")}
    assert set(schema) == {BLUE, VS}
    line, col = position(rendered_repo / BLUE, "  replicas: two", "two")
    blue = schema[BLUE]
    assert (blue["line"], blue["col"], blue["field"], blue["subject"]) == (line, col, "spec.replicas", BLUE_SUBJECT)
    assert blue["message"] == "got string, want null or integer (kubeconform)"
    line, col = position(rendered_repo / VS, "  retryPolicy: fast", "retryPolicy")
    assert (schema[VS]["line"], schema[VS]["col"], schema[VS]["field"]) == (line, col, "spec.retryPolicy")
    assert [p["field"] for p in with_rule(problems, "no-replicas-under-hpa")] == ["spec.replicas"]
    assert [p["field"] for p in with_rule(problems, "pss-privileged")] == [
        "spec.template.spec.containers[0].securityContext.privileged"]


def test_kubeconform_no_strict_and_ignore_missing_schemas(rendered_repo: Path) -> None:
    replace_once(rendered_repo / BLUE, "  revisionHistoryLimit: 5\n", "  revisionHistoryLimit: 5\n  paused2: true\n")
    widget = rendered_repo / SENTIMENT / "widget.yaml"
    widget.write_text("apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n  namespace: ml-endpoints-dev\n")
    replace_once(rendered_repo / SENTIMENT / "kustomization.yaml", "resources:\n", "resources:\n  - widget.yaml\n")
    strict = json_problems(validate(rendered_repo, "--rendered", "--env", "dev", "--engine", "kubeconform",
                                    "--output", "json"))
    assert {(p["path"], p["rule"]) for p in strict} == {(BLUE, "schema"),
                                                        (f"{SENTIMENT}/widget.yaml", "schema-missing")}
    lenient = validate(rendered_repo, "--rendered", "--env", "dev", "--engine", "kubeconform", "--no-strict",
                       "--ignore-missing-schemas")
    assert lenient.exit_code == 0, lenient.stderr


def test_engines_disagreeing_fails_validation(rendered_repo: Path, tmp_path: Path) -> None:
    """The real kubeconform told to reject one kind (its -reject flag) disagrees with the built-in engine on
    exactly those objects, and --engine both fails on them."""
    wrapper = tmp_path / "kubeconform"
    wrapper.write_text(f'#!/bin/sh\nexec "{gotools.binary("kubeconform")}" -reject VirtualService "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    result = validate(rendered_repo, "--rendered", "--env", "dev", "--engine", "both", "--output", "json",
                      env={"ENDPOINTGEN_KUBECONFORM": str(wrapper)})
    assert result.exit_code == 1
    problems = json_problems(result)
    virtual_services = {f for f in object_files(rendered_repo, "dev") if "/virtualservice-" in f}
    assert {(p["path"], p["rule"]) for p in problems} == {(f, "engines-disagree") for f in virtual_services}
    assert len(virtual_services) == 2
    assert problems[0]["message"] == ("the schema engines disagree: built-in says valid; kubeconform says (object): "
                                      "prohibited resource kind VirtualService (kubeconform)")


def test_kubeconform_elsewhere_and_missing(rendered_repo: Path, tmp_path: Path) -> None:
    missing = validate(rendered_repo, "--env", "dev", "--engine", "kubeconform",
                       env={"ENDPOINTGEN_KUBECONFORM": str(tmp_path / "nowhere")})
    assert missing.exit_code == 1
    assert missing.stderr.strip() == (f"endpointgen: error: ENDPOINTGEN_KUBECONFORM={tmp_path / 'nowhere'} is not an "
                                      "executable file")
    script = tmp_path / "kubeconform"
    script.write_text("#!/bin/sh\necho 'flag provided but not defined: -x' >&2\nexit 1\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    broken = validate(rendered_repo, "--env", "dev", "--engine", "kubeconform",
                      env={"ENDPOINTGEN_KUBECONFORM": str(script)})
    assert broken.exit_code == 1
    assert broken.stderr.startswith("endpointgen: error: kubeconform printed no JSON report (exit 1): flag provided")


def test_kustomization_must_list_exactly_the_rendered_files(rendered_repo: Path) -> None:
    """A listed file that is gone (Flux's build would fail) or one it does not list fails validate --rendered."""
    gone = rendered_repo / "rendered/dev/endpoints/sentiment/service-sentiment-green.yaml"
    extra = rendered_repo / "rendered/dev/endpoints/sentiment/service-sentiment-extra.yaml"
    extra.write_text(gone.read_text().replace("name: sentiment-green", "name: sentiment-extra"))
    gone.unlink()
    result = validate(rendered_repo, "--rendered")
    assert result.exit_code == 1
    kustomization = "rendered/dev/endpoints/sentiment/kustomization.yaml"
    assert (f"{kustomization}:1:1: resources: lists 'service-sentiment-green.yaml', "
            "which does not exist [kustomization-resources]") in result.stderr
    assert (f"{kustomization}:1:1: resources: does not list "
            "'service-sentiment-extra.yaml', so Flux would not apply it "
            "[kustomization-resources]") in result.stderr
    found = [line for line in result.stderr.splitlines() if "[kustomization-resources]" in line]
    assert len(found) == 2 and all(line.startswith(f"{kustomization}:") for line in found), found
    assert validate(rendered_repo, "--rendered", "--env", "prod").exit_code == 0


def test_platform_kustomization_must_list_exactly_its_files(rendered_repo: Path) -> None:
    platform = rendered_repo / "rendered/dev/platform"
    gone = platform / "namespaces/ml-endpoints-dev/peerauthentication-default.yaml"
    gone.unlink()
    result = validate(rendered_repo, "--rendered", "--env", "dev")
    assert result.exit_code == 1
    assert ("rendered/dev/platform/kustomization.yaml:1:1: resources: lists "
            "'namespaces/ml-endpoints-dev/peerauthentication-default.yaml', which does not exist "
            "[kustomization-resources]") in result.stderr.splitlines()


def test_environment_kustomization_must_list_every_folder(rendered_repo: Path) -> None:
    """rendered/<env>/kustomization.yaml lists the platform and endpoint folders; each folder needs its own."""
    base = rendered_repo / "rendered/dev"
    replace_once(base / "kustomization.yaml", "  - endpoints/sentiment\n", "")
    (base / "endpoints/image-classifier/kustomization.yaml").unlink()
    result = validate(rendered_repo, "--rendered", "--env", "dev")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert ("rendered/dev/kustomization.yaml:1:1: resources: does not list 'endpoints/sentiment', so Flux would "
            "not apply it [kustomization-resources]") in lines
    assert ("rendered/dev/endpoints/image-classifier/kustomization.yaml:1:1: missing: Flux builds this folder "
            "from it; run `make render` [kustomization-resources]") in lines


@pytest.mark.parametrize("stray", ["rendered/dev/notes.yaml", "rendered/dev/endpoints/extra.yaml"])
def test_a_manifest_outside_the_flux_folders_is_reported_not_a_crash(rendered_repo: Path, stray: str) -> None:
    source = rendered_repo / "rendered/dev/endpoints/sentiment/service-sentiment-green.yaml"
    (rendered_repo / stray).write_text(source.read_text())
    result = validate(rendered_repo, "--rendered", "--env", "dev")
    assert result.exit_code == 1
    assert (f"{stray}:1:1: is in no folder a Flux Kustomization applies (platform/ or endpoints/<name>/) "
            "[kustomization-resources]") in result.stderr


def test_a_file_in_a_subfolder_of_an_endpoint_folder_must_be_listed_too(rendered_repo: Path) -> None:
    """The endpoint's worker checks its folder's own files; a subfolder sends the folder back to the full check."""
    folder = rendered_repo / "rendered/dev/endpoints/sentiment"
    (folder / "extra").mkdir()
    source = folder / "service-sentiment-green.yaml"
    (folder / "extra/service-sentiment-extra.yaml").write_text(
        source.read_text().replace("name: sentiment-green", "name: sentiment-extra"))
    result = validate(rendered_repo, "--rendered", "--env", "dev")
    assert result.exit_code == 1
    found = [line for line in result.stderr.splitlines() if "[kustomization-resources]" in line]
    assert found == ["rendered/dev/endpoints/sentiment/kustomization.yaml:1:1: resources: does not list "
                     "'extra/service-sentiment-extra.yaml', so Flux would not apply it [kustomization-resources]"]


def test_the_folder_of_an_endpoint_with_no_spec_is_checked(rendered_repo: Path) -> None:
    """No worker owns it: its objects, its listing and the root listing are checked by the main process."""
    base = rendered_repo / "rendered/dev/endpoints"
    shutil.copytree(base / "sentiment", base / "ghost")
    broken = base / "ghost/service-sentiment-green.yaml"
    broken.write_text(broken.read_text().replace("targetPort:", "targetPortt:"))
    result = validate(rendered_repo, "--rendered", "--env", "dev")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert ("rendered/dev/kustomization.yaml:1:1: resources: does not list 'endpoints/ghost', so Flux would not "
            "apply it [kustomization-resources]") in lines
    assert any(line.startswith("rendered/dev/endpoints/ghost/service-sentiment-green.yaml:")
               and "targetPortt" in line for line in lines), lines
