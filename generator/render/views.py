"""What the templates see: environment, endpoint and version settings turned into manifest values.

Everything computed for the manifests (names, labels, quantities, weights,
timeouts) is decided here, in plain Python, so templates stay declarative.
"""

from __future__ import annotations

import json
import math
import posixpath
from decimal import Decimal
from typing import Any

from ..spec.defaults import metrics_namespaces
from ..spec.model import Endpoint, Environment, Version
from ..spec.traffic import route_weights
from .tokens import jwt_rules, required, required_claims
from .autoscaling import busy_threshold, fallback, in_flight_query, inbound_limits, prometheus_view, threshold_text
from .containers import gib, loader_security, pod_security, server_command, storage
from .lifecycle import native_sidecars, probes, shutdown, worker_count
from .modeldata import collector_annotations, collector_env, config_map_view, storage_secret_view

APP_ROOT = "/var/azureml-app"
MODELS_ROOT = f"{APP_ROOT}/azureml-models"
SCORING_PORT = 5001
# The Istio sidecar's ports that others connect to: pilot-agent's merged metrics and health (15020), the
# readiness health check (15021) and Envoy's own Prometheus endpoint (15090).
SIDECAR_PORTS = {"status": [15020, 15021], "metrics": [15020, 15090]}
SAFE_RETRY_ON = "connect-failure,refused-stream,unavailable"
ENV_DEFAULTS: dict[str, dict[str, Any]] = {
    "gateway": {"name": "endpointgen", "namespace": "aks-istio-ingress",
                "selector": "aks-istio-ingressgateway-external", "create": True, "tls_credential_name": None},
    "key_auth": {"ext_authz_provider": "endpointgen-key-auth"},
    "flux": {"git_repository": "flux-system", "namespace": "flux-system", "interval": "5m", "timeout": "10m"},
    "gpu": {"tolerations": [{"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
            "node_selector": {}},
}


def environment_view(env: Environment) -> dict[str, Any]:
    """The environment's settings with every optional section filled with its default."""
    settings = env.settings
    view: dict[str, Any] = {"name": env.name, **settings}
    view["gateway"] = {**ENV_DEFAULTS["gateway"], **settings["istio"].get("gateway", {})}
    view["istio"] = {"cni": False, **settings["istio"],
                     "native_sidecars": native_sidecars(settings["istio"], settings["kubernetes_version"])}
    for section in ("key_auth", "flux", "gpu"):
        view[section] = {**ENV_DEFAULTS[section], **settings.get(section, {})}
    view["model_loader"] = {"image": None, "command": None, "run_as_user": None, **settings.get("model_loader", {})}
    view["network_policy"] = {"enabled": True, "ingress_namespaces": [view["gateway"]["namespace"]],
                              "control_plane_namespaces": ["aks-istio-system"], "metrics_namespaces": metrics_namespaces(settings),
                              "allow_same_namespace": True, **settings.get("network_policy", {})}
    view["network_policy"]["ports"] = SIDECAR_PORTS
    view["prometheus"] = prometheus_view(settings)
    token = settings.get("token_auth")
    if token is not None:
        view["token_auth"] = token
    return view


def common_labels(ep: Endpoint) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": ep.name,
        "app.kubernetes.io/part-of": "endpointgen",
        "app.kubernetes.io/managed-by": "endpointgen",
        "endpointgen.io/endpoint": ep.name,
    }


def endpoint_view(ep: Endpoint, env: dict[str, Any]) -> dict[str, Any]:
    """Endpoint-level values: labels, routes, auth objects."""
    settings = ep.settings
    versions = [version_view(ep, v, env) for v in ep.versions]
    weights = route_weights([v.share for v in ep.versions])
    weighted = [{"host": view["host"], "weight": w, "version": view}
                for view, w in zip(versions, weights) if w > 0]
    annotations = {
        "endpointgen.io/auth": auth_mode(ep),
        "endpointgen.io/scoring-uri": f"/api/v1/service/{ep.name}/score",
        "endpointgen.io/traffic": json.dumps({v.name: w for v, w in zip(ep.versions, weights)}, sort_keys=True),
        **metadata_annotations(settings),
    }
    app_insights_secret = app_insights_secret_name(ep) if settings["enable_app_insights"] else None
    return {
        "name": ep.name,
        "namespace": ep.namespace,
        "labels": common_labels(ep),
        "selector": {"endpointgen.io/endpoint": ep.name},
        "annotations": annotations,
        "path_prefix": f"/api/v1/service/{ep.name}/",
        "versions": versions,
        "weighted_routes": weighted,
        "weighted_timeout": istio_duration(max(r["version"]["settings"]["scoring_timeout_ms"] for r in weighted)),
        "weighted_retries": retries(min(r["version"]["settings"]["scoring_retries"] for r in weighted)),
        "auth_keys": ep.key_refs,
        "client_id": ep.doc.data.get("workload_identity_client_id") or env.get("key_vault", {}).get("client_id"),
        "app_insights_secret": app_insights_secret,
        "app_insights_objects": app_insights_objects(env) if app_insights_secret else None,
        "model_data_secret": secret_provider(storage_secret_view(ep)),
        **token_view(env.get("token_auth"), ep.doc.data),
    }


def token_view(token_auth: dict[str, Any] | None, endpoint: dict[str, Any]) -> dict[str, Any]:
    """The endpoint's JWT rules, the request principals its ALLOW policy admits and the claims it requires."""
    if token_auth is None:
        return {"token_rules": [], "token_principals": [], "token_claims": []}
    rules = jwt_rules(token_auth, split_scopes=bool(required(token_auth, endpoint, "required_scopes")))
    return {"token_rules": rules, "token_principals": [f"{r['issuer']}/*" for r in rules],
            "token_claims": required_claims(token_auth, endpoint)}


def version_view(ep: Endpoint, v: Version, env: dict[str, Any]) -> dict[str, Any]:
    """Version-level values: the Deployment, Service and autoscaler inputs."""
    s = v.settings
    object_name = f"{ep.name}-{v.name}"
    selector = {"endpointgen.io/endpoint": ep.name, "endpointgen.io/version": v.name}
    labels = {**common_labels(ep), "app.kubernetes.io/instance": object_name,
              "app.kubernetes.io/version": v.name, "endpointgen.io/version": v.name}
    # the revision in the pod template: a canary upgrade's swap of istio.revision rolls every pod onto it
    pod_labels = {**labels, "app": ep.name, "version": v.name, "istio.io/rev": env["istio"]["revision"]}
    identity = {}
    if env.get("key_vault"):
        pod_labels["azure.workload.identity/use"] = "true"
        if not s["scoring_workload_identity"]:  # the webhook's token for the loaders only, not the model's code
            identity["azure.workload.identity/skip-containers"] = "scoring"
    models = [model_view(i, m, len(s["models"])) for i, m in enumerate(s["models"])]
    max_replicas = s["num_replicas"] if not s["autoscale_enabled"] else s["autoscale_max_replicas"]
    native = env["istio"]["native_sidecars"]
    disk = storage(env["model_loader"], len(models))
    stopping = shutdown(s, native)
    proxy_config = {"concurrency": 1, **stopping["proxy"]}  # one Envoy worker: exact inbound limits
    model_config = config_map_view(ep, v)
    return {
        "name": v.name,
        "object_name": object_name,
        "settings": {**s, "scoring_retries": s.get("scoring_retries", 0)},
        "labels": labels,
        "pod_labels": pod_labels,
        "selector": selector,
        "annotations": {
            "endpointgen.io/version-type": "Control" if s["is_control_version_type"] else "Treatment",
            "endpointgen.io/default-version": "true" if v.is_default else "false",
            "endpointgen.io/traffic-percentile": f"{v.share.normalize():f}",
            **metadata_annotations(s),
        },
        "host": f"{object_name}.{ep.namespace}.svc.cluster.local",
        "image": s["inference_config"]["image"],
        "models": models,
        "env": container_env(ep, v, models, stopping["gunicorn_args"]),
        "model_config_map": model_config,
        "start": None if s["image_entrypoint"] else server_command(APP_ROOT, SCORING_PORT),
        "probes": probes(s),
        "shutdown": stopping,
        "pod_annotations": {**identity, **collector_annotations(model_config),
                            "kubectl.kubernetes.io/default-container": "scoring",
                            "proxy.istio.io/config": json.dumps(proxy_config, sort_keys=True),
                            "sidecar.istio.io/nativeSidecar": "true" if native else "false"},
        "pod_security": pod_security(s),
        "loader_security": loader_security(env["model_loader"], s, env["istio"]["cni"], native),
        "storage": disk,
        "resources": resources(s, disk["ephemeral_request"]),
        "gpu": s["gpu_cores"] > 0,
        "num_replicas": None if s["autoscale_enabled"] else s["num_replicas"],
        "cpu_hpa": s["autoscale_enabled"] and env["prometheus"] is None,  # the fallback without Prometheus
        "scaled_object": scaled_object_view(ep, v, object_name, env["prometheus"]) if s["autoscale_enabled"] else None,
        "inbound": {**inbound_limits(s), "port": SCORING_PORT},
        "pdb": max_replicas >= 2,  # a PDB only helps a version that can run two or more replicas
        "timeout": istio_duration(s["scoring_timeout_ms"]),
        "retries": retries(s.get("scoring_retries", 0)),
    }


def scaled_object_view(ep: Endpoint, v: Version, workload: str, prometheus: dict[str, Any] | None
                       ) -> dict[str, Any] | None:
    """The KEDA trigger of an autoscaled version: in-flight requests against the busy threshold."""
    if prometheus is None:
        return None
    s = v.settings
    return {
        "query": in_flight_query(workload, ep.namespace, prometheus["rate_window"]),
        "threshold": threshold_text(busy_threshold(s["replica_max_concurrent_requests"],
                                                   s["autoscale_target_utilization"])),
        "fallback": fallback(prometheus["keda"], s["autoscale_min_replicas"]),
    }


def model_view(index: int, model: dict[str, Any], count: int) -> dict[str, Any]:
    relative = f"azureml-models/{model['name']}/{model['version']}"
    return {"container_name": f"fetch-model-{index}", "uri": model["uri"],
            "path": f"{APP_ROOT}/{relative}", "relative": relative}


def container_env(ep: Endpoint, v: Version, models: list[dict[str, Any]], gunicorn_args: str
                  ) -> list[dict[str, Any]]:
    """The scoring container's environment: what the Azure ML inference server reads, then the user's, sorted.

    The images start `azmlinfsrv --entry_script "$AZUREML_ENTRY_SCRIPT"` from `AML_APP_ROOT`, and the server
    loads the script from `AML_APP_ROOT` joined with `AZUREML_ENTRY_SCRIPT`; `AZUREML_SOURCE_DIRECTORY` only goes
    on `sys.path`. So the entry script is written as the SDK writes it: relative to the app root with the source
    folder in it (`src/score.py`), or absolute when the source folder is elsewhere in the image.
    """
    s = v.settings
    config = s["inference_config"]
    source_dir = config.get("source_directory", APP_ROOT)
    script = posixpath.normpath(posixpath.join(source_dir, config["entry_script"]))
    env = [{"name": "AML_APP_ROOT", "value": APP_ROOT},
           {"name": "AZUREML_ENTRY_SCRIPT", "value": app_relative(script)}]
    if source_dir != APP_ROOT:  # the app root is on sys.path already
        env.append({"name": "AZUREML_SOURCE_DIRECTORY", "value": app_relative(source_dir)})
    if models:  # without models the image carries its own; no folder, no AZUREML_MODEL_DIR
        model_dir = models[0]["relative"] if len(models) == 1 else "azureml-models"
        env.append({"name": "AZUREML_MODEL_DIR", "value": f"{APP_ROOT}/{model_dir}"})
    env += [
        {"name": "SERVICE_NAME", "value": ep.name},
        {"name": "SERVICE_VERSION", "value": v.name},
        {"name": "SERVICE_PATH_PREFIX", "value": f"/api/v1/service/{ep.name}"},
        {"name": "WORKER_COUNT", "value": str(worker_count(s))},
        {"name": "WORKER_TIMEOUT", "value": str(worker_timeout_seconds(s["scoring_timeout_ms"]))},
        {"name": "SCORING_TIMEOUT_MS", "value": str(s["scoring_timeout_ms"])},
        {"name": "GUNICORN_CMD_ARGS", "value": gunicorn_args},  # read by gunicorn under azmlinfsrv's flags
    ]
    env += collector_env(ep, v)  # collect_model_data: the server's to App Insights, the script's to storage
    insights = ep.settings["enable_app_insights"]
    env.append({"name": "AML_APP_INSIGHTS_ENABLED", "value": "true" if insights else "false"})
    if insights:
        secret = app_insights_secret_name(ep)
        env += [{"name": name, "secret": secret, "key": key} for name, key, _ in app_insights_secrets(
            ep.env.settings["app_insights"])]
    user = config.get("environment_variables", {})
    if "HOME" not in user:  # the image's home is on the read-only root; caches and configs go to /tmp
        env.append({"name": "HOME", "value": "/tmp"})
    env += [{"name": name, "value": user[name]} for name in sorted(user)]
    return [{"value": None, "secret": None, "key": None, **item} for item in env]


def app_relative(path: str) -> str:
    """A path inside the image relative to the app root when it is under it (as the SDK writes them)."""
    return path[len(APP_ROOT) + 1:] if path.startswith(APP_ROOT + "/") else path


def worker_timeout_seconds(scoring_timeout_ms: int) -> int:
    """gunicorn's hard worker timeout: its default of 300 s, or longer than the scoring timeout, so that a long
    scoring call gets the server's own timeout answer instead of a killed worker."""
    return max(300, math.ceil(scoring_timeout_ms / 1000) + 10)


def app_insights_secret_name(ep: Endpoint) -> str:
    """The in-cluster Secret the Secrets Store CSI driver syncs the App Insights values into."""
    return f"{ep.name}-app-insights"


def app_insights_secrets(settings: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(environment variable, key in the synced Secret, Key Vault secret) of each App Insights value.

    The inference server turns App Insights on with AML_APP_INSIGHTS_ENABLED and the instrumentation key; the
    connection string (optional) serves images that use OpenTelemetry's Azure Monitor exporter and gives the
    server's exporter its regional ingestion endpoint.
    """
    found = [("AML_APP_INSIGHTS_KEY", "instrumentation-key", settings["instrumentation_key_secret"])]
    if settings.get("connection_string_secret"):
        found.append(("APPLICATIONINSIGHTS_CONNECTION_STRING", "connection-string",
                      settings["connection_string_secret"]))
    return found


def resources(s: dict[str, Any], ephemeral_storage: str) -> dict[str, dict[str, str | int]]:
    """Requests and limits as Kubernetes quantities; GPUs requested and limited alike; disk requested only.

    Memory is always limited: `memory_gb_limit`, else the request (memory cannot be throttled, only
    reclaimed by killing, so Kubernetes advises limit = request). CPU is limited only when asked.
    """
    memory = memory_quantity(s["memory_gb"])
    requests: dict[str, str | int] = {"cpu": cpu_quantity(s["cpu_cores"]), "memory": memory,
                                      "ephemeral-storage": ephemeral_storage}
    limits: dict[str, str | int] = {}
    if s["cpu_cores_limit"] is not None:
        limits["cpu"] = cpu_quantity(s["cpu_cores_limit"])
    limits["memory"] = memory if s["memory_gb_limit"] is None else memory_quantity(s["memory_gb_limit"])
    if s["gpu_cores"] > 0:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(s["gpu_cores"])
    return {"requests": requests, "limits": limits}


def cpu_quantity(cores: float) -> str:
    """0.1 -> '100m', 2 -> '2'."""
    millis = int(Decimal(str(cores)) * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def memory_quantity(gigabytes: float) -> str:
    """GB in the AksEndpoint sense (GiB): 0.5 -> '512Mi', 2 -> '2Gi'."""
    return gib(Decimal(str(gigabytes)))


def istio_duration(milliseconds: int) -> str:
    """60000 -> '60s', 1500 -> '1.5s' (protobuf Duration JSON form)."""
    seconds = Decimal(milliseconds) / 1000
    return f"{seconds.normalize():f}s"


def retries(attempts: int) -> dict[str, Any]:
    """Istio retries: off unless a version opts in, and then only for failures before the request ran."""
    return {"attempts": attempts, "retryOn": SAFE_RETRY_ON} if attempts else {"attempts": 0}


def metadata_annotations(settings: dict[str, Any]) -> dict[str, str]:
    """description, tags and properties as annotations (tags and properties as sorted JSON)."""
    out: dict[str, str] = {}
    if settings.get("description"):
        out["endpointgen.io/description"] = settings["description"]
    for name in ("tags", "properties"):
        if settings.get(name):
            out[f"endpointgen.io/{name}"] = json.dumps(settings[name], sort_keys=True, ensure_ascii=False)
    return out


def auth_mode(ep: Endpoint) -> str:
    if ep.settings["token_auth_enabled"]:
        return "token"
    return "key" if ep.settings["auth_enabled"] else "none"


def app_insights_objects(env: dict[str, Any]) -> dict[str, Any]:
    """The Secrets Store CSI `objects` parameter and the synced Secret's data for the App Insights secrets."""
    found = app_insights_secrets(env["app_insights"])
    return {"objects": csi_objects([{"objectName": vault} for _, _, vault in found]),
            "data": [{"objectName": vault, "key": key} for _, key, vault in found]}


def secret_provider(view: dict[str, Any] | None) -> dict[str, Any] | None:
    """A SecretProviderClass's values with its `objects` parameter as the Azure provider reads it."""
    return None if view is None else {**view, "objects": csi_objects(view["objects"])}


def csi_objects(objects: list[dict[str, str]]) -> str:
    """The Azure provider's `objects` parameter: each Key Vault secret, with the file path it is written to if
    it has an objectAlias (the schemas allow letters, digits and '-' in both, so the YAML needs no quoting)."""
    lines = ["array:"]
    for item in objects:
        lines += ["  - |", f"    objectName: {item['objectName']}", "    objectType: secret"]
        if "objectAlias" in item:
            lines.append(f"    objectAlias: {item['objectAlias']}")
    return "\n".join(lines) + "\n"
