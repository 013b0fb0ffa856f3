"""Platform changes in words: what a change does to an environment's shared objects (namespaces, the gateway, the
key-auth authorizer and its keys, the mesh config, Flux), read from the rendered objects of base and head, so a
template change is described as well as an edit of environment.yaml."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..layout import CLUSTERS_DIR, ENDPOINTS_DIR, ENVIRONMENT_FILE, RENDERED_DIR
from ..render.mesh import SHARED_CONFIGMAP_PREFIX
from ..spec.defaults import AUTHORIZER_NAME
from ..spec.model import Environment

REVISION_LABEL = "istio.io/rev"
SHOWN_CHANGES = 4  # field changes named per object; the rest are counted
SHORT_VALUE = 60  # longer values (and multi-line ones) are said to change, not shown

ObjectKey = tuple[str, str, str]  # kind, namespace ("" when cluster-scoped), name


@dataclass
class PlatformChange:
    """What changed in one environment outside its endpoints, in words."""

    env: str
    sentences: list[str] = field(default_factory=list)
    before: dict[str, int] = field(default_factory=dict)  # no traffic split: kept so a comment treats it as
    after: dict[str, int] = field(default_factory=dict)   # an endpoint's change

    @property
    def title(self) -> str:
        return f"platform ({self.env})"


def platform_change(old: Environment | None, new: Environment | None,
                    files: Mapping[str, tuple[str, str]]) -> PlatformChange:
    """The environment's changed settings, then each shared object added, removed or changed."""
    env = (new or old).name  # type: ignore[union-attr]
    change = PlatformChange(env)
    if old is None or new is None:
        change.sentences.append("new environment" if old is None else "environment removed")
    else:
        fields = _field_changes(old.settings, new.settings)
        if fields:
            change.sentences.append(f"{ENVIRONMENT_FILE}: {fields}")
    shared = {path: texts for path, texts in files.items() if is_platform_file(path, env)}
    before = _objects(text for text, _ in shared.values())
    after = _objects(text for _, text in shared.values())
    keys = sorted(set(before) | set(after), key=_order)
    # a namespace added or removed brings or takes its objects: those without words of their own go with it
    moved = {name for kind, _, name in keys if kind == "Namespace" and ((kind, "", name) in before) !=
             ((kind, "", name) in after)}
    carried: dict[str, list[str]] = {}
    for key in keys:
        kind, namespace, name = key
        if namespace in moved and (key in before) != (key in after) and not _has_words(key, before.get(key)
                                                                                        or after[key]):
            carried.setdefault(namespace, []).append(f"{kind} {name}")
    for key in keys:
        if key[1] not in carried or f"{key[0]} {key[2]}" not in carried[key[1]]:
            change.sentences += describe_object(key, before.get(key), after.get(key), carried.get(key[2], []))
    return change


def rolled(files: Mapping[str, tuple[str, str]]) -> list[str]:
    """The Deployments among these files whose pod template changes: their pods are replaced, a rolling update."""
    before = _objects(text for text, _ in files.values())
    after = _objects(text for _, text in files.values())
    return [name for (kind, _, name), obj in sorted(after.items()) if kind == "Deployment"
            and (kind, obj["metadata"].get("namespace", ""), name) in before
            and before[(kind, obj["metadata"].get("namespace", ""), name)]["spec"]["template"] != obj["spec"]["template"]]


def _order(key: ObjectKey) -> tuple[int, ObjectKey]:
    """Namespaces, the gateway, the authorizer and its keys, the mesh config, then the rest by kind and name."""
    kind, _, name = key
    first = {"Namespace": 0, "Gateway": 1, "Deployment": 2 if name == AUTHORIZER_NAME else 5, "ExternalSecret": 3,
             "ConfigMap": 4 if name.startswith(SHARED_CONFIGMAP_PREFIX) else 5}
    return first.get(kind, 5), key


def is_platform_file(path: str, env: str) -> bool:
    """A file of the environment that no one endpoint owns (rendered/<env>/platform, key-auth, clusters/<env>/*)."""
    return (path.startswith((f"{RENDERED_DIR}/{env}/", f"{CLUSTERS_DIR}/{env}/"))
            and not path.startswith((f"{RENDERED_DIR}/{env}/{ENDPOINTS_DIR}/", f"{CLUSTERS_DIR}/{env}/{ENDPOINTS_DIR}/")))


def _objects(texts: Iterator[str]) -> dict[ObjectKey, dict[str, Any]]:
    """The objects of rendered files by kind, namespace and name; kustomize's own kustomization.yaml left out."""
    found = {}
    for text in texts:
        for obj in yaml.safe_load_all(text):
            if isinstance(obj, dict) and not obj.get("apiVersion", "").startswith("kustomize.config.k8s.io/"):
                meta = obj.get("metadata", {})
                found[(obj["kind"], meta.get("namespace", ""), meta["name"])] = obj
    return found


def _has_words(key: ObjectKey, obj: dict[str, Any]) -> bool:
    """Whether the object is described in the platform's words (describe_object), not by its fields."""
    kind, _, name = key
    return (kind in ("Namespace", "Gateway") or (kind == "ConfigMap" and name.startswith(SHARED_CONFIGMAP_PREFIX))
            or (kind == "Deployment" and name == AUTHORIZER_NAME)
            or (kind == "ExternalSecret" and "endpointgen.io/slot" in obj["metadata"].get("annotations", {})))


def describe_object(key: ObjectKey, old: dict[str, Any] | None, new: dict[str, Any] | None,
                    carried: Sequence[str] = ()) -> list[str]:
    """One shared object's change: in the platform's words where it has them, else the fields that changed.
    `carried`: the objects a namespace added or removed brings or takes with it."""
    kind, namespace, name = key
    if _has_words(key, old or new):  # type: ignore[arg-type]
        if kind == "Namespace":
            return _namespace(name, old, new, carried)
        if kind == "Gateway":
            return _gateway(f"{namespace}/{name}", old, new)
        if kind == "ConfigMap":
            return _mesh_config(name[len(SHARED_CONFIGMAP_PREFIX):], old, new)
        if kind == "Deployment":
            return _authorizer(namespace, old, new)
        return _scoring_key(old, new)
    label = f"{'Flux ' if kind == 'Kustomization' else ''}{kind} {namespace + '/' if namespace else ''}{name}"
    if old is None or new is None:
        return [f"{label} {'added' if old is None else 'removed'}"]
    fields = _field_changes(_without_annotations(old), _without_annotations(new))
    return [f"{label}: {fields}"] if fields else []


def _namespace(name: str, old: dict[str, Any] | None, new: dict[str, Any] | None,
               carried: Sequence[str]) -> list[str]:
    revisions = [(o or {}).get("metadata", {}).get("labels", {}).get(REVISION_LABEL) for o in (old, new)]
    objects = ", ".join(carried)
    if old is None:
        return [f"namespace {name} added" + (f" (Istio revision {revisions[1]})" if revisions[1] else "")
                + (f" with {objects}" if objects else "")]
    if new is None:
        return [f"namespace {name} removed: Flux deletes it with everything in it" + (f" ({objects})" if objects
                                                                                       else "")]
    out = []
    if revisions[0] != revisions[1]:
        out.append(f"namespace {name} moves from Istio revision {revisions[0]} to {revisions[1]}")
    rest = _field_changes(_without_revision(old), _without_revision(new))
    return out + ([f"namespace {name}: {rest}"] if rest else [])


def _gateway(label: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[str]:
    def facts(gw: dict[str, Any]) -> tuple[list[str], set[str], str | None]:
        servers = gw["spec"].get("servers", [])
        hosts = {h for server in servers for h in server.get("hosts", [])}
        tls = next((s["tls"].get("credentialName") for s in servers if s.get("tls")), None)
        return sorted(f"{k}={v}" for k, v in gw["spec"].get("selector", {}).items()), hosts, tls
    if old is None or new is None:
        selector, hosts, tls = facts(new or old)  # type: ignore[arg-type]
        if new is None:
            return [f"gateway {label} removed"]
        return [f"gateway {label} added on {', '.join(selector)}: hosts {', '.join(sorted(hosts))}, "
                + (f"TLS with {tls}" if tls else "no TLS")]
    (old_selector, old_hosts, old_tls), (new_selector, new_hosts, new_tls) = facts(old), facts(new)
    out = []
    if old_hosts != new_hosts:
        moves = [f"{verb} {', '.join(sorted(hosts))}" for verb, hosts in
                 (("adds", new_hosts - old_hosts), ("drops", old_hosts - new_hosts)) if hosts]
        out.append(f"gateway {label} {' and '.join(moves)}")
    if old_tls != new_tls:
        out.append(f"gateway {label} TLS credential {_show(old_tls)} -> {_show(new_tls)}")
    if old_selector != new_selector:
        out.append(f"gateway {label} moves from {', '.join(old_selector)} to {', '.join(new_selector)}")
    return out or [f"gateway {label}: {_field_changes(old, new)}"]


def _mesh_config(revision: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[str]:
    def mesh(cm: dict[str, Any] | None) -> dict[str, Any]:
        return (yaml.safe_load(cm.get("data", {}).get("mesh") or "{}") or {}) if cm else {}
    before, after = mesh(old), mesh(new)
    label = f"mesh config of Istio revision {revision}"
    if old is None or new is None:
        providers = ", ".join(p["name"] for p in after.get("extensionProviders", []))
        return [f"{label} added" + (f" (extension providers: {providers})" if providers else "")
                if old is None else f"{label} removed"]
    names = [{p["name"] for p in m.get("extensionProviders", [])} for m in (before, after)]
    out = [f"{label}: extension provider {name} {verb}" for verb, added in (("added", names[1] - names[0]),
                                                                           ("removed", names[0] - names[1]))
           for name in sorted(added)]
    fields = _field_changes(before, after) if not out else ""
    return out + ([f"{label}: {fields}"] if fields else [])


def _authorizer(namespace: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[str]:
    def facts(d: dict[str, Any]) -> tuple[Any, str]:
        return d["spec"].get("replicas"), d["spec"]["template"]["spec"]["containers"][0]["image"]
    if old is None or new is None:
        replicas, image = facts(new or old)  # type: ignore[arg-type]
        return [f"key-auth authorizer added in namespace {namespace}: {replicas} replicas of {image}"
                if old is None else "key-auth authorizer removed: no endpoint of this environment uses key auth"]
    (old_replicas, old_image), (new_replicas, new_image) = facts(old), facts(new)
    out = [f"key-auth authorizer {what} {a} -> {b}" for what, a, b in (("image", old_image, new_image),
                                                                        ("replicas", old_replicas, new_replicas))
           if a != b]
    if old["spec"]["template"] != new["spec"]["template"]:
        why = "" if old_image != new_image else f" ({_why(old['spec']['template'], new['spec']['template'])})"
        out.append(f"the key-auth authorizer's pods roll{why}")
    rest = _field_changes(_without_annotations({**old, "spec": {}}), _without_annotations({**new, "spec": {}}))
    return out + ([f"key-auth authorizer: {rest}"] if rest else [])


def _scoring_key(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[str]:
    def facts(es: dict[str, Any]) -> str:
        notes = es["metadata"]["annotations"]
        secret = es["spec"]["data"][0]["remoteRef"]["key"]
        return f"the {notes['endpointgen.io/slot']} key of {notes['endpointgen.io/endpoint']} (Key Vault secret {secret})"
    if old is None:
        return [f"the key-auth authorizer gets {facts(new)}"]  # type: ignore[arg-type]
    if new is None:
        return [f"the key-auth authorizer no longer gets {facts(old)}"]
    if facts(old) != facts(new):
        return [f"the key-auth authorizer gets {facts(new)} instead of {facts(old)}"]
    fields = _field_changes(_without_annotations(old), _without_annotations(new))
    return [f"the key-auth authorizer's copy of {facts(new)}: {fields}"] if fields else []


def _without_annotations(obj: dict[str, Any]) -> dict[str, Any]:
    return {**obj, "metadata": {k: v for k, v in obj.get("metadata", {}).items() if k != "annotations"}}


def _without_revision(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata", {})
    labels = {k: v for k, v in meta.get("labels", {}).items() if k != REVISION_LABEL}
    return _without_annotations({**obj, "metadata": {**meta, "labels": labels}})


def _why(old: Any, new: Any) -> str:
    """A change in a few words: the fields themselves when one or two changed, else the sections they are in."""
    paths = _changed_paths(old, new)
    if len(paths) <= 2:
        return _field_changes(old, new)
    sections = sorted({re.sub(r"^([^.\[]+(\.[^.\[]+)?).*", r"\1", path) for path in paths})
    return f"{', '.join(sections)} change{'s' if len(sections) == 1 else ''}"


def _changed_paths(old: Any, new: Any) -> list[str]:
    a, b = dict(_leaves(old)), dict(_leaves(new))
    return [path for path in sorted(set(a) | set(b), key=_path_order) if a.get(path, _MISSING) != b.get(path, _MISSING)]


def _field_changes(old: Any, new: Any) -> str:
    """The fields that differ, as "path old -> new" (or "path changed" for long values), the first few named."""
    a, b = dict(_leaves(old)), dict(_leaves(new))
    said = []
    for path in _changed_paths(old, new):
        before, after = (_show(v) if v is not _MISSING else "unset" for v in (a.get(path, _MISSING),
                                                                              b.get(path, _MISSING)))
        said.append(f"{path} changed" if max(len(before), len(after)) > SHORT_VALUE or "\n" in before + after
                    else f"{path} {before} -> {after}")
    more = len(said) - SHOWN_CHANGES
    return ", ".join(said[:SHOWN_CHANGES]) + (f" and {more} more" if more > 0 else "")


_MISSING = object()


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every scalar under `value` by its path (a.b[0].c); a list of scalars is one leaf, so hosts compare whole."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list) and any(isinstance(item, (dict, list)) for item in value):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{path}[{index}]")
    else:
        yield path, value


def _path_order(path: str) -> tuple[int, str]:
    return path.count("."), path


def _show(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)
