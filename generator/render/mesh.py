"""The AKS Istio add-on's mesh config: one shared ConfigMap per installed revision.

The add-on merges `istio-shared-configmap-<revision>` (namespace aks-istio-system, key `mesh`) into the mesh
config of istiod `<revision>`. endpointgen renders one for `istio.revision` and for each of
`istio.additional_revisions` (the revision a canary upgrade installs beside it), all with the same content: the
platform team's `istio.mesh_config`, with the key-auth provider added to its `extensionProviders`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

MESH_NAMESPACE = "aks-istio-system"
SHARED_CONFIGMAP_PREFIX = "istio-shared-configmap-"


def installed_revisions(istio: Mapping[str, Any]) -> list[str]:
    """The revisions the cluster runs: the one namespaces use, then those a canary upgrade adds beside it."""
    return [istio["revision"], *istio.get("additional_revisions", [])]


def configmap_name(revision: str) -> str:
    return f"{SHARED_CONFIGMAP_PREFIX}{revision}"


def shared_mesh(given: Mapping[str, Any], provider_snippet: str | None) -> str:
    """The `mesh` key: the platform team's settings as given, the key-auth provider added to extensionProviders
    (the provider's snippet unchanged when the team sets nothing)."""
    if not given:
        return provider_snippet or ""
    merged = dict(given)
    if provider_snippet:
        ours = yaml.safe_load(provider_snippet)["extensionProviders"]
        merged["extensionProviders"] = [*given.get("extensionProviders", []), *ours]
    return yaml.safe_dump(merged, sort_keys=False, default_flow_style=False, allow_unicode=True)


def mesh_configmaps(env: Mapping[str, Any], provider_snippet: str | None) -> list[dict[str, str]]:
    """What each shared ConfigMap template gets, one per installed revision; none when the team manages the
    ConfigMap itself (key_auth.mesh_config: snippet) or there is nothing to put in it."""
    mesh = shared_mesh(env["istio"].get("mesh_config", {}), provider_snippet)
    if env["key_auth"].get("mesh_config", "render") != "render" or not mesh:
        return []
    return [{"name": configmap_name(revision), "namespace": MESH_NAMESPACE, "revision": revision, "mesh": mesh}
            for revision in installed_revisions(env["istio"])]
