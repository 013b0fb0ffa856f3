"""Key auth in the mesh: OPA-Envoy as the Istio ext_authz provider, keys read from Key Vault, none in git.

Every keyed endpoint's CUSTOM AuthorizationPolicy sends its requests to the provider `key_auth.ext_authz_provider`,
registered in the AKS add-on's mesh config (`istio-shared-configmap-<revision>`, render/mesh.py) and served by an
OPA-Envoy Deployment in rendered/<env>/key-auth, applied by a Flux Kustomization of its own that no endpoint waits
for.

Each key reaches the authorizer alone, so a missing or malformed one fails alone (README, Key auth, "One bad key"):
an External Secrets Operator `ExternalSecret` per endpoint and slot reads it from Key Vault (a `SecretStore` per
vault, as the authorizer's workload identity) into a Secret holding only its SHA-256 digest and length, as JSON;
the Deployment's projected volume takes every such Secret as optional, at `/keys/<namespace>/<endpoint>/<slot>/
key.json`, and `opa run --watch` loads them as data.apikeys.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..spec.defaults import AUTHORIZER_DEFAULTS, AUTHORIZER_NAME

NAME = AUTHORIZER_NAME
GRPC_PORT = 9191
DIAGNOSTIC_PORT = 8282
KEYS_ROOT = "/keys"
KEY_FILE = "key.json"
REFRESH_INTERVAL = "2m"  # how often External Secrets reads each key again (the CSI driver's rotation default)
POLICY = Path(__file__).with_name("keyauth.rego")
# External Secrets' template (engine v2, sprig's sha256sum): the key's digest and length as JSON. Any value makes a
# valid document, and the authorizer never holds a key, only what it compares against.
KEY_TEMPLATE = '{"sha256": "{{ .key | sha256sum }}", "length": {{ len .key }}}\n'


def key_path(namespace: str, endpoint: str, slot: str) -> str:
    """Where one key's file sits under /keys: OPA reads it as data.apikeys[namespace][endpoint][slot]."""
    return f"{namespace}/{endpoint}/{slot}/{KEY_FILE}"


def key_secret(namespace: str, endpoint: str, slot: str) -> str:
    """The ExternalSecret and the Secret it writes, in the authorizer's namespace (names are DNS labels, so the
    dotted name is unique and a valid Secret name)."""
    return f"{namespace}.{endpoint}.{slot}"


def store_name(vault: str) -> str:
    return f"{NAME}-{vault.lower()}"


def authorizer_view(env: Mapping[str, Any], keyed: Iterable[tuple[str, str, Mapping[str, Any]]]) -> dict[str, Any]:
    """What the authorizer's templates need: settings, a SecretStore per Key Vault, an ExternalSecret per key."""
    settings = {**AUTHORIZER_DEFAULTS, "client_id": env.get("key_vault", {}).get("client_id"),
                **env["key_auth"].get("authorizer", {})}
    keys, namespaces = [], set()
    for name, namespace, refs in sorted(keyed, key=lambda item: (item[1], item[0])):
        namespaces.add(namespace)
        for slot in ("primary", "secondary"):
            if refs[f"{slot}_key_secret"]:
                keys.append({"name": key_secret(namespace, name, slot), "path": key_path(namespace, name, slot),
                             "store": store_name(refs["key_vault"]), "remote": refs[f"{slot}_key_secret"],
                             "endpoint": name, "endpoint_namespace": namespace, "slot": slot})
    vaults = sorted({refs["key_vault"] for _, _, refs in keyed})
    return {
        **settings,
        "name": NAME,
        "service": authorizer_service(env),
        "grpc_port": GRPC_PORT,
        "diagnostic_port": DIAGNOSTIC_PORT,
        "endpoint_namespaces": sorted(namespaces),
        "stores": [{"name": store_name(vault), "vault": vault, "url": f"https://{vault}.vault.azure.net"}
                   for vault in vaults],
        "key_secrets": keys,
        "key_file": KEY_FILE,
        "key_template": KEY_TEMPLATE,
        "refresh_interval": REFRESH_INTERVAL,
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
