"""The AksEndpoint defaults, and how a version's effective settings are computed.

Precedence, lowest first: the AksEndpoint defaults below, the environment's
`defaults:`, then the version's own fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

VERSION_DEFAULTS: dict[str, Any] = {
    "autoscale_min_replicas": 1,
    "autoscale_max_replicas": 10,
    "autoscale_refresh_seconds": 1,
    "autoscale_target_utilization": 70,
    "collect_model_data": False,
    "cpu_cores": 0.1,
    "memory_gb": 0.5,
    "cpu_cores_limit": None,
    "memory_gb_limit": None,
    "gpu_cores": 0,
    "scoring_timeout_ms": 60000,
    "replica_max_concurrent_requests": 1,
    "max_request_wait_time": 500,
    "num_replicas": None,
    "period_seconds": 10,
    "initial_delay_seconds": 310,
    "timeout_seconds": 2,
    "success_threshold": 1,
    "failure_threshold": 3,
    "traffic_percentile": 0,
    "scoring_retries": 0,
    "run_as_user": 1000,  # dockeruser in Azure ML's inference images (a named USER the kubelet cannot check)
    "run_as_group": 1000,
    "image_entrypoint": False,  # start azmlinfsrv, not the image's runit
    "scoring_workload_identity": False,  # the model's code gets no Azure token
    "is_default": False,
    "is_control_version_type": False,
    "description": "",
    "tags": {},
    "properties": {},
    "models": [],  # optional, as in AksEndpoint: an image may carry its model
}

NATIVE_SIDECAR_KUBERNETES = (1, 33)  # AKS: native sidecars need control plane and nodes on 1.33 or later


def kubernetes_minor(version: str) -> tuple[int, int]:
    """"1.33" -> (1, 33)."""
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def revision_minor(revision: str) -> int | None:
    """asm-1-29 -> 29; None for a revision not named as the AKS add-on's."""
    parts = revision.split("-")
    if len(parts) == 3 and parts[0] == "asm" and parts[1] == "1" and parts[2].isdigit():
        return int(parts[2])
    return None


# Entra ID's access-token issuers (v1, v2) and the form of an app's client ID (Microsoft identity platform)
ENTRA_ISSUERS = (
    re.compile(r"^https://sts\.windows\.net/(?P<tenant>[^/]+)/$"),
    re.compile(r"^https://login\.microsoftonline\.com/(?P<tenant>[^/]+)/v2\.0$"),
)
CLIENT_ID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def entra_tenant(issuer: str) -> str | None:
    """The tenant of an Entra ID issuer (v1 or v2 form), None for any other issuer."""
    for form in ENTRA_ISSUERS:
        if match := form.match(issuer):
            return match.group("tenant")
    return None


AUTOSCALE_SETTINGS = (
    "autoscale_min_replicas",
    "autoscale_max_replicas",
    "autoscale_refresh_seconds",
    "autoscale_target_utilization",
)


def effective_version(version: Mapping[str, Any], env_defaults: Mapping[str, Any]) -> dict[str, Any]:
    """A version's settings with every default filled in."""
    settings = {**VERSION_DEFAULTS, **env_defaults, **version}
    if "autoscale_enabled" not in version:
        settings["autoscale_enabled"] = settings["num_replicas"] is None
    return settings


def effective_endpoint(spec: Mapping[str, Any], env_namespace: str) -> dict[str, Any]:
    """Endpoint-level settings with defaults: key auth is on unless token auth is chosen."""
    token = spec.get("token_auth_enabled", False)
    return {
        "description": "",
        "tags": {},
        "properties": {},
        "enable_app_insights": False,
        **spec,
        "namespace": spec.get("namespace", env_namespace),
        "token_auth_enabled": token,
        "auth_enabled": spec.get("auth_enabled", not token),
    }


# The key-auth authorizer's settings when the environment's key_auth.authorizer leaves them out.
AUTHORIZER_NAME = "endpointgen-key-auth"  # the authorizer's Deployment, Service and ServiceAccount
AUTHORIZER_DEFAULTS = {"namespace": "endpointgen-auth", "image": "openpolicyagent/opa:1.15.2-envoy-static",
                       "replicas": 2, "trust_domain": "cluster.local"}


def key_references(name: str, settings: Mapping[str, Any], env: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Key Vault and secret names of an endpoint's keys, or None when key auth is off."""
    if not settings["auth_enabled"]:
        return None
    given = settings.get("auth_keys", {})
    return {
        "key_vault": given.get("key_vault") or env.get("key_vault", {}).get("name"),
        "primary_key_secret": given.get("primary_key_secret", f"{name}-primary-key"),
        "secondary_key_secret": given.get("secondary_key_secret"),
    }


AZURE_MONITOR_SCRAPER_NAMESPACE = "kube-system"  # Azure Monitor managed Prometheus scrapes with ama-metrics there
AZURE_MONITOR_SUFFIX = ".prometheus.monitor.azure.com"


def url_host(address: str) -> str:
    """"https://amw.westeurope.prometheus.monitor.azure.com:443/x" -> "amw.westeurope.prometheus.monitor.azure.com"."""
    return address.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]


def duration_seconds(duration: str) -> int:
    """A Prometheus duration of the schema's form ("1m", "90s") in seconds."""
    return int(duration[:-1]) * (60 if duration.endswith("m") else 1)


def prometheus_scraper_namespace(settings: Mapping[str, Any]) -> str | None:
    """Where the autoscaling Prometheus's scraper runs: the namespace of an in-cluster address
    (`<service>.<namespace>[.svc[.cluster.local]]`), kube-system for Azure Monitor, None when unknown."""
    address = settings.get("autoscaling", {}).get("prometheus", {}).get("server_address")
    if not address:
        return None
    host = url_host(address)
    if host.endswith(AZURE_MONITOR_SUFFIX):
        return AZURE_MONITOR_SCRAPER_NAMESPACE
    parts = host.split(".")
    if len(parts) >= 2 and parts[2:] in ([], ["svc"], ["svc", "cluster", "local"]):
        return parts[1]
    return None


def metrics_namespaces(settings: Mapping[str, Any]) -> list[str]:
    """`network_policy.metrics_namespaces`, or kube-system and the autoscaling Prometheus's namespace."""
    given = settings.get("network_policy", {}).get("metrics_namespaces")
    if given is not None:
        return list(given)
    scraper = prometheus_scraper_namespace(settings)
    return sorted({AZURE_MONITOR_SCRAPER_NAMESPACE} | ({scraper} if scraper else set()))
