"""`endpointgen import`: an endpoint spec from the files Azure ML SDK v1 users hold.

Reads the JSON of `AksEndpoint.serialize()` (or the service JSON it is built from: `kvTags`, version `type`), or
AKSENDPOINT deployment config files (one version each) with an optional inference config, and writes an endpoint
spec in the house style. Values the source leaves out take the SDK's defaults as v1 applied them; a value is
written only where it differs from what endpointgen would otherwise use in that environment, so behaviour does
not change on migration. Keys are never imported, and what cannot be mapped is said, in the output and as
comments in the spec.
"""

from __future__ import annotations

import difflib
import io
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap

from ..problems import Problem, ProblemsFound, UsageError, display_path
from ..render.views import APP_ROOT
from ..spec.collection import NOTHING_COLLECTS, nowhere_to_collect
from ..spec.defaults import VERSION_DEFAULTS
from ..spec.loader import LoadError, load_yaml
from ..spec.repository import load_environments
from .changes import ENDPOINT_ORDER, VERSION_ORDER
from .specfile import check_edit, save, spec_file, yaml_for

# Fields the service owns (state, times, identities): read, never migrated, never warned about.
SERVICE_OWNED = {
    "state", "createdTime", "updatedTime", "error", "workspaceName", "deploymentStatus", "createdBy", "imageId",
    "imageDigest", "imageDetails", "scoringUri", "computeType", "computeName", "swaggerUri", "id", "operationId",
}
SDK_DEFAULTS = {name: VERSION_DEFAULTS[name] for name in (
    "autoscale_min_replicas", "autoscale_max_replicas", "autoscale_refresh_seconds", "autoscale_target_utilization",
    "cpu_cores", "memory_gb", "cpu_cores_limit", "memory_gb_limit", "gpu_cores", "scoring_timeout_ms",
    "replica_max_concurrent_requests", "max_request_wait_time", "period_seconds", "initial_delay_seconds",
    "timeout_seconds", "success_threshold", "failure_threshold", "collect_model_data", "traffic_percentile")}
# camelCase path in the v1 JSON -> endpointgen version field
VERSION_FIELDS = {
    ("autoScaler", "minReplicas"): "autoscale_min_replicas",
    ("autoScaler", "maxReplicas"): "autoscale_max_replicas",
    ("autoScaler", "refreshPeriodInSeconds"): "autoscale_refresh_seconds",
    ("autoScaler", "targetUtilization"): "autoscale_target_utilization",
    ("containerResourceRequirements", "cpu"): "cpu_cores",
    ("containerResourceRequirements", "cpuLimit"): "cpu_cores_limit",
    ("containerResourceRequirements", "memoryInGB"): "memory_gb",
    ("containerResourceRequirements", "memoryInGBLimit"): "memory_gb_limit",
    ("containerResourceRequirements", "gpu"): "gpu_cores",
    ("dataCollection", "storageEnabled"): "collect_model_data",
    ("livenessProbeRequirements", "periodSeconds"): "period_seconds",
    ("livenessProbeRequirements", "initialDelaySeconds"): "initial_delay_seconds",
    ("livenessProbeRequirements", "timeoutSeconds"): "timeout_seconds",
    ("livenessProbeRequirements", "successThreshold"): "success_threshold",
    ("livenessProbeRequirements", "failureThreshold"): "failure_threshold",
    ("scoringTimeoutMs",): "scoring_timeout_ms",
    ("maxConcurrentRequestsPerContainer",): "replica_max_concurrent_requests",
    ("maxQueueWaitMs",): "max_request_wait_time",
    ("trafficPercentile",): "traffic_percentile",
    ("gpuCores",): "gpu_cores",  # deployment config files put GPUs at the top level
}
KNOWN_VERSION_KEYS = {path[0] for path in VERSION_FIELDS} | {
    "name", "versionName", "description", "tags", "kvTags", "properties", "autoScaler", "numReplicas",
    "modelDetails", "models", "isDefault", "versionType", "type", "isControlVersionType", "environmentDetails",
    "environmentImageRequest",
    "environment", "keys", "authEnabled", "tokenAuthEnabled", "aadAuthEnabled", "appInsightsEnabled", "namespace",
    "entryScript", "sourceDirectory"} | SERVICE_OWNED
KNOWN_SUBKEYS = {"autoScaler": {"autoscaleEnabled", "minReplicas", "maxReplicas", "refreshPeriodInSeconds",
                                "targetUtilization"},
                 "containerResourceRequirements": {"cpu", "cpuLimit", "memoryInGB", "memoryInGBLimit", "gpu"},
                 "dataCollection": {"storageEnabled"},
                 "livenessProbeRequirements": {"periodSeconds", "initialDelaySeconds", "timeoutSeconds",
                                               "successThreshold", "failureThreshold"}}
RESERVED_PREFIXES = ("AZUREML_", "AML_")
DEFAULT_MODEL_URI = "azureml://models/{name}/versions/{version}"


@dataclass
class Imported:
    """The spec an import produced, where it goes, and what the user must hear."""

    path: Path
    text: str
    warnings: list[str] = field(default_factory=list)
    key_notes: list[str] = field(default_factory=list)


@dataclass
class Source:
    path: Path
    display: str
    kind: str  # endpoint | deployment | inference
    data: dict[str, Any]


def read_source(root: Path, path: Path) -> Source:
    """One v1 file: JSON or YAML (with the spec loader's limits), classified by what it holds."""
    display = display_path(path, root) if path.is_absolute() else str(path)
    try:
        data = load_yaml(path, display).data
    except LoadError as exc:
        raise ProblemsFound([exc.problem]) from None
    if not isinstance(data, dict):
        raise UsageError(f"{display}: not an AksEndpoint file (expected a JSON or YAML object)")
    compute = data.get("computeType")
    if "versions" in data:
        if compute not in (None, "AKSENDPOINT"):
            raise UsageError(f"{display}: computeType {compute!r} is not an AksEndpoint (AKSENDPOINT)")
        return Source(path, display, "endpoint", data)
    if "entryScript" in data:
        return Source(path, display, "inference", data)
    if compute == "AKSENDPOINT":
        return Source(path, display, "deployment", data)
    raise UsageError(f"{display}: not an AksEndpoint file: no versions (serialize or service JSON), no "
                     f"computeType AKSENDPOINT (deployment config) and no entryScript (inference config)"
                     + (f"; computeType is {compute!r}" if compute else ""))


def dig(data: Mapping[str, Any], path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(data, Mapping) or key not in data:
            return None
        data = data[key]
    return data


def version_fields(v: Mapping[str, Any], warnings: list[str], where: str) -> dict[str, Any]:
    """The AksEndpoint settings of one version, SDK defaults filled in, as endpointgen fields."""
    fields: dict[str, Any] = dict(SDK_DEFAULTS)
    for path, name in VERSION_FIELDS.items():
        value = dig(v, path)
        if value is not None:
            fields[name] = int(value) if isinstance(value, float) and value.is_integer() and name not in (
                "cpu_cores", "cpu_cores_limit", "memory_gb", "memory_gb_limit", "traffic_percentile") else value
    scaler = v.get("autoScaler") or {}
    replicas = v.get("numReplicas")
    fields["autoscale_enabled"] = bool(scaler.get("autoscaleEnabled", replicas is None))
    if fields["autoscale_enabled"]:
        if replicas is not None:
            warnings.append(f"{where}: numReplicas {replicas} is ignored while autoscaling is on (as in v1)")
    else:
        fields["num_replicas"] = replicas if replicas is not None else 1
        for name in [n for n in fields if n.startswith("autoscale_") and n != "autoscale_enabled"]:
            del fields[name]
    for key, sub in KNOWN_SUBKEYS.items():
        for extra in sorted(set(v.get(key) or {}) - sub - ({"eventHubEnabled"} if key == "dataCollection" else set())):
            warnings.append(f"{where}: {key}.{extra} is not modelled by endpointgen; not imported")
    if dig(v, ("dataCollection", "eventHubEnabled")):
        warnings.append(f"{where}: dataCollection.eventHubEnabled (Event Hub model data) is not modelled; not imported")
    for extra in sorted(set(v) - KNOWN_VERSION_KEYS):
        warnings.append(f"{where}: {extra} is not modelled by endpointgen; not imported")
    return fields


def metadata(source: Mapping[str, Any]) -> dict[str, Any]:
    """description, tags (`tags`, or the service JSON's `kvTags`) and properties, where set."""
    tags = source.get("tags") if source.get("tags") is not None else source.get("kvTags")
    found: dict[str, Any] = {"description": source.get("description"),
                             "tags": {str(k): str(t) for k, t in (tags or {}).items()},
                             "properties": {str(k): str(p) for k, p in (source.get("properties") or {}).items()}}
    return {key: value for key, value in found.items() if value}


CURATED_IMAGES = "mcr.microsoft.com/azureml/"


def curated_image(image: str) -> bool:
    """One of Azure ML's curated inference images, which run as the non-root dockeruser."""
    repository = image.split("@", 1)[0].rsplit(":", 1)[0]
    return repository.startswith(CURATED_IMAGES) and repository.endswith("-inference")


def script_location(entry: str | None, source_dir: str | None, env_vars: Mapping[str, str]) -> tuple[str, str] | None:
    """(source_directory inside the image, entry_script relative to it), as v1 laid the app out.

    v1 copied the source folder into the app root under its own name and set AZUREML_SOURCE_DIRECTORY to that
    name and AZUREML_ENTRY_SCRIPT to <name>/<entry script>.
    """
    if entry:
        folder = posixpath.basename(posixpath.normpath(source_dir.replace("\\", "/"))) if source_dir else ""
        folder = "" if folder in (".", "") else folder
        return (f"{APP_ROOT}/{folder}" if folder else APP_ROOT), entry.replace("\\", "/")
    script, folder = env_vars.get("AZUREML_ENTRY_SCRIPT"), env_vars.get("AZUREML_SOURCE_DIRECTORY")
    if not script:
        return None
    if folder and script.startswith(folder.rstrip("/") + "/"):
        return f"{APP_ROOT}/{folder.strip('/')}", script[len(folder.rstrip("/")) + 1:]
    return APP_ROOT, script


def source_models(v: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A v1 version's models: serialize()'s modelDetails, or the service JSON's models."""
    return list(v.get("modelDetails") or v.get("models") or [])


def unknown_names(option: str, what: str, given: Mapping[str, str], known: Sequence[str]) -> str | None:
    """What is wrong with `option` values naming no `what` of the source, each with the nearest name it has."""
    names = list(dict.fromkeys(known))
    said = []
    for key in (key for key in given if key not in names):
        near = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
        said.append(f"{key!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
    if not said:
        return None
    return f"{option} names no {what} of the source: {', '.join(said)}; its {what}s: {', '.join(names) or 'none'}"


def import_endpoint(root: Path, env_name: str, files: Sequence[Path], name: str | None,
                    images: Mapping[str, str], model_uris: Mapping[str, str], force: bool) -> Imported:
    """Build the spec text from the files; nothing is written here."""
    loaded, problems = load_environments(root, [env_name])[env_name]
    if loaded is None:
        raise ProblemsFound(problems)
    sources = [read_source(root, path) for path in files]
    endpoints = [s for s in sources if s.kind == "endpoint"]
    deployments = [s for s in sources if s.kind == "deployment"]
    inference = [s for s in sources if s.kind == "inference"]
    if len(endpoints) > 1 or (endpoints and deployments) or len(inference) > 1:
        raise UsageError("give one serialize()/service JSON, or deployment configs (one per version) with at most "
                         "one inference config")
    if not endpoints and not deployments:
        raise UsageError("no AksEndpoint among the files: give a serialize()/service JSON or deployment configs")
    warnings: list[str] = []
    key_notes: list[str] = []
    endpoint: dict[str, Any]
    versions: list[tuple[str, Mapping[str, Any], str]] = []  # (name, v1 version, where)
    if endpoints:
        src = endpoints[0]
        endpoint = src.data
        raw = endpoint.get("versions") or {}
        items = list(raw.items()) if isinstance(raw, Mapping) else [(v.get("name"), v) for v in raw]
        for key, v in items:
            if not isinstance(v, Mapping):
                raise UsageError(f"{src.display}: version {key!r} is not an object")
            versions.append((str(v.get("name") or key), v, f"{src.display}: version {v.get('name') or key}"))
        name = name or endpoint.get("name")
    else:
        if not name:
            raise UsageError("deployment config files name no endpoint: give --name ENDPOINT")
        endpoint = {}
        for src in deployments:
            version = str(src.data.get("versionName") or src.path.stem.removeprefix("deploymentconfig-"))
            versions.append((version, src.data, src.display))
            for flag in ("authEnabled", "tokenAuthEnabled", "aadAuthEnabled", "appInsightsEnabled", "namespace"):
                if flag in src.data:
                    endpoint.setdefault(flag, src.data[flag])
                    if endpoint[flag] != src.data[flag]:
                        warnings.append(f"{src.display}: {flag} {src.data[flag]!r} differs from another file's "
                                        f"{endpoint[flag]!r}; the first is kept (it is endpoint-wide)")
    if not isinstance(name, str) or not name:
        raise UsageError("the source names no endpoint: give --name ENDPOINT")
    path = spec_file(root, env_name, name)
    if path.exists() and not force:
        raise UsageError(f"{display_path(path, root)} exists; --force replaces it")
    unknown = [said for said in (
        unknown_names("--image", "version", images, [v for v, _, _ in versions]),
        unknown_names("--model-uri", "model", model_uris,
                      [f"{m.get('name')}:{m.get('version')}" for _, v, _ in versions for m in source_models(v)]))
               if said]
    if unknown:
        raise UsageError("; ".join(unknown))
    missing = [v for v, _, _ in versions if v not in images]
    if missing:
        raise UsageError("v1 built these versions' images from their environments; give the image each runs now "
                         f"with --image VERSION=IMAGE: {', '.join(missing)}")

    env_defaults = {**VERSION_DEFAULTS, **loaded.defaults}
    spec = CommentedMap()
    spec["name"] = name
    if endpoint.get("namespace"):
        spec["namespace"] = endpoint["namespace"]
    spec.update(metadata(endpoint))
    token = bool(endpoint.get("aadAuthEnabled") or endpoint.get("tokenAuthEnabled"))
    if endpoint.get("aadAuthEnabled") is not None and endpoint.get("tokenAuthEnabled") is not None \
            and bool(endpoint["aadAuthEnabled"]) != bool(endpoint["tokenAuthEnabled"]):
        warnings.append("aadAuthEnabled and tokenAuthEnabled disagree; token auth is on if either is")
    spec["auth_enabled"] = bool(endpoint.get("authEnabled", not token))
    spec["token_auth_enabled"] = token
    spec["enable_app_insights"] = bool(endpoint.get("appInsightsEnabled", False))
    if endpoint.get("computeName"):
        warnings.append(f"computeName {endpoint['computeName']!r} is not carried over: environment {env_name!r} "
                        f"is the cluster {loaded.settings['cluster_name']!r}")

    spec_versions = []
    inference_config = inference[0].data if inference else {}
    for version, v, where in versions:
        fields = version_fields(v, warnings, where)
        item = CommentedMap()
        item["version_name"] = version
        item.update(metadata(v))  # v1 gave each version the endpoint's, unless create_version set its own
        if v.get("isDefault"):
            item["is_default"] = True
        if v.get("versionType", v.get("type")) == "Control" or v.get("isControlVersionType"):
            item["is_control_version_type"] = True
        models = []
        for model in source_models(v):
            model_name, model_version = str(model.get("name")), model.get("version")
            key = f"{model_name}:{model_version}"
            uri = model_uris.get(key) or DEFAULT_MODEL_URI.format(name=model_name, version=model_version)
            if key not in model_uris:
                warnings.append(f"{where}: model {key}: no --model-uri, so {uri} (the model loader resolves it in "
                                "its workspace)")
            models.append({"name": model_name, "version": model_version, "uri": uri})
        if models:
            item["models"] = models
        else:
            warnings.append(f"{where}: no models come with this version, so the spec has none: its image must hold "
                            "the model (without models there is no AZUREML_MODEL_DIR); to load them as v1 did, "
                            f"`endpointgen update-version {name} {version} --env {env_name} --model NAME:VERSION=URI`"
                            + (" (deployment config files never name models: Model.deploy was given them)"
                               if not endpoints else ""))
        details = (v.get("environmentDetails") or v.get("environment")  # serialize() / deployment config
                   or (v.get("environmentImageRequest") or {}).get("environment")  # the service JSON
                   or inference_config.get("environment") or {})
        env_vars = {str(k): str(x) for k, x in (details.get("environmentVariables") or {}).items()}
        location = script_location(v.get("entryScript") or inference_config.get("entryScript"),
                                   v.get("sourceDirectory") or inference_config.get("sourceDirectory"), env_vars)
        if location is None:
            raise UsageError(f"{where}: no entry script: give the inference config (inferenceconfig.json) too")
        config = CommentedMap()
        config["image"] = images[version]
        config["entry_script"] = location[1]
        if location[0] != APP_ROOT:
            config["source_directory"] = location[0]
        user_vars = {k: x for k, x in env_vars.items() if not k.startswith(RESERVED_PREFIXES)}
        if user_vars:
            config["environment_variables"] = dict(sorted(user_vars.items()))
        item["inference_config"] = config
        if not curated_image(images[version]):
            warnings.append(f"{where}: {images[version]} runs as a non-root user (run_as_user, default 1000) on "
                            "a read-only root, started as `azmlinfsrv --entry_script ...` (images Azure ML built for "
                            "v1 run as root): it must let that user read /var/azureml-app and its Python environment "
                            "and have azmlinfsrv on its PATH; else rebuild it FROM a curated inference image "
                            f"({CURATED_IMAGES}*-inference) or set run_as_user")
        if details.get("python", {}).get("condaDependencies") or details.get("python", {}).get("condaDependenciesFile"):
            warnings.append(f"{where}: the conda environment {details.get('name')!r} is not imported: "
                            f"{images[version]} must already contain it")
        for field_name in VERSION_ORDER:
            if field_name in fields and field_name not in item and field_name != "autoscale_enabled" \
                    and fields[field_name] != env_defaults.get(field_name):
                item[field_name] = fields[field_name]
        if not fields["autoscale_enabled"]:
            item["autoscale_enabled"] = False  # with num_replicas: spelled out, as v1 had it
        keys = v.get("keys") or {}
        for slot in ("primary", "secondary"):
            if keys.get(f"{slot}Key"):
                key_notes.append(f"{where}: keys.{slot}Key was not imported (keys never go into git); put it in "
                                 f"Key Vault as the secret {name}-{slot}-key")
        spec_versions.append(CommentedMap(sorted(item.items(), key=lambda kv: VERSION_ORDER.index(kv[0])
                                                 if kv[0] in VERSION_ORDER else len(VERSION_ORDER))))
    for key in ("primaryKey", "secondaryKey"):
        if endpoint.get(key) or (endpoint.get("keys") or {}).get(key):
            key_notes.append(f"{key} was not imported (keys never go into git); put it in Key Vault as the secret "
                             f"{name}-{key[:-3].lower()}-key")
    spec["versions"] = spec_versions
    if key_notes and spec["auth_enabled"]:
        vault = loaded.settings.get("key_vault", {}).get("name", "<your Key Vault>")
        key_notes.append(f"the spec expects the secrets {name}-primary-key and {name}-secondary-key in Key Vault "
                         f"{vault}; with only one, remove auth_keys.secondary_key_secret")
        spec["auth_keys"] = {"primary_key_secret": f"{name}-primary-key"}
        if any("secondary" in n for n in key_notes[:-1]):
            spec["auth_keys"]["secondary_key_secret"] = f"{name}-secondary-key"
    collecting = [v["version_name"] for v in spec_versions
                  if v.get("collect_model_data", env_defaults["collect_model_data"])]
    if collecting and nowhere_to_collect(loaded.settings, spec["enable_app_insights"]):
        warnings.append(f"collect_model_data is kept ({', '.join(collecting)}), but environment {env_name!r} cannot "
                        "collect: give it model_data_collection.storage_connection_string_secret (where a script's "
                        "ModelDataCollector uploads) or the endpoint enable_app_insights (the server's own "
                        "collection); validate and render refuse the spec until then")
    ordered = CommentedMap(sorted(spec.items(), key=lambda kv: ENDPOINT_ORDER.index(kv[0])))
    header = [f"# Endpoint {name}: imported from Azure ML SDK v1 by `endpointgen import` from "
              + ", ".join(s.display for s in sources) + "."]
    header += [f"# Not imported: {w}" for w in warnings if "not imported" in w or "not carried" in w]
    out = io.StringIO()
    yaml_for("").dump(ordered, out)
    text = "\n".join(header) + "\n" + out.getvalue()
    return Imported(path, text, warnings, key_notes)


def write(root: Path, env_name: str, imported: Imported, dry_run: bool) -> None:
    """Validate the spec with its environment (refused with file:line problems); write it atomically unless dry.
    collect_model_data with nowhere to collect to is kept and said (a warning), not refused: the migrated spec
    says what v1 did, and the pull request cannot pass until the environment or the endpoint gives it a place."""
    if dry_run:
        check_edit(root, env_name, imported.path, imported.text, tolerated=collects_nowhere)
    else:
        save(root, env_name, imported.path, imported.text, tolerated=collects_nowhere)


def collects_nowhere(problem: Problem) -> bool:
    return problem.field.endswith(".collect_model_data") and problem.message.startswith(NOTHING_COLLECTS)
