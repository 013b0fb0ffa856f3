"""What the templates see: environment, endpoint and version settings turned into manifest values.

Everything computed for the manifests (names, labels, quantities, weights,
timeouts) is decided here, in plain Python, so templates stay declarative.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

from .model import Endpoint, Environment, Version
from .traffic import route_weights

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
    view["istio"] = {"cni": False, **settings["istio"]}
    for section in ("key_auth", "flux", "gpu"):
        view[section] = {**ENV_DEFAULTS[section], **settings.get(section, {})}
    view["model_loader"] = {"image": None, "command": None, **settings.get("model_loader", {})}
    view["network_policy"] = {"enabled": True, "ingress_namespaces": [view["gateway"]["namespace"]],
                              "control_plane_namespaces": ["aks-istio-system"], "metrics_namespaces": ["kube-system"],
                              "allow_same_namespace": True, **settings.get("network_policy", {})}
    view["network_policy"]["ports"] = SIDECAR_PORTS
    token = settings.get("token_auth")
    if token is not None:
        view["token_auth"] = {**token, "jwks_uri": token.get("jwks_uri") or azure_ad_jwks_uri(token["issuer"])}
    return view


def azure_ad_jwks_uri(issuer: str) -> str | None:
    """The JWKS address of an Azure AD issuer (v1 or v2 tokens); None for other issuers."""
    for prefix, suffix in (("https://login.microsoftonline.com/", "/v2.0"), ("https://sts.windows.net/", "/")):
        if issuer.startswith(prefix) and issuer.endswith(suffix):
            tenant = issuer[len(prefix):len(issuer) - len(suffix)].strip("/")
            path = "discovery/v2.0/keys" if suffix == "/v2.0" else "discovery/keys"
            return f"https://login.microsoftonline.com/{tenant}/{path}"
    return None


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
    keys = None
    if settings["auth_enabled"]:
        given = settings.get("auth_keys", {})
        keys = {
            "key_vault": given.get("key_vault") or env["key_vault"]["name"],
            "primary_key_secret": given.get("primary_key_secret", f"{ep.name}-primary-key"),
            "secondary_key_secret": given.get("secondary_key_secret"),
        }
    app_insights_secret = f"{ep.name}-app-insights" if settings["enable_app_insights"] else None
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
        "auth_keys": keys,
        "client_id": env.get("key_vault", {}).get("client_id"),
        "app_insights_secret": app_insights_secret,
        "app_insights_objects": app_insights_objects(env) if app_insights_secret else None,
    }


def version_view(ep: Endpoint, v: Version, env: dict[str, Any]) -> dict[str, Any]:
    """Version-level values: the Deployment, Service and autoscaler inputs."""
    s = v.settings
    object_name = f"{ep.name}-{v.name}"
    selector = {"endpointgen.io/endpoint": ep.name, "endpointgen.io/version": v.name}
    labels = {**common_labels(ep), "app.kubernetes.io/instance": object_name,
              "app.kubernetes.io/version": v.name, "endpointgen.io/version": v.name}
    pod_labels = {**labels, "app": ep.name, "version": v.name}
    if env.get("key_vault"):
        pod_labels["azure.workload.identity/use"] = "true"
    models = [model_view(i, m, len(s["models"])) for i, m in enumerate(s["models"])]
    min_replicas = s["num_replicas"] if not s["autoscale_enabled"] else s["autoscale_min_replicas"]
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
        "env": container_env(ep, v, models),
        "resources": resources(s),
        "gpu": s["gpu_cores"] > 0,
        "num_replicas": None if s["autoscale_enabled"] else s["num_replicas"],
        "autoscale": s["autoscale_enabled"],
        "pdb": min_replicas >= 2,
        "termination_grace_seconds": max(30, math.ceil(s["scoring_timeout_ms"] / 1000) + 5),
        "readiness_period_seconds": s["period_seconds"],
        "timeout": istio_duration(s["scoring_timeout_ms"]),
        "retries": retries(s.get("scoring_retries", 0)),
    }


def model_view(index: int, model: dict[str, Any], count: int) -> dict[str, Any]:
    relative = f"azureml-models/{model['name']}/{model['version']}"
    return {"container_name": f"fetch-model-{index}", "uri": model["uri"],
            "path": f"{APP_ROOT}/{relative}", "relative": relative}


def container_env(ep: Endpoint, v: Version, models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The scoring container's environment: AzureML server settings first, then the user's, sorted."""
    s = v.settings
    config = s["inference_config"]
    source_dir = config.get("source_directory", APP_ROOT)
    env = [{"name": "AML_APP_ROOT", "value": APP_ROOT}]
    if models:  # without models the image carries its own; no folder, no AZUREML_MODEL_DIR
        model_dir = models[0]["relative"] if len(models) == 1 else "azureml-models"
        env.append({"name": "AZUREML_MODEL_DIR", "value": f"{APP_ROOT}/{model_dir}"})
    env += [
        {"name": "AZUREML_SOURCE_DIRECTORY", "value": source_dir},
        {"name": "AZUREML_ENTRY_SCRIPT", "value": config["entry_script"]},
        {"name": "SERVICE_NAME", "value": ep.name},
        {"name": "SERVICE_VERSION", "value": v.name},
        {"name": "WORKER_COUNT", "value": str(s["replica_max_concurrent_requests"])},
        {"name": "MAX_CONCURRENT_REQUESTS", "value": str(s["replica_max_concurrent_requests"])},
        {"name": "MAX_QUEUE_WAIT_MS", "value": str(s["max_request_wait_time"])},
        {"name": "SCORING_TIMEOUT_MS", "value": str(s["scoring_timeout_ms"])},
        {"name": "AML_MODEL_DC_STORAGE_ENABLED", "value": "true" if s["collect_model_data"] else "false"},
        {"name": "AML_APP_INSIGHTS_ENABLED", "value": "true" if ep.settings["enable_app_insights"] else "false"},
    ]
    if ep.settings["enable_app_insights"]:
        env.append({"name": "APPLICATIONINSIGHTS_CONNECTION_STRING", "secret": f"{ep.name}-app-insights",
                    "key": "connection-string"})
    user = config.get("environment_variables", {})
    env += [{"name": name, "value": user[name]} for name in sorted(user)]
    return [{"value": None, "secret": None, "key": None, **item} for item in env]


def resources(s: dict[str, Any]) -> dict[str, dict[str, str | int]]:
    """Requests and limits as Kubernetes quantities; GPUs requested and limited alike.

    Memory is always limited: `memory_gb_limit`, else the request (memory cannot be throttled, only
    reclaimed by killing, so Kubernetes advises limit = request). CPU is limited only when asked.
    """
    memory = memory_quantity(s["memory_gb"])
    requests: dict[str, str | int] = {"cpu": cpu_quantity(s["cpu_cores"]), "memory": memory}
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
    mebibytes = math.ceil(Decimal(str(gigabytes)) * 1024)
    return f"{mebibytes // 1024}Gi" if mebibytes % 1024 == 0 else f"{mebibytes}Mi"


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


def app_insights_objects(env: dict[str, Any]) -> str:
    """The Secrets Store CSI `objects` parameter naming the connection-string secret."""
    name = env["app_insights"]["connection_string_secret"]
    return f"array:\n  - |\n    objectName: {name}\n    objectType: secret\n"
