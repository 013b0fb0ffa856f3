"""AksEndpoint's autoscaling rule and per-replica limits, as KEDA, Prometheus and Istio can express them.

Azure ML's router scaled a version on busy replicas: utilization = replicas busy with requests / replicas,
where a replica is busy while it holds `replica_max_concurrent_requests` requests, kept near
`autoscale_target_utilization`. With KEDA's Prometheus scaler that is

    desired replicas = ceil(in-flight requests / (replica_max_concurrent_requests x target / 100))

clamped to the min and max: the trigger's metric is the version's requests in flight and its threshold
(per replica, metricType AverageValue) is the capacity a replica should use. Requests in flight come from
the metrics Istio exports by default, by Little's law: the mean number in flight equals the rate at which
request time accumulates, `rate(istio_request_duration_milliseconds_sum[w]) / 1000` (the server-side
sidecar's report, so each request counts once, for this version's workload only).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ..spec.defaults import kubernetes_minor

DEFAULT_RATE_WINDOW = "1m"
# The KEDA the AKS add-on runs on each Kubernetes minor (only its patch changes within a minor): the "AKS
# components" table of learn.microsoft.com/azure/aks/supported-kubernetes-versions (2026-08-05); where that table
# and the AKS release notes disagree (1.30, 1.32, 1.33), the older; 1.34 has no row, and 1.35 says no change from it.
AKS_KEDA = {(1, 30): (2, 11), (1, 31): (2, 14), (1, 32): (2, 14), (1, 33): (2, 16), (1, 34): (2, 17),
            (1, 35): (2, 17), (1, 36): (2, 19)}
FALLBACK_BEHAVIOR_KEDA = (2, 17)  # fallback.behavior (kedacore/keda#6450); before it a fallback is a fixed count
FALLBACK_FAILURES = 3  # scaler errors in a row before KEDA's fallback applies (the HPA holds meanwhile)
TRIGGER_AUTHENTICATION = "endpointgen-prometheus"
# How long the sidecar keeps a connection to the server that carries no request: the server's sync workers each
# serve one connection at a time, so an idle one holds a worker in read() until Envoy closes it (default 1 h).
IDLE_UPSTREAM = "1s"


def prometheus_view(settings: dict[str, Any]) -> dict[str, Any] | None:
    """The environment's Prometheus settings with defaults, or None (autoscaling falls back to CPU)."""
    given = settings.get("autoscaling", {}).get("prometheus")
    if given is None:
        return None
    return {"auth": "none", "rate_window": DEFAULT_RATE_WINDOW, **given,
            "identity_client_id": given.get("identity_client_id") or given.get("identity_id"),
            "trigger_authentication": TRIGGER_AUTHENTICATION, "keda": keda_version(settings)}


def keda_version(settings: dict[str, Any]) -> tuple[int, int]:
    """The cluster's KEDA (major, minor): `autoscaling.keda_version`, else the AKS add-on's for the Kubernetes
    minor (the newest known above the table, the oldest below it)."""
    given = settings.get("autoscaling", {}).get("keda_version")
    if given:
        major, minor = given.split(".")
        return int(major), int(minor)
    cluster = kubernetes_minor(settings["kubernetes_version"])
    known = [k for k in sorted(AKS_KEDA) if k <= cluster] or [min(AKS_KEDA)]
    return AKS_KEDA[known[-1]]


def fallback(keda: tuple[int, int], min_replicas: int) -> dict[str, Any] | None:
    """KEDA's fallback for a scaler error (no series, Prometheus unreachable, throttled): the current count or
    the minimum, whichever is higher. None where KEDA has no `behavior`: a fixed count would lower a busy
    version, and without a fallback the HPA gets the error and keeps the count it has."""
    if keda < FALLBACK_BEHAVIOR_KEDA:
        return None
    return {"failureThreshold": FALLBACK_FAILURES, "replicas": min_replicas, "behavior": "currentReplicasIfHigher"}


def in_flight_query(workload: str, namespace: str, rate_window: str) -> str:
    """PromQL: the mean number of requests in flight at one version's replicas. 0 while its replicas' series
    exist without traffic; no sample at all when there are none (never called, a scrape broken, Prometheus
    without data): with ignoreNullValues false that is a scaler error, never a zero."""
    selector = (f'reporter="destination",destination_workload="{workload}",'
                f'destination_workload_namespace="{namespace}"')
    return f"sum(rate(istio_request_duration_milliseconds_sum{{{selector}}}[{rate_window}])) / 1000"


def busy_threshold(max_concurrent: int, target_utilization: int) -> Decimal:
    """In-flight requests per replica at the target utilization: the trigger's AverageValue threshold."""
    return (Decimal(max_concurrent) * Decimal(target_utilization) / 100).normalize()


def queue_length(max_concurrent: int, max_wait_ms: int, scoring_timeout_ms: int) -> int:
    """Requests a replica's sidecar holds while every worker is busy.

    Envoy bounds its pending-request queue by length, not by wait time. The queue is sized so that a queued
    request starts within `max_request_wait_time` even when every call ahead of it runs to the scoring
    timeout, and holds at least one request per replica (so a short burst is queued, not refused).
    """
    return max(1, max_concurrent * max_wait_ms // scoring_timeout_ms)


def threshold_text(value: Decimal) -> str:
    """KEDA takes the threshold as a string: '0.7', '2'."""
    return f"{value:f}"


def inbound_limits(settings: dict[str, Any]) -> dict[str, int]:
    """The version's Sidecar inboundConnectionPool: N requests in the server, the queue, Envoy's pending limit.

    Envoy counts a request waiting for a new connection to the server in its pending queue too, and the
    server's sync workers close the connection after each response, so the pending limit is the N requests
    on their way to the workers plus the queue (a burst of N + queue is admitted; beyond it, 503).
    """
    workers = settings["replica_max_concurrent_requests"]
    queue = queue_length(workers, settings["max_request_wait_time"], settings["scoring_timeout_ms"])
    return {"max_concurrent": workers, "queue": queue, "pending": workers + queue, "idle_timeout": IDLE_UPSTREAM}
