"""Key auth in the mesh: OPA-Envoy as the Istio ext_authz provider, keys read from Key Vault, none in git.

Every keyed endpoint's CUSTOM AuthorizationPolicy sends its requests to the provider `key_auth.ext_authz_provider`,
registered in the AKS add-on's mesh config (`istio-shared-configmap-<revision>`) and served by an OPA-Envoy
Deployment that endpointgen renders into the platform folder. The Secrets Store CSI driver mounts each keyed
endpoint's primary and secondary key from Key Vault as `/keys/<vault>/<namespace>/<endpoint>/<slot>/key.yaml`
(rotation on: the files follow Key Vault), and `opa run --watch` loads them as data.apikeys.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..spec.defaults import AUTHORIZER_DEFAULTS, AUTHORIZER_NAME
from .views import csi_objects

NAME = AUTHORIZER_NAME
GRPC_PORT = 9191
DIAGNOSTIC_PORT = 8282
KEYS_ROOT = "/keys"
POLICY = Path(__file__).with_name("keyauth.rego")


def key_alias(namespace: str, endpoint: str, slot: str) -> str:
    """Where the CSI driver writes one key, under the vault's mount: OPA reads it as data at that path."""
    return f"{namespace}/{endpoint}/{slot}/key.yaml"


def authorizer_view(env: Mapping[str, Any], keyed: Iterable[tuple[str, str, Mapping[str, Any]]]) -> dict[str, Any]:
    """What the authorizer's templates need: settings, one CSI volume per Key Vault, policy and configs."""
    settings = {**AUTHORIZER_DEFAULTS, "client_id": env.get("key_vault", {}).get("client_id"),
                **env["key_auth"].get("authorizer", {})}
    vaults: dict[str, list[dict[str, str]]] = {}
    namespaces = set()
    for name, namespace, refs in sorted(keyed, key=lambda item: (item[1], item[0])):
        namespaces.add(namespace)
        for slot in ("primary", "secondary"):
            secret = refs[f"{slot}_key_secret"]
            if secret:
                vaults.setdefault(refs["key_vault"], []).append(
                    {"objectName": secret, "objectAlias": key_alias(namespace, name, slot)})
    service = authorizer_service(env)
    return {
        **settings,
        "name": NAME,
        "service": service,
        "grpc_port": GRPC_PORT,
        "diagnostic_port": DIAGNOSTIC_PORT,
        "endpoint_namespaces": sorted(namespaces),
        "vaults": [{"vault": vault, "volume": f"keys-{vault.lower()}", "mount": f"{KEYS_ROOT}/{vault}",
                    "spc": f"{NAME}-{vault.lower()}", "objects": csi_objects(objects)}
                   for vault, objects in sorted(vaults.items())],
        "policy": POLICY.read_text(encoding="utf-8"),
        "data": json.dumps({"endpointgen": {"trust_domain": settings["trust_domain"]}}, indent=2) + "\n",
        "config": opa_config(),
    }


def opa_config() -> str:
    """OPA-Envoy's configuration: the gRPC ext_authz server; no decision logs (they would hold the header)."""
    return ("plugins:\n"
            "  envoy_ext_authz_grpc:\n"
            f"    addr: :{GRPC_PORT}\n"
            "    path: envoy/authz/allow\n"
            "decision_logs:\n"
            "  console: false\n")


def authorizer_service(env: Mapping[str, Any]) -> str:
    """The authorizer's Service, as the mesh config names it."""
    namespace = env["key_auth"].get("authorizer", {}).get("namespace", AUTHORIZER_DEFAULTS["namespace"])
    return f"{NAME}.{namespace}.svc.cluster.local"


def provider_snippet(env: Mapping[str, Any]) -> str:
    """The mesh config that registers the provider a CUSTOM AuthorizationPolicy names (`extensionProviders`)."""
    provider, service = env["key_auth"]["ext_authz_provider"], authorizer_service(env)
    return ("extensionProviders:\n"
            f"  - name: {provider}\n"
            "    envoyExtAuthzGrpc:\n"
            f"      service: {service}\n"
            f"      port: {GRPC_PORT}\n"
            "      timeout: 2s\n"
            "      failOpen: false\n"
            "      statusOnError: \"503\"\n")
