"""Policies: each id triggers on a minimal bad object and not on a good one; every id in POLICIES is covered."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator.check import policy
from generator.check.policy import endpoint_policies, object_policies, pod_policies
from generator.render.templates import dump_yaml
from generator.spec.waivers import POLICIES
from manifest_fixtures import yielded_rule_ids
from manifest_fixtures.objects import Obj, deployment, endpoint_objects, scoring, service

POD = ("spec", "template", "spec")
C = POD + ("containers", 0)
SC = C + ("securityContext",)


def pod(obj: Obj) -> Obj:
    return obj["spec"]["template"]["spec"]


def findings(objects: list[Obj]) -> set[tuple[int, tuple[Any, ...], str]]:
    """(object index, path, policy id) of every single-object and cross-object policy finding."""
    found = {(i, path, rule) for i, obj in enumerate(objects) for path, _, rule in object_policies(obj)}
    return found | {(i, path, rule) for i, path, _, rule in endpoint_policies(objects)}


def on_deployment(change: Callable[[Obj], None]) -> Callable[[list[Obj]], None]:
    """A change to the first Deployment (demo-blue) of the endpoint's objects."""
    return lambda objects: change(objects[0])


def _vs(objects: list[Obj]) -> Obj:
    return next(o for o in objects if o["kind"] == "VirtualService")


def _route(objects: list[Obj]) -> list[Obj]:
    return _vs(objects)["spec"]["http"][0]["route"]


ROUTE = ("spec", "http", 0, "route")
AUTH = ("metadata", "annotations", "endpointgen.io/auth")

# (policy id, case id, auth mode of the endpoint, change, expected {(object index, path)} for that policy id)
CASES: list[tuple[str, str, str | None, Callable[[list[Obj]], None], set[tuple[int, tuple[Any, ...]]]]] = [
    ("pss-privileged", "privileged", None,
     on_deployment(lambda o: scoring(o)["securityContext"].update(privileged=True)), {(0, SC + ("privileged",))}),
    ("pss-privilege-escalation", "escalation-true", None,
     on_deployment(lambda o: scoring(o)["securityContext"].update(allowPrivilegeEscalation=True)),
     {(0, SC + ("allowPrivilegeEscalation",))}),
    ("pss-privilege-escalation", "escalation-unset", None,
     on_deployment(lambda o: scoring(o)["securityContext"].pop("allowPrivilegeEscalation")),
     {(0, SC + ("allowPrivilegeEscalation",))}),
    ("pss-capabilities", "no-drop-all", None,
     on_deployment(lambda o: scoring(o)["securityContext"]["capabilities"].update(drop=["NET_RAW"])),
     {(0, SC + ("capabilities", "drop"))}),
    ("pss-capabilities", "add-sys-admin", None,
     on_deployment(lambda o: scoring(o)["securityContext"]["capabilities"].update(add=["NET_BIND_SERVICE",
                                                                                       "SYS_ADMIN"])),
     {(0, SC + ("capabilities", "add"))}),
    ("pss-run-as-non-root", "container-false", None,
     on_deployment(lambda o: scoring(o)["securityContext"].update(runAsNonRoot=False)),
     {(0, SC + ("runAsNonRoot",))}),
    ("pss-run-as-non-root", "nowhere", None,
     on_deployment(lambda o: (pod(o)["securityContext"].pop("runAsNonRoot"),
                              [c["securityContext"].pop("runAsNonRoot") for c in pod(o)["initContainers"]],
                              scoring(o)["securityContext"].pop("runAsNonRoot"))),
     {(0, SC + ("runAsNonRoot",)), (0, POD + ("initContainers", 0, "securityContext", "runAsNonRoot"))}),
    ("pss-run-as-non-root", "pod-user-root", None,
     on_deployment(lambda o: pod(o)["securityContext"].update(runAsUser=0)),
     {(0, POD + ("securityContext", "runAsUser"))}),
    ("pss-run-as-non-root", "container-user-root", None,
     on_deployment(lambda o: scoring(o)["securityContext"].update(runAsUser=0)), {(0, SC + ("runAsUser",))}),
    ("pss-seccomp", "unconfined", None,
     on_deployment(lambda o: scoring(o)["securityContext"].update(seccompProfile={"type": "Unconfined"})),
     {(0, SC + ("seccompProfile",))}),
    ("pss-host-namespaces", "host-network", None,
     on_deployment(lambda o: pod(o).update(hostNetwork=True)), {(0, POD + ("hostNetwork",))}),
    ("pss-host-namespaces", "host-pid", None,
     on_deployment(lambda o: pod(o).update(hostPID=True)), {(0, POD + ("hostPID",))}),
    ("pss-host-path", "host-path-volume", None,
     on_deployment(lambda o: pod(o)["volumes"].append({"name": "host", "hostPath": {"path": "/"}})),
     {(0, POD + ("volumes", 1, "hostPath"))}),
    ("pss-host-ports", "host-port", None,
     on_deployment(lambda o: scoring(o)["ports"][0].update(hostPort=8080)), {(0, C + ("ports", 0, "hostPort"))}),
    ("resources-set", "no-memory-request", None,
     on_deployment(lambda o: scoring(o)["resources"]["requests"].pop("memory")), {(0, C + ("resources", "requests"))}),
    ("resources-set", "init-without-resources", None,
     on_deployment(lambda o: pod(o)["initContainers"][0].pop("resources")),
     {(0, POD + ("initContainers", 0, "resources", "requests"))}),
    ("probes-set", "no-readiness", None,
     on_deployment(lambda o: scoring(o).pop("readinessProbe")), {(0, C + ("readinessProbe",))}),
    ("image-pinned", "latest", None,
     on_deployment(lambda o: scoring(o).update(image="acr.azurecr.io/scoring/demo:latest")), {(0, C + ("image",))}),
    ("image-pinned", "no-tag", None,
     on_deployment(lambda o: scoring(o).update(image="acr.azurecr.io/scoring/demo")), {(0, C + ("image",))}),
    ("image-pinned", "registry-port-no-tag", None,
     on_deployment(lambda o: scoring(o).update(image="registry:5000/scoring/demo")), {(0, C + ("image",))}),
    ("traffic-weights", "sum-90", None, lambda objects: _route(objects)[1].update(weight=30), {(5, ROUTE)}),
    ("traffic-weights", "fraction", None,
     lambda objects: (_route(objects)[0].update(weight=59.5), _route(objects)[1].update(weight=40.5)), {(5, ROUTE)}),
    ("traffic-weights", "weight-missing", None, lambda objects: _route(objects)[1].pop("weight"), {(5, ROUTE)}),
    ("route-destination-exists", "missing-full-host", None,
     lambda objects: _route(objects)[0]["destination"].update(host="demo-purple.ml.svc.cluster.local"),
     {(5, ROUTE + (0, "destination", "host"))}),
    ("route-destination-exists", "short-host-in-another-namespace", None,
     lambda objects: objects[3]["metadata"].update(namespace="elsewhere"), {(5, ROUTE + (1, "destination", "host"))}),
    ("auth-objects-present", "key-without-custom-policy", "key",
     lambda objects: objects.pop(), {(5, ("metadata", "annotations", "endpointgen.io/auth"))}),
    ("auth-objects-present", "key-policy-of-another-endpoint", "key",
     lambda objects: objects[-1]["spec"]["selector"]["matchLabels"].update({"endpointgen.io/endpoint": "other"}),
     {(5, ("metadata", "annotations", "endpointgen.io/auth"))}),
    ("auth-objects-present", "token-without-request-authentication", "token",
     lambda objects: objects.pop(6), {(5, ("metadata", "annotations", "endpointgen.io/auth"))}),
    ("auth-objects-present", "token-with-deny-policy", "token",
     lambda objects: objects[-1]["spec"].update(action="DENY"), {(5, AUTH)}),
    ("no-secret-material", "secret-object", None,
     lambda objects: objects.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                                     "data": {"key": "c2VjcmV0"}}), {(6, ())}),
    ("no-secret-material", "literal-api-key", None,
     on_deployment(lambda o: scoring(o).update(env=[{"name": "SCORING_API_KEY", "value": "abc"}])),
     {(0, C + ("env", 0, "value"))}),
    ("no-secret-material", "literal-password-in-an-init-container", None,
     on_deployment(lambda o: o["spec"]["template"]["spec"]["initContainers"][0].update(
         env=[{"name": "LOG_LEVEL", "value": "info"}, {"name": "DB_PASSWORD", "value": "hunter2"}])),
     {(0, ("spec", "template", "spec", "initContainers", 0, "env", 1, "value"))}),
    ("no-secret-material", "literal-token-in-an-env-list-elsewhere", None,
     lambda objects: objects[5]["spec"].update(env=[{"name": "ACCESS_TOKEN", "value": "abc"}]),
     {(5, ("spec", "env", 0, "value"))}),
    ("no-secret-material", "private-key", None,
     on_deployment(lambda o: o["metadata"].update(annotations={"cert": "-----BEGIN RSA PRIVATE KEY-----\nMII"})),
     {(0, ("metadata", "annotations", "cert"))}),
    ("no-secret-material", "sas-url", None,
     on_deployment(lambda o: scoring(o).update(args=["https://a.blob.core.windows.net/m?sv=1&sig=abcdefghijklmnop"])),
     {(0, C + ("args", 0))}),
]


def test_good_endpoint_passes_every_policy() -> None:
    for auth in (None, "key", "token"):
        assert findings(endpoint_objects(auth)) == set(), auth


@pytest.mark.parametrize(("policy_id", "auth", "change", "expected"), [(c[0], *c[2:]) for c in CASES],
                         ids=[f"{c[0]}:{c[1]}" for c in CASES])
def test_policy_triggers(policy_id: str, auth: str | None, change: Callable[[list[Obj]], None],
                         expected: set[tuple[int, tuple[Any, ...]]]) -> None:
    objects = endpoint_objects(auth)
    change(objects)
    found = findings(objects)
    assert {(i, path) for i, path, rule in found if rule == policy_id} == expected
    assert {rule for _, _, rule in found} == {policy_id}  # and nothing else


def test_every_policy_has_a_triggering_case() -> None:
    assert {c[0] for c in CASES} == set(POLICIES)


def test_every_policy_the_code_yields_is_registered() -> None:
    """Waivers can name only the ids in POLICIES; an id the code yields but POLICIES lacks could not be waived."""
    assert yielded_rule_ids(policy) == set(POLICIES)
    assert all(description for description in POLICIES.values())


@pytest.mark.parametrize("image", ["acr.azurecr.io/scoring/demo:1.0", "registry:5000/scoring/demo:2",
                                   "acr.azurecr.io/scoring/demo@sha256:" + "a" * 64,
                                   "acr.azurecr.io/scoring/demo:latest@sha256:" + "b" * 64, "demo:v1-latest"])
def test_pinned_images(image: str) -> None:
    obj = deployment()
    scoring(obj)["image"] = image
    assert list(object_policies(obj)) == []


def test_capability_net_bind_service_may_be_added() -> None:
    obj = deployment()
    scoring(obj)["securityContext"]["capabilities"]["add"] = ["NET_BIND_SERVICE"]
    assert list(object_policies(obj)) == []


def test_pod_level_settings_cover_the_containers() -> None:
    obj = deployment()
    for c in pod(obj)["initContainers"] + pod(obj)["containers"]:
        c["securityContext"].pop("runAsNonRoot")
        c["securityContext"].pop("seccompProfile")
    assert list(object_policies(obj)) == []


def test_init_containers_need_no_probes() -> None:
    assert "livenessProbe" not in pod(deployment())["initContainers"][0]
    assert list(pod_policies(pod(deployment()), POD)) == []


def test_single_unweighted_route_is_fine() -> None:
    objects = endpoint_objects()
    route = _route(objects)
    del route[1]
    del route[0]["weight"]
    assert findings(objects) == set()


def test_secret_looking_env_var_from_a_reference_is_fine() -> None:
    obj = deployment()
    scoring(obj)["env"] = [{"name": "SCORING_API_KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                           {"name": "TOKENIZER", "value": "bert"}]
    assert list(object_policies(obj)) == []


def test_policy_messages() -> None:
    obj = deployment()
    scoring(obj)["image"] = "acr.azurecr.io/scoring/demo:latest"
    [(_, message, _)] = list(object_policies(obj))
    assert message == "image 'acr.azurecr.io/scoring/demo:latest' is not pinned (use a version tag or a digest)"


def test_services_in_other_kinds_are_not_destinations() -> None:
    objects = endpoint_objects()
    objects[2] = {**service("demo-blue"), "kind": "ServiceEntry"}
    assert {rule for _, _, rule in findings(objects)} == {"route-destination-exists"}


# --- the secret scan's fast paths agree with the full walk -------------------------------------------------

SECRETS = ["-----BEGIN RSA PRIVATE KEY-----", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig",
           "https://a.blob.core.windows.net/m?sv=1&sig=abcdefghijklmnop", "AccountKey=" + "A" * 30]
filler = st.text(alphabet=st.sampled_from(list("ab -:\n\t\"'\\é\u2028#{}[]")), max_size=1200)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=filler, after=filler, secret=st.sampled_from(SECRETS + ["plain"]), where=st.integers(0, 3),
       env_name=st.sampled_from(["LOG_LEVEL", "DB_PASSWORD", "env"]))
def test_the_fast_secret_scan_finds_what_the_full_walk_finds(before: str, after: str, secret: str, where: int,
                                                             env_name: str) -> None:
    """Long strings (folded when dumped), escapes and stray "env" keys cannot hide a finding."""
    obj = deployment()
    value = before + secret + after
    places = [lambda: obj["metadata"].setdefault("annotations", {}).update(note=value),
              lambda: scoring(obj).update(args=[value]),
              lambda: obj["spec"].update(env=[{"name": env_name, "value": value}]),
              lambda: scoring(obj).update(env=[{"name": env_name, "value": value}])]
    places[where]()
    walked: list[Any] = []
    policy._walk_secrets(obj, (), walked)
    assert list(policy._secret_values(obj, ())) == walked
    assert list(policy._secret_values(obj, (), dump_yaml(obj))) == walked
