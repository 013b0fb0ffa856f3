"""Azure Monitor managed Prometheus's query limits against what the environments' ScaledObjects ask of it.

The limits for client traffic are in query hours (a query's time range plus its range selectors) per 30 s
window, before parsing (learn.microsoft.com/azure/azure-monitor/fundamentals/service-limits, "Prometheus
metrics", 2025-05-21); beyond them queries are throttled and the scaler errors. The rule spans environments
(a workspace or an identity can serve several), so it runs on totals: each endpoint's endpoint_query_hours.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from ..problems import Problem
from .defaults import AZURE_MONITOR_SUFFIX, duration_seconds, url_host
from .model import Endpoint, Environment

QUERY_HOURS_PER_IDENTITY = 30_000  # per user: Entra ID app, managed identity, Grafana workspace
QUERY_HOURS_PER_WORKSPACE = 60_000
LIMIT_WINDOW_SECONDS = 30
HPA_SYNC_SECONDS = 15  # the HPA reads the metric from KEDA's metrics server this often; each read is a query


def query_hours(refresh_seconds: int, rate_window: str) -> float:
    """Query hours one ScaledObject costs its workspace per 30 s: KEDA's polling loop every pollingInterval and
    each HPA read run the instant query, whose [rate_window] counts as its time range."""
    queries = LIMIT_WINDOW_SECONDS / refresh_seconds + LIMIT_WINDOW_SECONDS / HPA_SYNC_SECONDS
    return queries * duration_seconds(rate_window) / 3600


def endpoint_query_hours(ep: Endpoint) -> float:
    """What one endpoint's ScaledObjects cost an Azure Monitor workspace per 30 s (0 with another Prometheus)."""
    prometheus = ep.env.settings.get("autoscaling", {}).get("prometheus")
    if prometheus is None or not url_host(prometheus["server_address"]).endswith(AZURE_MONITOR_SUFFIX):
        return 0.0
    return sum(query_hours(v.settings["autoscale_refresh_seconds"], prometheus.get("rate_window", "1m"))
               for v in ep.versions if v.settings["autoscale_enabled"])


def query_load_within_limits(envs: Mapping[str, Environment], hours: Mapping[str, float]) -> Iterator[Problem]:
    """The ScaledObjects of the given environments (`hours`: each one's total endpoint_query_hours) must stay
    within Azure Monitor's query limits, per workspace and per identity KEDA queries with (its identity_id, or
    each cluster's operator)."""
    load: dict[tuple[str, str], float] = {}
    sharing: dict[tuple[str, str], list[Environment]] = {}
    for name, env in sorted(envs.items()):
        prometheus = env.settings.get("autoscaling", {}).get("prometheus")
        if not hours.get(name) or prometheus is None:
            continue
        identity = prometheus.get("identity_client_id") or prometheus.get("identity_id") or \
            f"the KEDA operator of {env.settings['cluster_name']}"
        for key in (("workspace", url_host(prometheus["server_address"])), ("identity", identity)):
            load[key] = load.get(key, 0.0) + hours[name]
            sharing.setdefault(key, []).append(env)
    limits = {"workspace": QUERY_HOURS_PER_WORKSPACE, "identity": QUERY_HOURS_PER_IDENTITY}
    for (kind, name), total in sorted(load.items()):
        if total <= limits[kind]:
            continue
        names = ", ".join(env.name for env in sharing[(kind, name)])
        for env in sharing[(kind, name)]:
            yield env.doc.problem(
                ("autoscaling", "prometheus", "server_address"),
                f"the ScaledObjects of {names} would query {kind} {name} for {total:,.0f} query hours per 30 s, "
                f"above Azure Monitor's limit of {limits[kind]:,} (each poll and each 15 s HPA read is one query "
                f"over rate_window): raise autoscale_refresh_seconds, shorten rate_window, or spread the "
                f"environments over several workspaces (README, Autoscaling)")
