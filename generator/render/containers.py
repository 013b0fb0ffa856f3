"""How the scoring and model-loader containers start: numeric non-root users, the start command, disk, network.

Azure ML's curated inference images (`mcr.microsoft.com/azureml/*-inference`) declare `USER dockeruser`, a
name the kubelet cannot check against `runAsNonRoot`, so the pod names a numeric user (`run_as_user`, default
1000). Their `CMD ["runsvdir", "/var/runit"]` starts runit, which supervises nginx on 5001 in front of
azmlinfsrv on 31311; runsv writes `supervise/` under `/var/runit`, nginx `/var/log/nginx`, `/var/lib/nginx`
and `/run` (Azure/azureml-assets, `mlflow-model-inference/context/grant_ownership.sh`), none of which a
read-only root allows, and runsvdir exits at once on SIGTERM, which ends every process of the container
mid-call. So the scoring container runs what runit's gunicorn service runs, without runit and nginx:
`cd $AML_APP_ROOT && azmlinfsrv --entry_script $AZUREML_ENTRY_SCRIPT`, on the container port
(`image_entrypoint: true` keeps the image's own start for images that serve the contract themselves).

Model loaders run as the pod's user, except under the Istio CNI plugin without native sidecars: traffic is
redirected before init containers run and the proxy starts after them, so a loader would have no network;
it runs as the proxy's user 1337, whose traffic the mesh's iptables rules leave alone (Istio docs, CNI,
"Compatibility with application init containers"). With native sidecars the proxy starts first.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

ISTIO_PROXY_UID = 1337
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
TMP_STORAGE_GB = 1  # /tmp, logs and the writable layer, beside the models
DEFAULT_MODEL_STORAGE_GB = 5


def server_command(app_root: str, port: int) -> dict[str, Any]:
    """The scoring container's command and working folder: azmlinfsrv as Azure ML's runit script starts it."""
    return {"command": ["azmlinfsrv", "--entry_script", "$(AZUREML_ENTRY_SCRIPT)", "--port", str(port)],
            "working_dir": app_root}


def pod_security(settings: dict[str, Any]) -> dict[str, Any]:
    """The pod's securityContext: a numeric non-root user and group, the group owning its volumes."""
    return {"runAsNonRoot": True, "runAsUser": settings["run_as_user"], "runAsGroup": settings["run_as_group"],
            "fsGroup": settings["run_as_group"], "seccompProfile": {"type": "RuntimeDefault"}}


def loader_security(model_loader: dict[str, Any], settings: dict[str, Any], cni: bool, native: bool
                    ) -> dict[str, Any]:
    """A model loader's securityContext; its user is the proxy's under CNI without native sidecars (network)."""
    user = ISTIO_PROXY_UID if cni and not native else model_loader.get("run_as_user") or settings["run_as_user"]
    return {**CONTAINER_SECURITY, "runAsUser": user}


def storage(model_loader: dict[str, Any], model_count: int) -> dict[str, str | None]:
    """The models volume's sizeLimit and the scoring container's ephemeral-storage request."""
    per_model = Decimal(str(model_loader.get("model_storage_gb", DEFAULT_MODEL_STORAGE_GB)))
    models = per_model * model_count
    return {"models_size_limit": gib(models) if model_count else None,
            "ephemeral_request": gib(models + TMP_STORAGE_GB)}


def gib(gigabytes: Decimal) -> str:
    """GiB as a Kubernetes quantity: 5 -> '5Gi', 0.5 -> '512Mi'."""
    mebibytes = math.ceil(gigabytes * 1024)
    return f"{mebibytes // 1024}Gi" if mebibytes % 1024 == 0 else f"{mebibytes}Mi"
