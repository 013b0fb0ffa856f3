"""`endpointgen diff`: what a change does, per endpoint in words, then the manifest diff."""

from __future__ import annotations

import difflib
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..pipeline.generate import render_texts
from ..problems import EndpointgenError, ProblemsFound
from ..spec.model import Endpoint
from ..spec.repository import Repository, load_repository
from ..spec.traffic import route_weights
from .history import load_base
from .upgrades import revision_warnings


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


@dataclass
class Diff:
    changes: list[EndpointChange]
    files: dict[str, tuple[str, str]]  # path -> (before, after), only files that differ
    warnings: list[str] = field(default_factory=list)  # steps of an Istio add-on upgrade taken out of order
    base: str = "HEAD"  # the git ref compared with


def diff(root: Path, ref: str, envs: Sequence[str] = ()) -> Diff:
    """Render base and head in memory and describe the difference."""
    head = load_repository(root, envs)
    if head.problems:
        raise ProblemsFound(head.problems)
    with tempfile.TemporaryDirectory(prefix="endpointgen-base-") as tmp:
        base = load_base(root, ref, Path(tmp), envs)
        if base.problems:
            raise EndpointgenError(f"the specs on {ref} are not valid, so there is nothing to compare with: "
                                   + "; ".join(str(p) for p in base.problems[:3]))
        old_files, new_files = _rendered(base), _rendered(head)
        warnings = revision_warnings(base, head, ref)
    changed = {path: (old_files.get(path, ""), new_files.get(path, ""))
               for path in sorted(set(old_files) | set(new_files)) if old_files.get(path) != new_files.get(path)}
    before = {(ep.env.name, ep.name): ep for ep in base.endpoints}
    after = {(ep.env.name, ep.name): ep for ep in head.endpoints}
    changes = []
    for key in sorted(set(before) | set(after)):
        change = describe(before.get(key), after.get(key), key)
        if change.sentences:
            changes.append(change)
    return Diff(changes, changed, warnings, ref)


def _rendered(repo: Repository) -> dict[str, str]:
    """Every file render would write for the repo, all environments together (rendered in parallel)."""
    return {path: text for files in render_texts(repo).values() for path, text in files.items()}


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
    if old is None or new is None:
        split = ", ".join(f"{name} {w}%" for name, w in (change.after or change.before).items())
        change.sentences.append(f"new endpoint ({split})" if old is None else "endpoint removed")
        return change
    shifts = [f"{name} traffic {change.before.get(name, 0)}% -> {change.after.get(name, 0)}%"
              for name in [*change.after, *(n for n in change.before if n not in change.after)]
              if change.before.get(name, 0) != change.after.get(name, 0)]
    if shifts:
        change.sentences.append(", ".join(shifts))
    olds, news = {v.name: v for v in old.versions}, {v.name: v for v in new.versions}
    change.sentences += [f"version {name} added" for name in news if name not in olds]
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


def unified(path: str, before: str, after: str) -> str:
    lines = difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                 fromfile=f"a/{path}" if before else "/dev/null",
                                 tofile=f"b/{path}" if after else "/dev/null")
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def no_endpoint_changes(d: Diff) -> str:
    if d.files:
        return (f"no endpoint spec changes, but {len(d.files)} manifest file(s) change "
                "(environment settings or templates)")
    return "no endpoint changes"


def as_text(d: Diff) -> str:
    lines = [f"{c.title}: " + "; ".join(c.sentences) for c in d.changes] or [no_endpoint_changes(d)]
    lines += d.warnings
    patches = [unified(path, a, b) for path, (a, b) in d.files.items()]
    return "\n".join(lines) + ("\n\n" + "".join(patches) if patches else "\n")
