"""Which managed identity each rendered ServiceAccount federates with, and Entra ID's limit on them.

A user-assigned managed identity holds at most 20 federated identity credentials (Microsoft Entra workload ID,
"federated identity credential" limits). Each environment is one cluster, so one OIDC issuer: every
ServiceAccount that uses an identity there needs a credential of its own (issuer, subject
system:serviceaccount:<namespace>:<name>). The rule spans environments, so it runs on per-endpoint summaries:
each endpoint's namespace, identity and whether it has key auth.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from ..problems import Problem
from .defaults import AUTHORIZER_DEFAULTS
from .model import Endpoint, Environment

FEDERATED_CREDENTIALS_PER_IDENTITY = 20
AUTHORIZER_SERVICE_ACCOUNT = "endpointgen-key-auth"  # render/keyauth.NAME
KEDA_SERVICE_ACCOUNT = ("kube-system", "keda-operator")  # the AKS KEDA add-on's operator


@dataclass(frozen=True)
class Account:
    """One ServiceAccount of one environment and the identity it federates with; `field` says where the
    identity is set (an endpoint spec's path, or the environment file's)."""

    identity: str
    env: str
    namespace: str
    name: str
    field: tuple[str, ...]
    spec: str = ""  # the endpoint spec's path when the endpoint sets its own identity


def endpoint_identity(ep: Endpoint) -> str | None:
    """The identity of an endpoint's ServiceAccount: its workload_identity_client_id, else key_vault.client_id."""
    return ep.doc.data.get("workload_identity_client_id") or ep.env.settings.get("key_vault", {}).get("client_id")


def summary(ep: Endpoint) -> dict[str, object]:
    """What the rule needs of one endpoint (recorded with its render summary)."""
    return {"identity": endpoint_identity(ep), "own_identity": "workload_identity_client_id" in ep.doc.data}


def accounts(env: Environment, endpoints: Iterable[tuple[str, str, Mapping[str, object], bool, str]]
             ) -> list[Account]:
    """The environment's ServiceAccounts with a workload identity: each endpoint's (name, namespace, summary,
    keyed, spec path), the authorizer's when an endpoint has key auth, and KEDA's operator."""
    settings = env.settings
    found, keyed = [], False
    for name, namespace, facts, has_keys, spec in endpoints:
        keyed = keyed or has_keys
        if facts.get("identity"):
            own = bool(facts.get("own_identity"))
            found.append(Account(str(facts["identity"]), env.name, namespace, name,
                                 ("workload_identity_client_id",) if own else ("key_vault", "client_id"),
                                 spec if own else ""))
    authorizer = {**AUTHORIZER_DEFAULTS, **settings.get("key_auth", {}).get("authorizer", {})}
    authorizer_identity = authorizer.get("client_id") or settings.get("key_vault", {}).get("client_id")
    if keyed and authorizer_identity:
        field = ("key_auth", "authorizer", "client_id") if "client_id" in authorizer else ("key_vault", "client_id")
        found.append(Account(authorizer_identity, env.name, authorizer["namespace"], AUTHORIZER_SERVICE_ACCOUNT, field))
    prometheus = settings.get("autoscaling", {}).get("prometheus", {})
    keda = prometheus.get("identity_client_id") or prometheus.get("identity_id")
    if keda:
        found.append(Account(keda, env.name, *KEDA_SERVICE_ACCOUNT, ("autoscaling", "prometheus", "identity_client_id"
                                                                   if "identity_client_id" in prometheus else "identity_id")))
    return found


def over_limit(found: Iterable[Account]) -> dict[str, int]:
    """Identities that would need more than 20 federated credentials, with how many."""
    by_identity: dict[str, set[tuple[str, str, str]]] = {}
    for account in found:
        by_identity.setdefault(account.identity, set()).add((account.env, account.namespace, account.name))
    return {identity: len(credentials) for identity, credentials in by_identity.items()
            if len(credentials) > FEDERATED_CREDENTIALS_PER_IDENTITY}


def federated_credentials_within_limit(envs: Mapping[str, Environment], found: list[Account],
                                       specs: Mapping[str, Endpoint]) -> Iterator[Problem]:
    """One problem per place that names an identity over the limit: the environment file's field, or the
    endpoint spec's (`specs`: the loaded endpoints that set their own identity, by their display path)."""
    over = over_limit(found)
    for identity, count in sorted(over.items()):
        message = (f"managed identity {identity} would need {count} federated credentials (one per "
                   f"ServiceAccount and cluster), above Entra ID's limit of {FEDERATED_CREDENTIALS_PER_IDENTITY} "
                   f"per identity: give endpoints their own workload_identity_client_id (README, Identities)")
        for env_name, field, spec in sorted({(a.env, a.field, a.spec) for a in found if a.identity == identity}):
            if spec:
                if spec in specs:
                    yield specs[spec].problem(field, message)
            else:
                yield envs[env_name].doc.problem(field, message)
