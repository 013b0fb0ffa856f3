"""AksEndpoint's liveness probe and a scoring pod's shutdown, as the kubelet, gunicorn and the Istio proxy run them.

Probes. azmlinfsrv serves `GET /` from the same sync gunicorn workers as `/score`, one request per worker, so
with every worker scoring a probe waits behind a scoring call and times out. The server gets one worker more
than `replica_max_concurrent_requests`; the version's Sidecar lets at most that many scoring calls in, so one
worker is always free for the kubelet's probes (which the Istio agent sends straight to the server). Threads
instead of a spare worker would break the server's scoring timeout, a SIGALRM that only works in a worker's
main thread (`server/utils.py`, `timeout_supported`). A startupProbe covers model loading for as long as
AksEndpoint's liveness probe allowed (`initial_delay_seconds` + `failure_threshold` periods); liveness and
readiness start once it passes.

Shutdown, from the moment the pod is deleted (t = 0):
- t = 0: the pod leaves the EndpointSlices and istiod stops sending traffic to it; the scoring container's
  preStop sleeps PRE_STOP_SECONDS while that reaches every gateway and sidecar. Without native sidecars the
  Istio proxy gets SIGTERM now and drains (keeps serving and accepting) for `terminationDrainDuration`.
- t = PRE_STOP_SECONDS: SIGTERM to azmlinfsrv; gunicorn stops accepting and lets each running call finish
  for up to `--graceful-timeout` (the scoring timeout and a margin, through GUNICORN_CMD_ARGS, which gunicorn
  reads under the flags azmlinfsrv passes).
- by t = PRE_STOP_SECONDS + graceful: the server has exited. A classic proxy (`EXIT_ON_ZERO_ACTIVE_CONNECTIONS`)
  waits PROXY_MINIMUM_DRAIN_SECONDS, then leaves once no connection is open, so an idle pod does not wait
  out a fixed drain (`terminationDrainDuration`, that long, is the drain of an agent without that mode); a
  native sidecar gets SIGTERM only now and leaves at once.
- terminationGracePeriodSeconds leaves a margin beyond that before the kubelet's SIGKILL.
"""

from __future__ import annotations

import math
from typing import Any

from ..spec.defaults import NATIVE_SIDECAR_KUBERNETES, kubernetes_minor, revision_minor

PRE_STOP_SECONDS = 5  # time for an EndpointSlice change to reach istiod and every proxy
SHUTDOWN_MARGIN_SECONDS = 5
PROXY_MINIMUM_DRAIN_SECONDS = PRE_STOP_SECONDS + 5  # past the preStop, for proxies still sending to the pod
PROBE_WORKERS = 1  # gunicorn workers the mesh never sends scoring calls to
STARTUP_PERIOD_SECONDS = 5


def worker_count(settings: dict[str, Any]) -> int:
    """WORKER_COUNT: the scoring workers and the probes' spare one."""
    return settings["replica_max_concurrent_requests"] + PROBE_WORKERS


def probes(settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """startupProbe, livenessProbe and readinessProbe of the scoring container (all `GET /` on its port)."""
    check = {"httpGet": {"path": "/", "port": "http"}, "timeoutSeconds": settings["timeout_seconds"]}
    period, failures = settings["period_seconds"], settings["failure_threshold"]
    startup_period = min(period, STARTUP_PERIOD_SECONDS)
    allowed = settings["initial_delay_seconds"] + failures * period  # what AksEndpoint gave a pod to come up
    return {
        "startupProbe": {**check, "periodSeconds": startup_period, "successThreshold": 1,
                         "failureThreshold": math.ceil(allowed / startup_period)},
        "livenessProbe": {**check, "periodSeconds": period, "successThreshold": 1, "failureThreshold": failures},
        "readinessProbe": {**check, "periodSeconds": period, "successThreshold": settings["success_threshold"],
                           "failureThreshold": failures},
    }


def graceful_timeout_seconds(scoring_timeout_ms: int) -> int:
    """gunicorn's --graceful-timeout: a call that started before SIGTERM may run the whole scoring timeout."""
    return math.ceil(scoring_timeout_ms / 1000) + SHUTDOWN_MARGIN_SECONDS


def shutdown(settings: dict[str, Any], native_sidecars: bool) -> dict[str, Any]:
    """The pod's shutdown timing: preStop, the server's graceful timeout, the proxy's drain, the grace period."""
    graceful = graceful_timeout_seconds(settings["scoring_timeout_ms"])
    server_done = PRE_STOP_SECONDS + graceful
    return {
        "pre_stop_seconds": PRE_STOP_SECONDS,
        "gunicorn_args": f"--graceful-timeout {graceful}",
        # a native sidecar outlives the app by itself; a classic one must drain until the server is done
        "proxy": {} if native_sidecars else {
            "terminationDrainDuration": f"{server_done}s",
            "proxyMetadata": {"EXIT_ON_ZERO_ACTIVE_CONNECTIONS": "true",
                              "MINIMUM_DRAIN_DURATION": f"{PROXY_MINIMUM_DRAIN_SECONDS}s"}},
        "termination_grace_seconds": max(30, server_done + SHUTDOWN_MARGIN_SECONDS),
    }


NATIVE_SIDECAR_REVISION = 29  # asm-1-29: AKS docs, istio-native-sidecar


def native_sidecars(istio: dict[str, Any], kubernetes_version: str) -> bool:
    """Whether the pods get the Istio proxy as a native sidecar: `istio.native_sidecars`, else AKS's default.

    AKS turns native sidecars on for every cluster from asm-1-29 on Kubernetes 1.33+; on asm-1-27 and 1.28 it
    depends on whether the add-on was installed or upgraded, so endpointgen pins the choice in each pod
    (`sidecar.istio.io/nativeSidecar`, which takes precedence over istiod's ENABLE_NATIVE_SIDECARS).
    """
    if "native_sidecars" in istio:
        return bool(istio["native_sidecars"])
    minor = revision_minor(istio["revision"])
    return (minor is not None and minor >= NATIVE_SIDECAR_REVISION
            and kubernetes_minor(kubernetes_version) >= NATIVE_SIDECAR_KUBERNETES)
