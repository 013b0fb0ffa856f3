"""AksEndpoint's token auth as Entra ID issues access tokens: the RequestAuthentication's JWT rules and the
claims the ALLOW policy requires.

An Entra ID tenant issues two kinds of access token (Microsoft identity platform, access token claims):
v1 tokens, `iss` https://sts.windows.net/<tenant>/, whose `aud` is whichever form the client asked for (the
API's App ID URI or its client ID), and v2 tokens, `iss` https://login.microsoftonline.com/<tenant>/v2.0,
whose `aud` is always the API's client ID. An API app issues v1 tokens unless its manifest sets
`requestedAccessTokenVersion: 2`. So an Entra issuer, in either form, gets one rule per token version, each
with the audiences its tokens can carry; any other issuer gets the one rule it names. App roles arrive as the
JSON array `roles`, delegated scopes as the space-separated string `scp`.
"""

from __future__ import annotations

from typing import Any

from ..spec.defaults import CLIENT_ID, entra_tenant

def jwt_rules(token_auth: dict[str, Any], split_scopes: bool = False) -> list[dict[str, Any]]:
    """The RequestAuthentication's jwtRules: for an Entra issuer the tenant's v1 rule (every audience) and, when
    a client ID is among the audiences, its v2 rule (client IDs only); otherwise the issuer as given. With
    `split_scopes`, `scp` is matched scope by scope (spaceDelimitedClaims, Istio 1.28 and later)."""
    issuer, audiences, jwks_uri = token_auth["issuer"], list(token_auth["audiences"]), token_auth.get("jwks_uri")
    tenant = entra_tenant(issuer)
    if tenant is None:
        rules = [{"issuer": issuer, "audiences": audiences, "jwksUri": jwks_uri}]
    else:
        keys = f"https://login.microsoftonline.com/{tenant}/discovery"
        rules = [{"issuer": f"https://sts.windows.net/{tenant}/", "audiences": audiences,
                  "jwksUri": jwks_uri or f"{keys}/keys"}]
        client_ids = [a for a in audiences if CLIENT_ID.match(a)]
        if client_ids:
            rules.append({"issuer": f"https://login.microsoftonline.com/{tenant}/v2.0", "audiences": client_ids,
                          "jwksUri": jwks_uri or f"{keys}/v2.0/keys"})
    return [{**rule, "spaceDelimitedClaims": ["scp"] if split_scopes else None} for rule in rules]


def required(token_auth: dict[str, Any], endpoint: dict[str, Any], field: str) -> list[str]:
    """`required_roles` or `required_scopes`: the endpoint's own list, else the environment's."""
    return list(endpoint.get(field, token_auth.get(field, [])))


def required_claims(token_auth: dict[str, Any], endpoint: dict[str, Any]) -> list[dict[str, Any]]:
    """The ALLOW rule's `when` conditions (all must hold): each required role in `roles`, each required scope
    in `scp`."""
    return [{"key": f"request.auth.claims[{claim}]", "values": [value]}
            for field, claim in (("required_roles", "roles"), ("required_scopes", "scp"))
            for value in required(token_auth, endpoint, field)]
