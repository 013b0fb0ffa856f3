"""Policies every rendered environment must meet. Each has an id an endpoint can waive with a reason.

Pod Security Standards "restricted" for every pod template, resources and
probes set, pinned images, and the endpoint's own integrity: route weights
sum to 100, every route reaches a rendered Service, auth objects exist when
auth is on, and nothing that looks like secret material.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from .apiserver import JsonPath, Obj, mapping, metadata_of, sequence

SECRET_NAME = re.compile(r"(^|_)(PASSWORD|PASSWD|SECRET|API_?KEY|ACCESS_?KEY|PRIMARY_?KEY|SECONDARY_?KEY|TOKEN|"
                         r"CONNECTION_?STRING|SAS)($|_)", re.IGNORECASE)
SECRET_VALUE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----|\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\."
                          r"|[?&]sig=[A-Za-z0-9%/+=]{10,}|AccountKey=[A-Za-z0-9+/=]{20,}")
Violation = tuple[JsonPath, str, str]


def object_policies(obj: Obj, rendered_text: str | None = None) -> Iterator[Violation]:
    """Single-object policies: pod security, resources, probes, images, secrets.

    `rendered_text` is the object as endpointgen itself dumped it (block style, nothing escaped but control
    characters), which lets the secret scan skip objects faster; never pass text read from a file.
    """
    kind = obj.get("kind")
    if kind == "Secret" or "stringData" in obj or ("data" in obj and kind != "ConfigMap"):
        yield (), "Secrets (and data/stringData) never go into git; use Key Vault", "no-secret-material"
    if kind == "ConfigMap" and "binaryData" in obj:
        yield ("binaryData",), "binaryData cannot be reviewed for secrets; keep configuration as text", \
            "no-secret-material"
    yield from _secret_values(obj, (), rendered_text)
    if obj.get("kind") == "Deployment":
        pod = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
        yield from pod_policies(pod, ("spec", "template", "spec"))


def _secret_values(value: Any, path: JsonPath, rendered_text: str | None = None) -> Iterator[Violation]:
    """Literal values of secret-named environment variables, and strings that look like keys or tokens.

    One C-speed pass over a text of the object comes first: when no string can hold a hint (JSON escapes none
    of their characters; endpointgen's own dump escapes none and folds long lines only at spaces, which no hint
    has), only the env lists can be at fault, and when every "env" key is a pod template's, only those are read.
    """
    found: list[Violation] = []
    text, env_key = rendered_text, "env:"
    if text is None:
        try:
            text, env_key = json.dumps(value, ensure_ascii=False), '"env"'
        except (TypeError, ValueError):
            pass  # values JSON has no type for (a YAML 1.1 timestamp): walk them
    if text is not None and not _has_hint(text):
        envs = list(_pod_env_lists(value, path))
        if text.count(env_key) == len(envs):  # at least one per "env" key: so every one is a pod template's
            for where, variables in envs:
                _walk_secrets(variables, where, found)
            return iter(found)
    _walk_secrets(value, path, found)
    return iter(found)


def _pod_env_lists(obj: Any, path: JsonPath) -> Iterator[tuple[JsonPath, list[Any]]]:
    """The env lists of a workload's pod template containers, where endpointgen puts them."""
    pod = mapping(mapping(mapping(obj.get("spec") if isinstance(obj, dict) else None).get("template")).get("spec"))
    for group in ("initContainers", "containers"):
        for index, container in enumerate(sequence(pod.get(group))):
            variables = mapping(container).get("env")
            if isinstance(variables, list):
                yield path + ("spec", "template", "spec", group, index, "env"), variables


def _has_hint(text: str) -> bool:
    """Whether `text` holds a substring SECRET_VALUE cannot match without."""
    return "eyJ" in text or "sig=" in text or "-----BEGIN" in text or "AccountKey=" in text


def _looks_secret(text: str) -> bool:
    return _has_hint(text) and SECRET_VALUE.search(text) is not None


def _walk_secrets(value: Any, path: JsonPath, found: list[Violation]) -> None:
    """A plain recursive walk (no generators: it visits every value of every object)."""
    is_env = False
    if isinstance(value, dict):
        items: Iterable[tuple[Any, Any]] = value.items()
    elif isinstance(value, list):
        items, is_env = enumerate(value), path[-1:] == ("env",)
    else:
        if isinstance(value, str) and _looks_secret(value):
            found.append((path, "value looks like secret material (key, token or SAS signature)", "no-secret-material"))
        return
    for key, item in items:
        if isinstance(item, str):
            if _looks_secret(item):
                found.append((path + (key,), "value looks like secret material (key, token or SAS signature)",
                              "no-secret-material"))
        elif isinstance(item, (dict, list)):
            if is_env and isinstance(item, dict) and "value" in item and isinstance(item.get("name"), str) \
                    and SECRET_NAME.search(item["name"]):
                found.append((path + (key, "value"), f"{item['name']} carries a literal value", "no-secret-material"))
            _walk_secrets(item, path + (key,), found)


def pod_policies(pod: Obj, path: JsonPath) -> Iterator[Violation]:
    """Pod Security Standards "restricted", plus resources, probes and pinned images."""
    pod_context = pod.get("securityContext") or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            yield path + (field,), f"{field} is not allowed", "pss-host-namespaces"
    for i, volume in enumerate(pod.get("volumes") or []):
        if "hostPath" in volume:
            yield path + ("volumes", i, "hostPath"), "hostPath volumes are not allowed", "pss-host-path"
    pod_non_root = pod_context.get("runAsNonRoot") is True
    pod_seccomp = (pod_context.get("seccompProfile") or {}).get("type")
    if pod_context.get("runAsUser") == 0:
        yield path + ("securityContext", "runAsUser"), "runAsUser 0 (root) is not allowed", "pss-run-as-non-root"
    for group in ("initContainers", "containers"):
        for index, c in enumerate(pod.get(group) or []):
            yield from _container(c, path + (group, index), pod_non_root, pod_seccomp, group == "containers")


def _container(c: Obj, path: JsonPath, pod_non_root: bool, pod_seccomp: Any, long_running: bool) -> Iterator[Violation]:
    ctx = c.get("securityContext") or {}
    sc = path + ("securityContext",)
    if ctx.get("privileged"):
        yield sc + ("privileged",), "privileged containers are not allowed", "pss-privileged"
    if ctx.get("allowPrivilegeEscalation") is not False:
        yield sc + ("allowPrivilegeEscalation",), "allowPrivilegeEscalation must be false", "pss-privilege-escalation"
    capabilities = ctx.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or []):
        yield sc + ("capabilities", "drop"), "capabilities must drop ALL", "pss-capabilities"
    extra = [cap for cap in capabilities.get("add") or [] if cap != "NET_BIND_SERVICE"]
    if extra:
        yield sc + ("capabilities", "add"), f"adding {', '.join(extra)} is not allowed", "pss-capabilities"
    if ctx.get("runAsNonRoot") is False or not (pod_non_root or ctx.get("runAsNonRoot") is True):
        yield sc + ("runAsNonRoot",), "runAsNonRoot must be true (pod or container)", "pss-run-as-non-root"
    if ctx.get("runAsUser") == 0:
        yield sc + ("runAsUser",), "runAsUser 0 (root) is not allowed", "pss-run-as-non-root"
    seccomp = (ctx.get("seccompProfile") or {}).get("type", pod_seccomp)
    if seccomp not in ("RuntimeDefault", "Localhost"):
        yield sc + ("seccompProfile",), "seccompProfile must be RuntimeDefault or Localhost", "pss-seccomp"
    for i, port in enumerate(c.get("ports") or []):
        if port.get("hostPort"):
            yield path + ("ports", i, "hostPort"), "hostPort is not allowed", "pss-host-ports"
    requests = (c.get("resources") or {}).get("requests") or {}
    missing = [r for r in ("cpu", "memory") if r not in requests]
    if missing:
        yield path + ("resources", "requests"), f"no {' or '.join(missing)} request", "resources-set"
    if long_running:
        for probe in ("livenessProbe", "readinessProbe"):
            if probe not in c:
                yield path + (probe,), f"no {probe}", "probes-set"
    image = str(c.get("image", ""))
    last = image.rsplit("/", 1)[-1]
    if "@sha256:" not in image and (":" not in last or last.endswith(":latest")):
        yield path + ("image",), f"image {image!r} is not pinned (use a version tag or a digest)", "image-pinned"


def endpoint_policies(objects: list[Obj]) -> Iterator[tuple[int, JsonPath, str, str]]:
    """Policies across one environment's objects: (index of the object, path, message, policy id)."""
    services = {f"{metadata_of(o).get('name')}.{metadata_of(o).get('namespace')}.svc.cluster.local"
                for o in objects if o.get("kind") == "Service"}
    for i, obj in enumerate(objects):
        if obj.get("kind") == "VirtualService":
            yield from ((i, *v) for v in _virtual_service(obj, services))
            yield from ((i, *v) for v in _auth_present(obj, objects))


def _virtual_service(vs: Obj, services: set[str]) -> Iterator[Violation]:
    namespace = metadata_of(vs).get("namespace")
    for r, route in enumerate(sequence(mapping(vs.get("spec")).get("http"))):
        destinations = [mapping(d) for d in sequence(mapping(route).get("route"))]
        weights = [d.get("weight") for d in destinations]
        if len(destinations) > 1 or any(w is not None for w in weights):
            if not all(isinstance(w, int) and not isinstance(w, bool) for w in weights) or sum(weights) != 100:
                yield ("spec", "http", r, "route"), f"weights {weights} must be integers summing to 100", \
                    "traffic-weights"
        for d, destination in enumerate(destinations):
            host = str(mapping(destination.get("destination")).get("host", ""))
            full = host if host.endswith(".svc.cluster.local") else f"{host}.{namespace}.svc.cluster.local"
            if full not in services:
                yield (("spec", "http", r, "route", d, "destination", "host"),
                       f"{host!r} is not a rendered Service", "route-destination-exists")


def _auth_present(vs: Obj, objects: list[Obj]) -> Iterator[Violation]:
    mode = mapping(metadata_of(vs).get("annotations")).get("endpointgen.io/auth")
    endpoint = mapping(metadata_of(vs).get("labels")).get("endpointgen.io/endpoint")
    namespace = metadata_of(vs).get("namespace")

    def selecting(kind: str, action: str | None = None) -> bool:
        return any(o.get("kind") == kind and metadata_of(o).get("namespace") == namespace
                   and mapping(mapping(mapping(o.get("spec")).get("selector")).get("matchLabels"))
                   .get("endpointgen.io/endpoint") == endpoint
                   and (action is None or mapping(o.get("spec")).get("action") == action) for o in objects)

    path = ("metadata", "annotations", "endpointgen.io/auth")
    if mode == "token" and not (selecting("RequestAuthentication") and selecting("AuthorizationPolicy", "ALLOW")):
        yield path, "token auth is on but the RequestAuthentication or ALLOW AuthorizationPolicy is missing", \
            "auth-objects-present"
    if mode == "key" and not selecting("AuthorizationPolicy", "CUSTOM"):
        yield path, "key auth is on but the CUSTOM AuthorizationPolicy is missing", "auth-objects-present"
