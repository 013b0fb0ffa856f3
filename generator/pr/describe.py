"""A change to one endpoint in words: what a reviewer needs, traffic first, then images and models, then settings;
a new endpoint or version described whole (image, models, resources, scaling, traffic, auth, where it is served)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..render.tokens import required
from ..render.views import environment_view
from ..spec.model import Endpoint, Version
from ..spec.traffic import route_weights


@dataclass
class EndpointChange:
    """What changed for one endpoint in one environment, in words and as traffic splits."""

    env: str
    endpoint: str
    sentences: list[str] = field(default_factory=list)
    before: dict[str, int] = field(default_factory=dict)
    after: dict[str, int] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return f"{self.endpoint} ({self.env})"


def _weights(ep: Endpoint | None) -> dict[str, int]:
    return dict(zip((v.name for v in ep.versions), route_weights([v.share for v in ep.versions]))) if ep else {}


# (setting, words) described per version when it changes; the image and models get their own wording.
VERSION_SETTINGS = [
    ("autoscale_min_replicas", "min replicas"), ("autoscale_max_replicas", "max replicas"),
    ("num_replicas", "replicas"), ("autoscale_enabled", "autoscaling"),
    ("autoscale_target_utilization", "target utilization"), ("cpu_cores", "CPU"), ("memory_gb", "memory GB"),
    ("cpu_cores_limit", "CPU limit"), ("memory_gb_limit", "memory GB limit"), ("gpu_cores", "GPUs"),
    ("scoring_timeout_ms", "scoring timeout ms"), ("scoring_retries", "retries"),
    ("replica_max_concurrent_requests", "max concurrent requests"), ("max_request_wait_time", "max queue wait ms"),
    ("initial_delay_seconds", "liveness initial delay"), ("period_seconds", "liveness period"),
    ("timeout_seconds", "liveness timeout"), ("success_threshold", "readiness success threshold"),
    ("failure_threshold", "failure threshold"), ("collect_model_data", "model data collection"),
    ("is_control_version_type", "control"), ("run_as_user", "user"), ("run_as_group", "group"),
    ("image_entrypoint", "image's own entrypoint"), ("scoring_workload_identity", "workload identity in scoring"),
]
ENDPOINT_SETTINGS = [("auth_enabled", "key auth"), ("token_auth_enabled", "token auth"),
                     ("enable_app_insights", "App Insights"), ("namespace", "namespace")]
# Fields that get a sentence of their own; a change to any other field is named in a catch-all sentence.
DESCRIBED_VERSION = {s for s, _ in VERSION_SETTINGS} | {"version_name", "models", "traffic_percentile", "is_default"}
DESCRIBED_ENDPOINT = {s for s, _ in ENDPOINT_SETTINGS} | {"name", "versions", "properties"}


def describe(old: Endpoint | None, new: Endpoint | None, key: tuple[str, str]) -> EndpointChange:
    """Sentences a reviewer wants: traffic first, then images and models, then settings."""
    change = EndpointChange(key[0], key[1], before=_weights(old), after=_weights(new))
    if old is None:
        split = ", ".join(f"{name} {w}%" for name, w in change.after.items())
        change.sentences += [f"new endpoint ({split})", where_served(new)]
        change.sentences += [f"{v.name}: {version_summary(v, len(new.versions) > 1)}" for v in new.versions]
        return change
    if new is None:
        change.sentences.append("endpoint removed")
        return change
    shifts = [f"{name} traffic {change.before.get(name, 0)}% -> {change.after.get(name, 0)}%"
              for name in [*change.after, *(n for n in change.before if n not in change.after)]
              if change.before.get(name, 0) != change.after.get(name, 0)]
    if shifts:
        change.sentences.append(", ".join(shifts))
    olds, news = {v.name: v for v in old.versions}, {v.name: v for v in new.versions}
    change.sentences += [f"version {name} added: {change.after[name]}% of traffic, {version_summary(v)}, {auth(new)}"
                         for name, v in news.items() if name not in olds]
    change.sentences += [f"version {name} deleted" for name in olds if name not in news]
    defaults = (next(v.name for v in old.versions if v.is_default), next(v.name for v in new.versions if v.is_default))
    if defaults[0] != defaults[1]:
        change.sentences.append(f"default version {defaults[0]} -> {defaults[1]}")
    for name in (n for n in news if n in olds):
        a, b = olds[name].settings, news[name].settings
        change.sentences += [f"{name} {s}" for s in _image_and_models(a, b)]
        change.sentences += [f"{name} {words} {_show(a.get(setting))} -> {_show(b.get(setting))}"
                             for setting, words in VERSION_SETTINGS if a.get(setting) != b.get(setting)]
        other = _other_fields(a, b, DESCRIBED_VERSION)
        if other:
            change.sentences.append(f"{name} {', '.join(other)} changed")
    for setting, words in ENDPOINT_SETTINGS:
        if old.settings.get(setting) != new.settings.get(setting):
            change.sentences.append(f"{words} {_show(old.settings.get(setting))} -> {_show(new.settings.get(setting))}")
    old_properties, new_properties = old.settings.get("properties", {}), new.settings.get("properties", {})
    added = sorted(set(new_properties) - set(old_properties))
    if added:
        change.sentences.append(f"properties added: {', '.join(added)}")
    broken = sorted(k for k, v in old_properties.items() if new_properties.get(k) != v)
    if broken:
        change.sentences.append(f"properties removed or changed: {', '.join(broken)}")
    other = _other_fields(old.settings, new.settings, DESCRIBED_ENDPOINT)
    if other:
        change.sentences.append(f"{', '.join(other)} changed")
    return change


def version_summary(v: Version, several: bool = True) -> str:
    """A version whole, as a reviewer checks it: image, models, resources, scaling, its role in the traffic rule."""
    s = v.settings
    models = " and ".join(f"{m['name']}:{m['version']}" for m in s["models"])
    parts = [f"image {s['inference_config']['image']}",
             f"model{'s' if len(s['models']) > 1 else ''} {models}" if models else "no models (the image holds them)",
             f"{_number(s['cpu_cores'])} CPU and {_number(s['memory_gb'])} GB memory"]
    limits = [f"{_number(s[k])} {unit}" for k, unit in (("cpu_cores_limit", "CPU"), ("memory_gb_limit", "GB"))
              if s.get(k) is not None]
    if limits:
        parts[-1] += f" (limit {' and '.join(limits)})"
    if s["gpu_cores"]:
        parts.append(f"{s['gpu_cores']} GPU{'s' if s['gpu_cores'] > 1 else ''}")
    if s["autoscale_enabled"]:
        parts.append(f"autoscaling {s['autoscale_min_replicas']} to {s['autoscale_max_replicas']} replicas "
                     f"at {s['autoscale_target_utilization']}% utilization")
    else:
        parts.append(f"{s['num_replicas']} replica{'s' if s['num_replicas'] != 1 else ''}")
    parts += [role for role, on in (("the default version", v.is_default and several),
                                    ("the control version", s["is_control_version_type"])) if on]
    return ", ".join(parts)


def auth(ep: Endpoint) -> str:
    """How callers authenticate, and where the keys are."""
    if ep.key_refs:
        keys = [k for k in (ep.key_refs["primary_key_secret"], ep.key_refs["secondary_key_secret"]) if k]
        return f"key auth (keys {' and '.join(keys)} in Key Vault {ep.key_refs['key_vault']})"
    if ep.settings["token_auth_enabled"]:
        token_auth = ep.env.settings.get("token_auth", {})
        needs = [f"{what} {', '.join(values)}" for what, values in
                 (("role", required(token_auth, ep.doc.data, "required_roles")),
                  ("scope", required(token_auth, ep.doc.data, "required_scopes"))) if values]
        return (f"Azure AD token auth for {' or '.join(token_auth.get('audiences', []))}, "
                + (f"needing {' and '.join(needs)}" if needs else "needing no role or scope: any token the issuer "
                   "gives for that audience scores"))
    return "no auth: anyone who reaches the gateway can score"


def where_served(ep: Endpoint) -> str:
    """Namespace, scoring URL on each gateway host, auth and App Insights of a new endpoint."""
    env = environment_view(ep.env)
    scheme = "https" if env["gateway"].get("tls_credential_name") else "http"
    urls = " and ".join(f"{scheme}://{host}/api/v1/service/{ep.name}/score" for host in env["istio"]["hosts"])
    insights = ", App Insights on" if ep.settings["enable_app_insights"] else ""
    return f"namespace {ep.namespace}, scored at {urls}, {auth(ep)}{insights}"


def _number(value: Any) -> str:
    """0.5 -> "0.5", 2.0 -> "2": numbers as a person writes them."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _other_fields(a: dict[str, Any], b: dict[str, Any], described: set[str]) -> list[str]:
    """Fields that differ and have no sentence of their own (inference_config's image has one)."""
    names = []
    for key in sorted((set(a) | set(b)) - described):
        if key == "inference_config":
            old, new = a[key], b[key]
            names += [f"{key}.{k}" for k in sorted(set(old) | set(new)) if k != "image" and old.get(k) != new.get(k)]
        elif a.get(key) != b.get(key):
            names.append(key)
    return names


def _image_and_models(a: dict[str, Any], b: dict[str, Any]) -> Iterator[str]:
    old_image, new_image = a["inference_config"]["image"], b["inference_config"]["image"]
    if old_image != new_image:
        (old_repo, old_tag), (new_repo, new_tag) = _split_image(old_image), _split_image(new_image)
        yield (f"image tag {old_tag} -> {new_tag}" if old_repo == new_repo
               else f"image {old_image} -> {new_image}")
    old_models = {m["name"]: str(m["version"]) for m in a["models"]}
    new_models = {m["name"]: str(m["version"]) for m in b["models"]}
    for name in sorted(set(old_models) | set(new_models)):
        if old_models.get(name) != new_models.get(name):
            yield f"model {name} {old_models.get(name, '(none)')} -> {new_models.get(name, '(none)')}"


def _split_image(image: str) -> tuple[str, str]:
    if "@" in image:
        repo, digest = image.split("@", 1)
        return repo, digest[:19]
    repo, _, tag = image.rpartition(":")
    return (repo, tag) if repo and "/" not in tag else (image, "(none)")


def _show(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


