"""Rules the Kubernetes API server (and Istio's webhook) enforce that no JSON Schema expresses.

Each rule yields `(json_path, message, rule_id)` for one object; the cross-object
rules look at all objects of one environment at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

Obj = dict[str, Any]
JsonPath = tuple[str | int, ...]
Violation = tuple[JsonPath, str, str]

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)(([KMGTPE]i)|[numkMGTPE]|[eE][+-]?\d+)?$")
LABEL_NAME_KINDS = {"Service", "Namespace"}  # their names must be DNS labels, not subdomains
MAX_ANNOTATIONS_BYTES = 256 * 1024
_SUFFIX = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
           "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
           "P": Decimal("1e15"), "E": Decimal("1e18"), "Ki": Decimal(2**10), "Mi": Decimal(2**20),
           "Gi": Decimal(2**30), "Ti": Decimal(2**40), "Pi": Decimal(2**50), "Ei": Decimal(2**60)}


def parse_quantity(value: Any) -> Decimal | None:
    """A Kubernetes resource quantity as a number ('100m' -> 0.1, '1Gi' -> 1073741824); None if invalid."""
    text = str(value)
    if isinstance(value, bool) or not QUANTITY.match(text):
        return None
    match = re.match(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(.*)$", text)
    assert match is not None
    number, suffix = match.groups()
    try:
        if suffix[:1] in ("e", "E") and len(suffix) > 1:  # an exponent; a bare "E" is exa
            return Decimal(number + suffix)
        return Decimal(number) * _SUFFIX[suffix]
    except (InvalidOperation, KeyError):
        return None


def mapping(value: Any) -> Obj:
    """`value` if it is a mapping, else an empty one: rules skip what has the wrong shape (the schema reports it)."""
    return value if isinstance(value, dict) else {}


def sequence(value: Any) -> list[Any]:
    """`value` if it is a list, else an empty one."""
    return value if isinstance(value, list) else []


def metadata_of(obj: Obj) -> Obj:
    """The object's metadata mapping, empty when it is missing or not a mapping."""
    return mapping(obj.get("metadata"))


def object_rules(obj: Obj) -> Iterator[Violation]:
    """Every single-object API-server rule for `obj`."""
    yield from _metadata(obj)
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Deployment":
        yield from _deployment(spec)
    elif kind == "Service":
        yield from _service(spec)
    elif kind == "HorizontalPodAutoscaler":
        yield from _hpa(spec)
    elif kind == "ScaledObject":
        yield from _scaled_object(spec)
    elif kind == "PodDisruptionBudget":
        if ("minAvailable" in spec) == ("maxUnavailable" in spec):
            yield ("spec",), "exactly one of minAvailable and maxUnavailable must be set", "pdb-budget"


def _metadata(obj: Obj) -> Iterator[Violation]:
    metadata = metadata_of(obj)
    name = metadata.get("name")
    pattern, limit = ((DNS_1035 if obj.get("kind") == "Service" else DNS_LABEL), 63) \
        if obj.get("kind") in LABEL_NAME_KINDS else (DNS_SUBDOMAIN, 253)
    if not isinstance(name, str) or len(name) > limit or not pattern.match(name):
        yield ("metadata", "name"), f"{name!r} is not a valid {obj.get('kind')} name (<= {limit} chars, " \
                                    "lower-case alphanumerics and '-')", "object-name"
    yield from _labels(metadata.get("labels"), ("metadata", "labels"))
    annotations = metadata.get("annotations") or {}
    for key in annotations:
        if not _qualified_key(key):
            yield ("metadata", "annotations", key), f"annotation key {key!r} is not a qualified name", "annotations"
    size = sum(len(k.encode()) + len(str(v).encode()) for k, v in annotations.items())
    if size > MAX_ANNOTATIONS_BYTES:
        yield ("metadata", "annotations"), f"annotations total {size} bytes, more than 256 KiB", "annotations"


def _qualified_key(key: Any) -> bool:
    return isinstance(key, str) and _is_qualified_key(key)


@lru_cache(maxsize=65536)  # label and annotation keys repeat across every object
def _is_qualified_key(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix)):
        return False
    return len(name) <= 63 and bool(QUALIFIED_NAME.match(name))


def _labels(labels: Any, path: JsonPath) -> Iterator[Violation]:
    for key, value in (labels or {}).items():
        if not _qualified_key(key):
            yield path + (key,), f"label key {key!r} is not a qualified name", "labels"
        if not isinstance(value, str) or len(value) > 63 or (value and not QUALIFIED_NAME.match(value)):
            yield path + (key,), f"label value {value!r} must be <= 63 alphanumerics, '-', '_' or '.'", "labels"


def _deployment(spec: Obj) -> Iterator[Violation]:
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    template = spec.get("template") or {}
    template_labels = (template.get("metadata") or {}).get("labels") or {}
    yield from _labels(template_labels, ("spec", "template", "metadata", "labels"))
    if not selector:
        yield ("spec", "selector"), "a Deployment needs a non-empty selector", "selector-matches-template"
    for key, value in selector.items():
        if template_labels.get(key) != value:
            yield (("spec", "selector", "matchLabels", key),
                   f"selector {key}={value} does not match the pod template labels", "selector-matches-template")
    yield from pod_spec_rules(template.get("spec") or {}, ("spec", "template", "spec"))


def pod_spec_rules(pod: Obj, path: JsonPath) -> Iterator[Violation]:
    """Container, port, resource, probe and volume rules of one pod spec."""
    volumes = {v.get("name") for v in pod.get("volumes") or []}
    names: set[str] = set()
    for group in ("initContainers", "containers"):
        for index, container in enumerate(pod.get(group) or []):
            where = path + (group, index)
            name = container.get("name")
            if not isinstance(name, str) or not DNS_LABEL.match(name) or len(name) > 63:
                yield where + ("name",), f"container name {name!r} is not a DNS-1123 label", "container-name"
            elif name in names:
                yield where + ("name",), f"container name {name!r} is used twice", "container-name"
            names.add(str(name))
            yield from _container(container, where, volumes, is_init=group == "initContainers")
            yield from _pre_stop_sleep(container, where, pod.get("terminationGracePeriodSeconds", 30))


def _pre_stop_sleep(c: Obj, path: JsonPath, grace: Any) -> Iterator[Violation]:
    """A preStop sleep must be a positive whole number of seconds within the termination grace period."""
    sleep = ((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep")
    if sleep is None:
        return
    seconds = sleep.get("seconds")
    where = path + ("lifecycle", "preStop", "sleep", "seconds")
    if not isinstance(seconds, int) or seconds < 1:
        yield where, f"must be a whole number of seconds >= 1, got {seconds!r}", "lifecycle"
    elif isinstance(grace, int) and seconds > grace:
        yield where, f"{seconds} s is longer than terminationGracePeriodSeconds ({grace})", "lifecycle"


def _container(c: Obj, path: JsonPath, volumes: set[Any], is_init: bool) -> Iterator[Violation]:
    port_names: set[str] = set()
    for i, port in enumerate(c.get("ports") or []):
        number, name = port.get("containerPort"), port.get("name")
        if not isinstance(number, int) or not 1 <= number <= 65535:
            yield path + ("ports", i, "containerPort"), f"port {number!r} is not in 1-65535", "ports"
        if name is not None:
            if len(name) > 15 or not IANA_SVC_NAME.match(name) or "--" in name or not re.search("[a-z]", name):
                yield path + ("ports", i, "name"), f"port name {name!r} is not an IANA service name", "ports"
            port_names.add(name)
    seen_env: set[str] = set()
    for i, var in enumerate(c.get("env") or []):
        if var.get("name") in seen_env:
            yield path + ("env", i, "name"), f"environment variable {var.get('name')!r} is set twice", "env-unique"
        seen_env.add(var.get("name"))
    yield from _resources(c.get("resources") or {}, path + ("resources",))
    for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = c.get(probe_name)
        if probe is not None:
            if is_init:
                yield path + (probe_name,), "init containers cannot have probes", "probes"
            yield from _probe(probe, probe_name, path + (probe_name,), port_names)
    for i, mount in enumerate(c.get("volumeMounts") or []):
        if mount.get("name") not in volumes:
            yield path + ("volumeMounts", i, "name"), f"volume {mount.get('name')!r} is not defined", "volumes"


def _resources(resources: Obj, path: JsonPath) -> Iterator[Violation]:
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    parsed: dict[str, dict[str, Decimal]] = {"requests": {}, "limits": {}}
    for section, values in (("requests", requests), ("limits", limits)):
        for resource, value in values.items():
            quantity = parse_quantity(value)
            if quantity is None or quantity < 0:
                yield path + (section, resource), f"{value!r} is not a valid quantity", "quantities"
            else:
                parsed[section][resource] = quantity
    for resource, request in parsed["requests"].items():
        limit = parsed["limits"].get(resource)
        if limit is not None and request > limit:
            yield (path + ("requests", resource),
                   f"request {requests[resource]} exceeds limit {limits[resource]}", "requests-within-limits")
    for resource in set(requests) | set(limits):
        if "/" in resource and not resource.startswith(("kubernetes.io/", "requests.")):  # extended resource
            if requests.get(resource) is not None and str(requests.get(resource)) != str(limits.get(resource)):
                yield (path + ("requests", resource),
                       f"{resource} is an extended resource: requests must equal limits", "extended-resources")
            quantity = parsed["limits"].get(resource, parsed["requests"].get(resource))
            if quantity is not None and quantity != quantity.to_integral_value():
                yield path + ("limits", resource), f"{resource} must be a whole number", "extended-resources"


def _probe(probe: Obj, name: str, path: JsonPath, port_names: set[str]) -> Iterator[Violation]:
    handlers = [h for h in ("httpGet", "tcpSocket", "exec", "grpc") if h in probe]
    if len(handlers) != 1:
        yield path, f"a probe needs exactly one handler, got {handlers or 'none'}", "probes"
    if name in ("livenessProbe", "startupProbe") and probe.get("successThreshold", 1) != 1:
        yield (path + ("successThreshold",),
               f"{name}.successThreshold must be 1, got {probe['successThreshold']}", "probes")
    for field, minimum in (("periodSeconds", 1), ("timeoutSeconds", 1), ("successThreshold", 1),
                           ("failureThreshold", 1), ("initialDelaySeconds", 0)):
        value = probe.get(field)
        if value is not None and (not isinstance(value, int) or value < minimum):
            yield path + (field,), f"{field} must be an integer >= {minimum}, got {value!r}", "probes"
    port = (probe.get("httpGet") or probe.get("tcpSocket") or {}).get("port")
    if isinstance(port, str) and port not in port_names:
        yield path + (handlers[0] if handlers else "httpGet", "port"), f"named port {port!r} is not declared", "probes"


def _service(spec: Obj) -> Iterator[Violation]:
    ports = spec.get("ports") or []
    names = [p.get("name") for p in ports]
    for i, port in enumerate(ports):
        if not isinstance(port.get("port"), int) or not 1 <= port["port"] <= 65535:
            yield ("spec", "ports", i, "port"), f"port {port.get('port')!r} is not in 1-65535", "ports"
        if len(ports) > 1 and not port.get("name"):
            yield ("spec", "ports", i, "name"), "every port needs a name when a Service has several", "ports"
    if len(set(names)) != len(names):
        yield ("spec", "ports"), "port names must be unique", "ports"


# Kinds that own a Deployment's scale, and the target kind each assumes when scaleTargetRef names none.
AUTOSCALERS = {"HorizontalPodAutoscaler": "", "ScaledObject": "Deployment"}


def _scaled_object(spec: Obj) -> Iterator[Violation]:
    low, high = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
    if isinstance(low, int) and isinstance(high, int) and low > high:
        yield ("spec", "minReplicaCount"), f"minReplicaCount {low} exceeds maxReplicaCount {high}", "hpa-replicas"
    behavior = mapping(mapping(spec.get("advanced")).get("horizontalPodAutoscalerConfig")).get("behavior")
    for violation in _hpa({"minReplicas": max(low, 1) if isinstance(low, int) else low, "behavior": behavior}):
        path, message, rule = violation
        yield ("spec", "advanced", "horizontalPodAutoscalerConfig", *path[1:]), message, rule


def _hpa(spec: Obj) -> Iterator[Violation]:
    low, high = spec.get("minReplicas", 1), spec.get("maxReplicas")
    if not isinstance(low, int) or low < 1:
        yield ("spec", "minReplicas"), f"minReplicas must be >= 1, got {low!r}", "hpa-replicas"
    if isinstance(low, int) and isinstance(high, int) and low > high:
        yield ("spec", "minReplicas"), f"minReplicas {low} exceeds maxReplicas {high}", "hpa-replicas"
    for direction in ("scaleUp", "scaleDown"):
        rules = (spec.get("behavior") or {}).get(direction) or {}
        for i, policy in enumerate(rules.get("policies") or []):
            period = policy.get("periodSeconds")
            if not isinstance(period, int) or not 1 <= period <= 1800:
                yield (("spec", "behavior", direction, "policies", i, "periodSeconds"),
                       f"periodSeconds must be 1-1800, got {period!r}", "hpa-behavior")


def set_rules(objects: list[Obj]) -> Iterator[tuple[int, JsonPath, str, str]]:
    """Rules across objects: (index of the offending object, path, message, rule id)."""
    deployments = {(str(metadata_of(o).get("namespace")), str(metadata_of(o).get("name"))): i
                   for i, o in enumerate(objects) if o.get("kind") == "Deployment"}
    scalers: dict[tuple[str, str], str] = {}
    for i, obj in enumerate(objects):
        if obj.get("kind") not in AUTOSCALERS:
            continue
        target = mapping(mapping(obj.get("spec")).get("scaleTargetRef"))
        key = (str(metadata_of(obj).get("namespace")), str(target.get("name")))
        this = f"{obj.get('kind')} {metadata_of(obj).get('name')}"
        if target.get("kind", AUTOSCALERS[obj["kind"]]) == "Deployment" and key in deployments:
            deployment = objects[deployments[key]]
            if "replicas" in mapping(deployment.get("spec")):
                yield (deployments[key], ("spec", "replicas"),
                       f"the {this} manages the scale: leave spec.replicas out, or every Flux reconcile resets it",
                       "no-replicas-under-hpa")
            if key in scalers:
                yield (i, ("spec", "scaleTargetRef", "name"),
                       f"Deployment {key[1]!r} is already scaled by the {scalers[key]}: two autoscalers fight",
                       "one-autoscaler")
            scalers.setdefault(key, this)
        elif target.get("kind", AUTOSCALERS[obj["kind"]]) == "Deployment":
            yield i, ("spec", "scaleTargetRef", "name"), f"Deployment {target.get('name')!r} is not rendered", \
                "hpa-target-exists"
