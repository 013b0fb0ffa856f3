"""collect_model_data needs somewhere to collect to: without it the setting is a silent no-op (render/modeldata.py
has the two paths)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ..problems import Problem
from .model import Endpoint

STORAGE_SETTING = "model_data_collection.storage_connection_string_secret"
NOTHING_COLLECTS = "nothing would collect"


def nowhere_to_collect(env: Mapping[str, Any], app_insights: bool) -> bool:
    """Neither path exists: no storage for a script's collector, no App Insights for the server's collection."""
    return "model_data_collection" not in env and not app_insights


def collection_problem(ep: Endpoint) -> str | None:
    """Why the endpoint's collected data would go nowhere, or None when it has a place to go."""
    env = ep.env.settings
    if "model_data_collection" in env and "key_vault" not in env:
        return (f"environment {ep.env.name!r} has model_data_collection but no key_vault section; the "
                "storage connection string is read from Key Vault")
    if not nowhere_to_collect(env, ep.settings["enable_app_insights"]):
        return None
    return (f"{NOTHING_COLLECTS}: environment {ep.env.name!r} has no {STORAGE_SETTING} (where a script's "
            "azureml-monitoring ModelDataCollector uploads, to Blob Storage) and the endpoint has no "
            "enable_app_insights (where the inference server sends inputs and predictions); give one, or set "
            "collect_model_data: false")


def model_data_collected(ep: Endpoint) -> Iterator[Problem]:
    """Each version that collects, where its collect_model_data comes from, when nothing would receive the data."""
    collecting = [v for v in ep.versions if v.settings["collect_model_data"]]
    why = collection_problem(ep) if collecting else None
    if why:
        for v in collecting:
            yield ep.version_problem(v, "collect_model_data", why)
