"""API-server rules on minimal objects: quantities, each rule triggering and staying quiet, cross-object rules."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from generator.check import apiserver
from generator.check.apiserver import object_rules, parse_quantity, pod_spec_rules, set_rules
from manifest_fixtures import yielded_rule_ids
from manifest_fixtures.objects import Obj, deployment, endpoint_objects, hpa, pdb, scoring, service, virtual_service

CONTAINER = ("spec", "template", "spec", "containers", 0)
INIT = ("spec", "template", "spec", "initContainers", 0)


def found(obj: Obj) -> set[tuple[tuple[Any, ...], str]]:
    return {(path, rule) for path, _, rule in object_rules(obj)}


# --- quantities -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [
    ("100m", Decimal("0.1")),
    ("1Gi", Decimal(2**30)),
    ("1e3", Decimal(1000)),
    ("1E3", Decimal(1000)),
    ("0.5", Decimal("0.5")),
    (".5", Decimal("0.5")),
    ("1.5Gi", Decimal(3 * 2**29)),
    ("512Mi", Decimal(512 * 2**20)),
    ("2k", Decimal(2000)),
    ("1M", Decimal(10**6)),
    ("1E", Decimal(10**18)),  # exa, not an exponent
    ("250n", Decimal("2.5e-7")),
    ("+3", Decimal(3)),
    ("-1", Decimal(-1)),
    ("1e-3", Decimal("0.001")),
    ("0", Decimal(0)),
    (2, Decimal(2)),
    (0.25, Decimal("0.25")),
])
def test_parse_quantity_valid(text: Any, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["1.5.5", "abc", "", "1K", "1ki", "Gi", "1 Gi", "1Gi ", "1e", "0x10", "1e3Gi",
                                  "--1", "1m1", True, False, None, [1], {"a": 1}])
def test_parse_quantity_invalid(text: Any) -> None:
    assert parse_quantity(text) is None


# --- single-object rules ---------------------------------------------------------------------------------------


def _set(path: tuple[Any, ...], value: Any) -> Callable[[Obj], None]:
    def change(obj: Obj) -> None:
        target = obj
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
    return change


RES = CONTAINER + ("resources",)
LIVENESS = CONTAINER + ("livenessProbe",)
SELECTED = ("spec", "selector", "matchLabels", "endpointgen.io/version")

# (case id, builder, change, the expected {(path, rule)})
OBJECT_CASES: list[tuple[str, Callable[[], Obj], Callable[[Obj], None], set[tuple[tuple[Any, ...], str]]]] = [
    ("name-upper-case", deployment, _set(("metadata", "name"), "Demo_Blue"), {(("metadata", "name"), "object-name")}),
    ("name-missing", deployment, lambda o: o["metadata"].pop("name"), {(("metadata", "name"), "object-name")}),
    ("service-name-with-dot", service, _set(("metadata", "name"), "demo.blue"),
     {(("metadata", "name"), "object-name")}),
    ("service-name-leading-digit", service, _set(("metadata", "name"), "1demo"),
     {(("metadata", "name"), "object-name")}),
    ("name-too-long", deployment, _set(("metadata", "name"), "a" * 254), {(("metadata", "name"), "object-name")}),
    ("label-value", deployment, _set(("metadata", "labels", "team"), "ml team"),
     {(("metadata", "labels", "team"), "labels")}),
    ("label-value-too-long", service, _set(("metadata", "labels", "team"), "a" * 64),
     {(("metadata", "labels", "team"), "labels")}),
    ("label-key", deployment, _set(("metadata", "labels", "Bad_Prefix.io/x"), "a"),
     {(("metadata", "labels", "Bad_Prefix.io/x"), "labels")}),
    ("template-label", deployment, _set(("spec", "template", "metadata", "labels", "x"), "-bad"),
     {(("spec", "template", "metadata", "labels", "x"), "labels")}),
    ("annotation-key", deployment, _set(("metadata", "annotations"), {"not a key": "v"}),
     {(("metadata", "annotations", "not a key"), "annotations")}),
    ("annotations-too-big", deployment, _set(("metadata", "annotations"), {"big": "x" * (256 * 1024)}),
     {(("metadata", "annotations"), "annotations")}),
    ("selector-mismatch", deployment, _set(SELECTED, "green"), {(SELECTED, "selector-matches-template")}),
    ("selector-empty", deployment, _set(("spec", "selector"), {}),
     {(("spec", "selector"), "selector-matches-template")}),
    ("container-name", deployment, _set(CONTAINER + ("name",), "Scoring"),
     {(CONTAINER + ("name",), "container-name")}),
    ("container-name-twice", deployment, _set(CONTAINER + ("name",), "fetch-model"),
     {(CONTAINER + ("name",), "container-name")}),
    ("container-port", deployment, _set(CONTAINER + ("ports", 0, "containerPort"), 70000),
     {(CONTAINER + ("ports", 0, "containerPort"), "ports")}),
    ("container-port-name", deployment,
     _set(CONTAINER + ("ports",), [{"name": "http", "containerPort": 5001},
                                   {"name": "metrics--x", "containerPort": 9090}]),
     {(CONTAINER + ("ports", 1, "name"), "ports")}),
    ("probe-port-renamed", deployment, _set(CONTAINER + ("ports", 0, "name"), "web"),
     {(LIVENESS + ("httpGet", "port"), "probes"), (CONTAINER + ("readinessProbe", "httpGet", "port"), "probes")}),
    ("service-port", service, _set(("spec", "ports", 0, "port"), 0), {(("spec", "ports", 0, "port"), "ports")}),
    ("service-port-missing", service, lambda o: o["spec"]["ports"][0].pop("port"),
     {(("spec", "ports", 0, "port"), "ports")}),
    ("service-ports-unnamed", service, _set(("spec", "ports"), [{"name": "http", "port": 80}, {"port": 81}]),
     {(("spec", "ports", 1, "name"), "ports")}),
    ("service-ports-same-name", service, _set(("spec", "ports"), [{"name": "http", "port": 80},
                                                                  {"name": "http", "port": 81}]),
     {(("spec", "ports"), "ports")}),
    ("env-twice", deployment, _set(CONTAINER + ("env",), [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]),
     {(CONTAINER + ("env", 1, "name"), "env-unique")}),
    ("bad-quantity", deployment, _set(RES + ("requests", "cpu"), "1.5.5"), {(RES + ("requests", "cpu"), "quantities")}),
    ("negative-quantity", deployment, _set(RES + ("limits", "memory"), "-1Gi"),
     {(RES + ("limits", "memory"), "quantities")}),
    ("request-over-limit", deployment, _set(RES + ("requests", "memory"), "2Gi"),
     {(RES + ("requests", "memory"), "requests-within-limits")}),
    ("gpu-request-differs", deployment, _set(RES, {"requests": {"nvidia.com/gpu": 1}, "limits": {"nvidia.com/gpu": 2}}),
     {(RES + ("requests", "nvidia.com/gpu"), "extended-resources")}),
    ("gpu-request-without-limit", deployment, _set(RES, {"requests": {"nvidia.com/gpu": "1", "cpu": "1"}}),
     {(RES + ("requests", "nvidia.com/gpu"), "extended-resources")}),
    ("gpu-fraction", deployment,
     _set(RES, {"requests": {"nvidia.com/gpu": "500m"}, "limits": {"nvidia.com/gpu": "500m"}}),
     {(RES + ("limits", "nvidia.com/gpu"), "extended-resources")}),
    ("liveness-success-threshold", deployment, _set(LIVENESS + ("successThreshold",), 3),
     {(LIVENESS + ("successThreshold",), "probes")}),
    ("startup-success-threshold", deployment,
     _set(CONTAINER + ("startupProbe",), {"tcpSocket": {"port": 5001}, "successThreshold": 2}),
     {(CONTAINER + ("startupProbe", "successThreshold"), "probes")}),
    ("probe-two-handlers", deployment, _set(LIVENESS + ("exec",), {"command": ["true"]}), {(LIVENESS, "probes")}),
    ("probe-no-handler", deployment, _set(LIVENESS, {"periodSeconds": 10}), {(LIVENESS, "probes")}),
    ("probe-period-zero", deployment, _set(LIVENESS + ("periodSeconds",), 0),
     {(LIVENESS + ("periodSeconds",), "probes")}),
    ("probe-undeclared-port", deployment, _set(LIVENESS + ("httpGet", "port"), "admin"),
     {(LIVENESS + ("httpGet", "port"), "probes")}),
    ("init-container-probe", deployment, _set(INIT + ("readinessProbe",), {"exec": {"command": ["true"]}}),
     {(INIT + ("readinessProbe",), "probes")}),
    ("undefined-volume", deployment, _set(CONTAINER + ("volumeMounts", 0, "name"), "scratch"),
     {(CONTAINER + ("volumeMounts", 0, "name"), "volumes")}),
    ("pre-stop-beyond-grace", deployment,
     lambda o: (_set(CONTAINER + ("lifecycle",), {"preStop": {"sleep": {"seconds": 31}}})(o),
                _set(("spec", "template", "spec", "terminationGracePeriodSeconds"), 30)(o)),
     {(CONTAINER + ("lifecycle", "preStop", "sleep", "seconds"), "lifecycle")}),
    ("pre-stop-default-grace", deployment, _set(CONTAINER + ("lifecycle",), {"preStop": {"sleep": {"seconds": 45}}}),
     {(CONTAINER + ("lifecycle", "preStop", "sleep", "seconds"), "lifecycle")}),
    ("pre-stop-zero", deployment, _set(CONTAINER + ("lifecycle",), {"preStop": {"sleep": {"seconds": 0}}}),
     {(CONTAINER + ("lifecycle", "preStop", "sleep", "seconds"), "lifecycle")}),
    ("pdb-both", pdb, _set(("spec", "maxUnavailable"), 1), {(("spec",), "pdb-budget")}),
    ("pdb-neither", pdb, lambda o: o["spec"].pop("minAvailable"), {(("spec",), "pdb-budget")}),
    ("hpa-min-zero", hpa, _set(("spec", "minReplicas"), 0), {(("spec", "minReplicas"), "hpa-replicas")}),
    ("hpa-min-over-max", hpa, _set(("spec", "minReplicas"), 4), {(("spec", "minReplicas"), "hpa-replicas")}),
    ("hpa-period", hpa, _set(("spec", "behavior", "scaleUp", "policies", 0, "periodSeconds"), 1801),
     {(("spec", "behavior", "scaleUp", "policies", 0, "periodSeconds"), "hpa-behavior")}),
]


def test_minimal_objects_pass_every_rule() -> None:
    for obj in endpoint_objects("key") + endpoint_objects("token") + [pdb()]:
        assert list(object_rules(obj)) == [], obj["kind"]
    assert list(set_rules(endpoint_objects())) == []


@pytest.mark.parametrize(("build", "change", "expected"), [c[1:] for c in OBJECT_CASES],
                         ids=[c[0] for c in OBJECT_CASES])
def test_rule_triggers(build: Callable[[], Obj], change: Callable[[Obj], None],
                       expected: set[tuple[tuple[Any, ...], str]]) -> None:
    obj = build()
    change(obj)
    assert found(obj) == expected


def test_every_rule_has_a_case() -> None:
    cross = {"no-replicas-under-hpa", "hpa-target-exists", "one-autoscaler"}  # set_rules: below, test_autoscaling
    assert {rule for case in OBJECT_CASES for _, rule in case[3]} | cross == yielded_rule_ids(apiserver)


def test_names_that_are_valid_for_one_kind_only() -> None:
    """Deployments take DNS subdomains (dots allowed); Services need DNS-1035 labels."""
    obj = deployment("demo.blue")
    assert found(obj) == set()
    svc = service("demo-blue")
    svc["metadata"]["name"] = "a" * 63
    assert found(svc) == set()
    svc["metadata"]["name"] = "a" * 64
    assert found(svc) == {(("metadata", "name"), "object-name")}


def test_messages_name_the_values() -> None:
    obj = deployment()
    scoring(obj)["livenessProbe"]["successThreshold"] = 3
    scoring(obj)["resources"]["requests"]["cpu"] = "1.5.5"
    messages = {rule: message for _, message, rule in object_rules(obj)}
    assert messages == {"probes": "livenessProbe.successThreshold must be 1, got 3",
                        "quantities": "'1.5.5' is not a valid quantity"}


def test_readiness_success_threshold_may_exceed_one() -> None:
    obj = deployment()
    scoring(obj)["readinessProbe"]["successThreshold"] = 3
    assert found(obj) == set()


def test_quantities_compare_by_value_not_text() -> None:
    obj = deployment()
    scoring(obj)["resources"] = {"requests": {"cpu": "500m", "memory": "1024Mi"},
                                 "limits": {"cpu": "0.5", "memory": "1Gi"}}
    assert found(obj) == set()
    scoring(obj)["resources"]["requests"]["cpu"] = "501m"
    assert found(obj) == {(RES + ("requests", "cpu"), "requests-within-limits")}


def test_pod_spec_rules_use_the_given_path() -> None:
    spec = deployment()["spec"]["template"]["spec"]
    spec["containers"][0]["name"] = "Bad"
    assert [(path, rule) for path, _, rule in pod_spec_rules(spec, ("x",))] == [(("x", "containers", 0, "name"),
                                                                                 "container-name")]


# --- cross-object rules -----------------------------------------------------------------------------------------


def test_replicas_under_hpa() -> None:
    objects = endpoint_objects()
    objects[0]["spec"]["replicas"] = 2  # demo-blue has an HPA
    objects[1]["spec"]["replicas"] = 2  # demo-green has none: fine
    assert [(i, path, rule) for i, path, _, rule in set_rules(objects)] == [(0, ("spec", "replicas"),
                                                                            "no-replicas-under-hpa")]


def test_hpa_in_another_namespace_does_not_manage_the_deployment() -> None:
    objects = [deployment(), hpa()]
    objects[0]["spec"]["replicas"] = 2
    objects[1]["metadata"]["namespace"] = "elsewhere"
    assert [(i, rule) for i, _, _, rule in set_rules(objects)] == [(1, "hpa-target-exists")]


def test_hpa_target_must_exist() -> None:
    objects = [deployment("demo-blue"), hpa("demo-purple")]
    assert [(i, path, rule) for i, path, _, rule in set_rules(objects)] == [
        (1, ("spec", "scaleTargetRef", "name"), "hpa-target-exists")]


def test_cross_object_rules_tolerate_objects_without_names() -> None:
    nameless = deployment()
    del nameless["metadata"]
    assert [(i, rule) for i, _, _, rule in set_rules([nameless, hpa()])] == [(1, "hpa-target-exists")]


def test_virtual_service_has_no_api_server_rules_of_its_own() -> None:
    assert list(object_rules(virtual_service("key"))) == []


def test_a_pre_stop_sleep_within_the_grace_period_passes() -> None:
    obj = deployment()
    scoring(obj)["lifecycle"] = {"preStop": {"sleep": {"seconds": 30}}}
    obj["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 30
    assert found(obj) == set()
