"""An endpoint in the JSON shape of AksEndpoint.serialize() (Azure ML SDK v1)."""

from __future__ import annotations

from typing import Any

from ..render.views import environment_view
from ..spec.model import Endpoint, Version
from ..spec.traffic import route_weights


def scoring_uri(ep: Endpoint) -> str:
    env = environment_view(ep.env)
    scheme = "https" if env["gateway"].get("tls_credential_name") else "http"
    return f"{scheme}://{env['istio']['hosts'][0]}/api/v1/service/{ep.name}/score"


def serialize_endpoint(ep: Endpoint) -> dict[str, Any]:
    """Endpoint fields as the SDK names them, with `versions` keyed by version name."""
    s = ep.settings
    weights = route_weights([v.share for v in ep.versions])
    return {
        "name": ep.name,
        "description": s["description"],
        "tags": s["tags"],
        "properties": s["properties"],
        "computeName": ep.env.settings["cluster_name"],
        "computeType": "AKS",
        "namespace": ep.namespace,
        "scoringUri": scoring_uri(ep),
        "authEnabled": s["auth_enabled"],
        "aadAuthEnabled": s["token_auth_enabled"],
        "appInsightsEnabled": s["enable_app_insights"],
        "versions": {v.name: serialize_version(ep, v, w) for v, w in zip(ep.versions, weights)},
    }


def serialize_version(ep: Endpoint, v: Version, weight: int) -> dict[str, Any]:
    s = v.settings
    return {
        "name": v.name,
        "description": s["description"],
        "tags": s["tags"],
        "properties": s["properties"],
        "scoringUri": scoring_uri(ep),
        "autoScaler": {
            "autoscaleEnabled": s["autoscale_enabled"],
            "minReplicas": s["autoscale_min_replicas"],
            "maxReplicas": s["autoscale_max_replicas"],
            "refreshPeriodInSeconds": s["autoscale_refresh_seconds"],
            "targetUtilization": s["autoscale_target_utilization"],
        },
        "containerResourceRequirements": {
            "cpu": s["cpu_cores"],
            "cpuLimit": s["cpu_cores_limit"],
            "memoryInGB": s["memory_gb"],
            "memoryInGBLimit": s["memory_gb_limit"],
            "gpu": s["gpu_cores"],
        },
        "dataCollection": {"storageEnabled": s["collect_model_data"]},
        "maxConcurrentRequestsPerContainer": s["replica_max_concurrent_requests"],
        "maxQueueWaitMs": s["max_request_wait_time"],
        "livenessProbeRequirements": {
            "periodSeconds": s["period_seconds"],
            "initialDelaySeconds": s["initial_delay_seconds"],
            "timeoutSeconds": s["timeout_seconds"],
            "successThreshold": s["success_threshold"],
            "failureThreshold": s["failure_threshold"],
        },
        "numReplicas": s["num_replicas"],
        "scoringTimeoutMs": s["scoring_timeout_ms"],
        "modelDetails": [{"name": m["name"], "version": m["version"], "uri": m["uri"]} for m in s["models"]],
        "imageDetails": {"image": s["inference_config"]["image"], "entryScript": s["inference_config"]["entry_script"]},
        "isDefault": v.is_default,
        "trafficPercentile": s["traffic_percentile"],
        "effectiveTrafficPercentile": float(v.share),
        "routeWeight": weight,
        "versionType": "Control" if s["is_control_version_type"] else "Treatment",
    }
