"""`collect_model_data`: AksEndpoint's model data collection, by its two real paths.

- **Blob Storage**, for scoring scripts that use azureml-monitoring's `ModelDataCollector` (what v1 documented).
  What the collector reads (azureml-monitoring 0.1.0a21, `modeldatacollector.py` and its native library):
  `AML_MODEL_DC_STORAGE_ENABLED` and `AML_MODEL_DC_STORAGE`, the storage account's connection string (account
  key or SAS: the native library has no Azure AD sign-in); `SERVICE_NAME` (every version has it), `COMPUTE_NAME`
  and `COMPUTE_TYPE` (and the server `WORKSPACE_NAME`); `/var/azureml-app/model_config_map.json`, whose `accountContext` names the workspace of the
  blob path and whose `modelsInfo` gives a model's version when the script gives none (the highest listed).
  Blobs go to container `modeldata`, `<subscription>/<resource group>/<workspace>/<service>/<model>/<version>/
  <designation>/<yyyy>/<mm>/<dd>/<designation>.csv`. By default the library commits a blob only when the process
  shuts down, so a killed worker loses everything it collected: `AML_MODEL_DC_STORAGE_{DATA,COMMIT}_WINDOW_LENGTH`
  of 1 (about a minute) make the data visible while the server runs and bound the loss.
- **App Insights**: the inference server's own collection (`AML_MDC_STORAGE_ENABLED`) sends each call's input and
  prediction as a `model_data_collection` trace, only when App Insights is on for the endpoint.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..spec.model import Endpoint, Version

STORAGE_KEY = "storage-connection-string"  # the key of the synced Secret
CONFIG_MAP_FILE = "model_config_map.json"
CONFIG_MAP_PATH = f"/var/azureml-app/{CONFIG_MAP_FILE}"  # fixed in the collector's code
UPLOAD_WINDOW = "1"  # AML_MODEL_DC_STORAGE_{DATA,COMMIT}_WINDOW_LENGTH, in the library's unit (about a minute)


def storage(ep: Endpoint) -> dict[str, Any] | None:
    """The environment's model_data_collection, when the endpoint has a version that collects."""
    settings = ep.env.settings.get("model_data_collection")
    return settings if settings and any(v.settings["collect_model_data"] for v in ep.versions) else None


def secret_name(ep: Endpoint) -> str:
    """The in-cluster Secret the Secrets Store CSI driver syncs the connection string into."""
    return f"{ep.name}-model-data"


def storage_secret_view(ep: Endpoint) -> dict[str, Any] | None:
    """The SecretProviderClass values of the connection string (None without collection to storage)."""
    settings = storage(ep)
    if settings is None:
        return None
    vault = settings["storage_connection_string_secret"]
    return {"name": secret_name(ep), "objects": [{"objectName": vault}],
            "data": [{"objectName": vault, "key": STORAGE_KEY}]}


def collector_env(ep: Endpoint, v: Version) -> list[dict[str, Any]]:
    """The scoring container's variables for a version that collects (none for one that does not)."""
    if not v.settings["collect_model_data"]:
        return []
    env: list[dict[str, Any]] = [{"name": "AML_MDC_STORAGE_ENABLED", "value": "true"}]  # the server's, to App Insights
    settings = storage(ep)
    if settings is not None:
        env += [{"name": "AML_MODEL_DC_STORAGE_ENABLED", "value": "true"},
                {"name": "AML_MODEL_DC_STORAGE", "secret": secret_name(ep), "key": STORAGE_KEY},
                {"name": "AML_MODEL_DC_STORAGE_DATA_WINDOW_LENGTH", "value": UPLOAD_WINDOW},
                {"name": "AML_MODEL_DC_STORAGE_COMMIT_WINDOW_LENGTH", "value": UPLOAD_WINDOW},
                {"name": "COMPUTE_NAME", "value": ep.env.settings["cluster_name"]},
                {"name": "COMPUTE_TYPE", "value": "AKS"}]
        if "workspace" in settings:  # also the server's App Insights dimension
            env.append({"name": "WORKSPACE_NAME", "value": settings["workspace"]["name"]})
    return env


def config_map_view(ep: Endpoint, v: Version) -> dict[str, Any] | None:
    """The collector's model_config_map.json for a version that collects to storage: the workspace (when the
    environment names it) and the version's models, as Azure ML wrote it into v1's containers."""
    settings = storage(ep)
    if settings is None or not v.settings["collect_model_data"]:
        return None
    content: dict[str, Any] = {}
    if "workspace" in settings:
        workspace = settings["workspace"]
        content["accountContext"] = {"subscriptionId": workspace["subscription_id"],
                                     "resourceGroupName": workspace["resource_group"],
                                     "accountName": workspace["name"]}
    models: dict[str, dict[str, Any]] = {}
    for model in v.settings["models"]:  # the collector sorts a model's versions as integers: only those
        if str(model["version"]).isdigit():
            models.setdefault(model["name"], {})[str(model["version"])] = {}
    content["modelsInfo"] = models
    text = json.dumps(content, indent=2, sort_keys=True) + "\n"
    return {"name": f"{ep.name}-{v.name}-model-config-map", "file": CONFIG_MAP_FILE, "path": CONFIG_MAP_PATH,
            "content": text,
            "digest": hashlib.sha256(text.encode()).hexdigest()[:16]}


def collector_annotations(config_map: dict[str, Any] | None) -> dict[str, str]:
    """The pod template's digest of model_config_map.json: a file mounted by subPath never changes in a running
    pod, so a change rolls the pods instead."""
    return {"endpointgen.io/model-config-map": config_map["digest"]} if config_map else {}
