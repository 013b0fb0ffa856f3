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
from typing import Any

from ..problems import Problem
from .defaults import AUTHORIZER_DEFAULTS, AUTHORIZER_NAME, url_host
from .model import Endpoint, Environment

FEDERATED_CREDENTIALS_PER_IDENTITY = 20
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


def endpoint_row(ep: Endpoint) -> tuple[str, str, Mapping[str, object], bool, str]:
    """A loaded endpoint as accounts() takes it (a recorded one gives the same from its render summary)."""
    return ep.name, ep.namespace, summary(ep), ep.key_refs is not None, ep.doc.display


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
        found.append(Account(authorizer_identity, env.name, authorizer["namespace"], AUTHORIZER_NAME, field))
    prometheus = settings.get("autoscaling", {}).get("prometheus", {})
    for name in ("identity_client_id", "identity_id"):  # the earlier name names the same identity when both are set
        if prometheus.get(name):
            found.append(Account(prometheus[name], env.name, *KEDA_SERVICE_ACCOUNT, ("autoscaling", "prometheus", name)))
            break
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


# --- the plan `endpointgen identities` prints -------------------------------------------------------------

TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"


def plan(environments: list[Environment], endpoints: list[Endpoint]) -> list[dict[str, Any]]:
    """For every identity: the federated credentials to create (one per ServiceAccount and cluster, none twice)
    and the role assignments its ServiceAccounts need, in a stable order."""
    by_identity: dict[str, dict[str, Any]] = {}

    def entry(identity: str) -> dict[str, Any]:
        return by_identity.setdefault(identity, {"client_id": identity, "credentials": {}, "roles": {}})

    for env in environments:
        mine = [ep for ep in endpoints if ep.env.name == env.name]
        issuer = env.settings.get("oidc_issuer")
        found = accounts(env, [endpoint_row(ep) for ep in mine])
        for account in found:
            subject = f"system:serviceaccount:{account.namespace}:{account.name}"
            name = f"{env.name}-{account.namespace}-{account.name}"[:120]
            entry(account.identity)["credentials"][(env.name, subject)] = {
                "name": name, "environment": env.name, "cluster": env.settings["cluster_name"], "issuer": issuer,
                "subject": subject, "audience": TOKEN_EXCHANGE_AUDIENCE}
        for ep in mine:
            identity = endpoint_identity(ep)
            if identity is None:
                continue
            for model in (m for v in ep.versions for m in v.settings["models"]):
                account_name = storage_account(model["uri"])
                if account_name:
                    add_role(entry(identity), "Storage Blob Data Reader", "storage-account", account_name,
                             "the model loaders read the models")
            if ep.settings["enable_app_insights"] and env.settings.get("key_vault"):
                insights = env.settings.get("app_insights", {})
                for secret in (insights.get("instrumentation_key_secret"), insights.get("connection_string_secret")):
                    if secret:  # this secret only: the vault holds the scoring keys too
                        add_role(entry(identity), "Key Vault Secrets User", "key-vault-secret",
                                 f"{env.settings['key_vault']['name']}/{secret}",
                                 "the Secrets Store CSI driver mounts the App Insights secret")
        namespace = {**AUTHORIZER_DEFAULTS, **env.settings.get("key_auth", {}).get("authorizer", {})}["namespace"]
        authorizer = next((a for a in found if (a.namespace, a.name) == (namespace, AUTHORIZER_NAME)), None)
        if authorizer is not None:
            for vault in sorted({ep.key_refs["key_vault"] for ep in mine if ep.key_refs}):
                add_role(entry(authorizer.identity), "Key Vault Secrets User", "key-vault", vault,
                         "the authorizer mounts the scoring keys")
        prometheus = env.settings.get("autoscaling", {}).get("prometheus", {})
        keda = prometheus.get("identity_client_id") or prometheus.get("identity_id")
        if keda:
            add_role(entry(keda), "Monitoring Data Reader", "azure-monitor-workspace",
                     url_host(prometheus["server_address"]), "KEDA queries the in-flight requests")
    return [{"client_id": e["client_id"], "credentials": sorted(e["credentials"].values(), key=lambda c: c["name"]),
             "roles": sorted(e["roles"].values(), key=lambda r: (r["role"], r["scope_kind"], r["scope"]))}
            for _, e in sorted(by_identity.items())]


def add_role(entry: dict[str, Any], role: str, kind: str, scope: str, why: str) -> None:
    entry["roles"].setdefault((role, kind, scope), {"role": role, "scope_kind": kind, "scope": scope, "why": why})


def storage_account(uri: str) -> str | None:
    """The storage account of a blob URI (https://<account>.blob.core.windows.net/...); None for azureml://."""
    host = url_host(uri)
    return host.split(".", 1)[0] if host.endswith(".blob.core.windows.net") else None


SCOPES = {  # how `az` finds the resource ID of a role assignment's scope
    "storage-account": "$(az storage account show --name {scope} --query id -o tsv)",
    "key-vault": "$(az keyvault show --name {scope} --query id -o tsv)",
    "key-vault-secret": "$(az keyvault show --name {vault} --query id -o tsv)/secrets/{secret}",
    "azure-monitor-workspace": "$(az monitor account list --query \"[?contains(metrics.prometheusQueryEndpoint, "
                               "'{scope}')].id\" -o tsv)",
}


def az_commands(identities: list[dict[str, Any]]) -> str:
    """The plan as a shell script of `az` commands: each identity found by its client ID."""
    lines = ["#!/usr/bin/env bash", "# endpointgen identities: federated credentials and role assignments",
             "set -euo pipefail"]
    if any(c["issuer"] is None for item in identities for c in item["credentials"]):
        lines.append(': "${CLUSTER_RESOURCE_GROUP:?set it to the resource group of the AKS clusters, or set '
                     'oidc_issuer in each environment}"')
    for item in identities:
        client = item["client_id"]
        lines += ["", f"# managed identity {client}: {len(item['credentials'])} of "
                      f"{FEDERATED_CREDENTIALS_PER_IDENTITY} federated credentials",
                  f"id=$(az identity list --query \"[?clientId=='{client}'].id\" -o tsv)"]
        for c in item["credentials"]:
            issuer = c["issuer"] or f"$(az aks show --name {c['cluster']} --resource-group \"$CLUSTER_RESOURCE_GROUP\" " \
                                    "--query oidcIssuerProfile.issuerUrl -o tsv)"
            lines.append(f"az identity federated-credential create --identity-name \"${{id##*/}}\" "
                         f"--resource-group \"$(cut -d/ -f5 <<<\"$id\")\" --name {c['name']} --issuer \"{issuer}\" "
                         f"--subject {c['subject']} --audiences {c['audience']}")
        for r in item["roles"]:
            vault, _, secret = r["scope"].partition("/")
            scope = SCOPES[r["scope_kind"]].format(scope=r["scope"], vault=vault, secret=secret)
            lines.append(f"az role assignment create --assignee {client} --role \"{r['role']}\" "
                         f"--scope \"{scope}\"  # {r['why']}")
    return "\n".join(lines) + "\n"
