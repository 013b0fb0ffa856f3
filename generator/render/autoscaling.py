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

DEFAULT_RATE_WINDOW = "1m"
TRIGGER_AUTHENTICATION = "endpointgen-prometheus"
# How long the sidecar keeps a connection to the server that carries no request: the server's sync workers each
# serve one connection at a time, so an idle one holds a worker in read() until Envoy closes it (default 1 h).
IDLE_UPSTREAM = "1s"


def prometheus_view(settings: dict[str, Any]) -> dict[str, Any] | None:
    """The environment's Prometheus settings with defaults, or None (autoscaling falls back to CPU)."""
    given = settings.get("autoscaling", {}).get("prometheus")
    if given is None:
        return None
    return {"auth": "none", "identity_id": None, "rate_window": DEFAULT_RATE_WINDOW, **given,
            "trigger_authentication": TRIGGER_AUTHENTICATION}


def in_flight_query(workload: str, namespace: str, rate_window: str) -> str:
    """PromQL: the mean number of requests in flight at one version's replicas (0 when it has had none)."""
    selector = (f'reporter="destination",destination_workload="{workload}",'
                f'destination_workload_namespace="{namespace}"')
    return f"(sum(rate(istio_request_duration_milliseconds_sum{{{selector}}}[{rate_window}])) / 1000) or vector(0)"


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
