"""Semantic rules: what the JSON Schema cannot say about an endpoint spec.

Each rule is a function taking an Endpoint (already schema-valid) and yielding
Problems. Rules follow the AksEndpoint semantics, plus the Kubernetes facts
that would otherwise only fail at apply time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal, localcontext

from ..problems import Problem
from .collection import model_data_collected
from .defaults import (AUTHORIZER_DEFAULTS, AUTHORIZER_NAME, AUTOSCALE_SETTINGS, AZURE_MONITOR_SUFFIX, CLIENT_ID,
                       NATIVE_SIDECAR_KUBERNETES, duration_seconds, entra_tenant, kubernetes_minor,
                       prometheus_scraper_namespace, revision_minor, url_host)
from .model import Endpoint, Environment
from .traffic import EXACT
from .waivers import POLICIES

Rule = Callable[[Endpoint], Iterable[Problem]]

MAX_OBJECT_NAME = 63  # a Service name is a DNS-1035 label
RESERVED_ENV_VARS = {  # what endpointgen sets from the spec (render/views.py, container_env)
    "AZUREML_MODEL_DIR", "AZUREML_ENTRY_SCRIPT", "AZUREML_SOURCE_DIRECTORY", "AML_APP_ROOT",
    "WORKER_COUNT", "WORKER_TIMEOUT", "SCORING_TIMEOUT_MS", "GUNICORN_CMD_ARGS", "SERVICE_NAME", "SERVICE_VERSION",
    "SERVICE_PATH_PREFIX",
    "AML_APP_INSIGHTS_ENABLED", "AML_APP_INSIGHTS_KEY", "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "AML_MDC_STORAGE_ENABLED", "AML_MODEL_DC_STORAGE_ENABLED", "AML_MODEL_DC_STORAGE",  # render/modeldata.py
    "AML_MODEL_DC_STORAGE_DATA_WINDOW_LENGTH", "AML_MODEL_DC_STORAGE_COMMIT_WINDOW_LENGTH", "COMPUTE_NAME",
    "COMPUTE_TYPE", "WORKSPACE_NAME",
}
SECRET_LIKE_ENV = re.compile(
    r"(^|_)(PASSWORD|PASSWD|SECRET|API_?KEY|ACCESS_?KEY|PRIMARY_?KEY|SECONDARY_?KEY|TOKEN|CONNECTION_?STRING|SAS)($|_)",
    re.IGNORECASE,
)


def name_matches_file(ep: Endpoint) -> Iterator[Problem]:
    """`name` must equal the file name without `.yaml`."""
    stem = ep.doc.path.stem
    if ep.name != stem:
        yield ep.problem(("name",), f"must equal the file name {stem!r} (the file is {ep.doc.path.name})")


RESERVED_NAMES = {"platform"}  # the Flux Kustomization <env>-platform applies the shared objects


def name_is_not_reserved(ep: Endpoint) -> Iterator[Problem]:
    """An endpoint cannot be called `platform`: its Flux Kustomization would collide with the shared one."""
    if ep.name in RESERVED_NAMES:
        yield ep.problem(("name",), f"{ep.name!r} is reserved (the Flux Kustomization <env>-{ep.name} applies the "
                                    "shared platform objects); choose another name")


def compute_target_matches_cluster(ep: Endpoint) -> Iterator[Problem]:
    """`compute_target_name`, when set, must be the environment's AKS cluster."""
    target = ep.settings.get("compute_target_name")
    cluster = ep.env.settings["cluster_name"]
    if target is not None and target != cluster:
        yield ep.problem(("compute_target_name",),
                         f"must equal the cluster of environment {ep.env.name!r} ({cluster!r}), got {target!r}")


SYSTEM_NAMESPACES = {"default", "kube-system", "kube-public", "kube-node-lease", "flux-system", "istio-system",
                     "gatekeeper-system", "calico-system", "tigera-operator", "app-routing-system"}


def namespace_is_not_a_system_one(ep: Endpoint) -> Iterator[Problem]:
    """Endpoints live in namespaces of their own, never in one the cluster or the platform owns."""
    ns = ep.namespace
    gateway_ns = ep.env.settings["istio"].get("gateway", {}).get("namespace", "aks-istio-ingress")
    flux_ns = ep.env.settings.get("flux", {}).get("namespace", "flux-system")
    authorizer_ns = ep.env.settings.get("key_auth", {}).get("authorizer", {}).get("namespace",
                                                                                   AUTHORIZER_DEFAULTS["namespace"])
    if ns in SYSTEM_NAMESPACES or ns.startswith(("aks-", "kube-")) or ns in (gateway_ns, flux_ns, authorizer_ns):
        path = ("namespace",) if "namespace" in ep.doc.data else ("name",)
        yield ep.problem(path, f"namespace {ns!r} belongs to the cluster or the platform; "
                               "endpoints need a namespace of their own")


def one_auth_mode(ep: Endpoint) -> Iterator[Problem]:
    """Key auth and token auth cannot both be on."""
    if ep.settings["auth_enabled"] and ep.settings["token_auth_enabled"]:
        path = ("auth_enabled",) if "auth_enabled" in ep.doc.data else ("token_auth_enabled",)
        yield ep.problem(path, "auth_enabled and token_auth_enabled cannot both be true; choose key or token auth")


SPACE_DELIMITED_CLAIMS_ISTIO = 28  # RequestAuthentication spaceDelimitedClaims: Istio 1.28 (istio/api#3547)


def token_claims_enforceable(ep: Endpoint) -> Iterator[Problem]:
    """required_roles / required_scopes of an endpoint need token auth, and scopes a proxy that splits `scp`."""
    for field in ("required_roles", "required_scopes"):
        if field in ep.doc.data and not ep.settings["token_auth_enabled"]:
            yield ep.problem((field,), f"{field} is checked on tokens only: set token_auth_enabled: true")
    token = ep.env.settings.get("token_auth", {})
    if not ep.settings["token_auth_enabled"] or not ep.doc.data.get("required_scopes", token.get("required_scopes")):
        return
    minor = revision_minor(ep.env.settings["istio"]["revision"])
    if minor is not None and minor < SPACE_DELIMITED_CLAIMS_ISTIO:
        message = (f"scp holds all of a token's scopes in one space-separated string, which Istio splits for "
                   f"matching only from 1.28 (spaceDelimitedClaims); istio.revision "
                   f"{ep.env.settings['istio']['revision']} would refuse every token with more than one scope: "
                   f"use asm-1-28 or later, or required_roles")
        if "required_scopes" in ep.doc.data:
            yield ep.problem(("required_scopes",), message)
        else:
            yield ep.env.doc.problem(("token_auth", "required_scopes"), message)


def token_auth_configured(ep: Endpoint) -> Iterator[Problem]:
    """Token auth needs the environment's Azure AD issuer and audiences."""
    if ep.settings["token_auth_enabled"] and "token_auth" not in ep.env.settings:
        yield ep.problem(("token_auth_enabled",),
                         f"environment {ep.env.name!r} has no token_auth (issuer, audiences) section")


def keys_referenced_properly(ep: Endpoint) -> Iterator[Problem]:
    """Key references need key auth, a Key Vault, and a primary before a secondary."""
    keys = ep.settings.get("auth_keys")
    if keys is None:
        if ep.settings["auth_enabled"] and "key_vault" not in ep.env.settings:
            yield ep.problem(("auth_enabled",),
                             f"key auth needs the scoring keys in Key Vault, but environment {ep.env.name!r} "
                             "has no key_vault section; add one, or set auth_enabled: false")
        return
    if not ep.settings["auth_enabled"]:
        yield ep.problem(("auth_keys",), "auth_keys is set but key auth is off (auth_enabled is false)")
    if "secondary_key_secret" in keys and "primary_key_secret" not in keys:
        yield ep.problem(("auth_keys", "secondary_key_secret"),
                         "a secondary key without a primary key is meaningless; set primary_key_secret too")
    if "key_vault" not in keys and "key_vault" not in ep.env.settings:
        yield ep.problem(("auth_keys",), f"no key_vault here and none in environment {ep.env.name!r}")


def app_insights_configured(ep: Endpoint) -> Iterator[Problem]:
    """App Insights needs the environment's connection-string secret and the Key Vault it lives in."""
    if ep.settings["enable_app_insights"]:
        missing = [name for name in ("app_insights", "key_vault") if name not in ep.env.settings]
        if missing:
            yield ep.problem(("enable_app_insights",),
                             f"environment {ep.env.name!r} has no {' or '.join(missing)} section; the connection "
                             "string is read from Key Vault")


def model_loader_configured(ep: Endpoint) -> Iterator[Problem]:
    """A version with models needs the environment's model_loader, the init container that fetches them."""
    if "model_loader" in ep.env.settings:
        return
    for v in ep.versions:
        if v.settings["models"]:
            yield ep.problem(("versions", v.index, "models"),
                             f"environment {ep.env.name!r} has no model_loader (the image that fetches models); "
                             "add one, or leave models out and carry the model in the scoring image")


def waivers_name_known_policies(ep: Endpoint) -> Iterator[Problem]:
    """A waiver names an existing policy, once."""
    seen: set[str] = set()
    for index, waiver in enumerate(ep.settings.get("waivers", [])):
        policy = waiver["policy"]
        if policy not in POLICIES:
            yield ep.problem(("waivers", index, "policy"),
                             f"unknown policy {policy!r}; policies: {', '.join(sorted(POLICIES))}")
        elif policy in seen:
            yield ep.problem(("waivers", index, "policy"), f"policy {policy!r} is waived twice")
        seen.add(policy)


def unique_version_names(ep: Endpoint) -> Iterator[Problem]:
    """Version names are unique within an endpoint."""
    seen: dict[str, int] = {}
    for v in ep.versions:
        if v.name in seen:
            yield ep.problem(("versions", v.index, "version_name"),
                             f"duplicate version name {v.name!r} (also versions[{seen[v.name]}])")
        seen.setdefault(v.name, v.index)


def one_default_version(ep: Endpoint) -> Iterator[Problem]:
    """At most one version sets is_default: true (without one, the first version is the default)."""
    flagged = [v for v in ep.versions if v.spec.get("is_default") is True]
    for v in flagged[1:]:
        yield ep.problem(("versions", v.index, "is_default"),
                         f"only one version can be the default; {flagged[0].name!r} already is")


def one_control_version(ep: Endpoint) -> Iterator[Problem]:
    """At most one version is the control (is_control_version_type: true)."""
    flagged = [v for v in ep.versions if v.spec.get("is_control_version_type") is True]
    for v in flagged[1:]:
        yield ep.problem(("versions", v.index, "is_control_version_type"),
                         f"only one version can be the control; {flagged[0].name!r} already is")


def traffic_fits(ep: Endpoint) -> Iterator[Problem]:
    """The traffic of the non-default versions sums to at most 100%."""
    others = [v for v in ep.versions if not v.is_default]
    with localcontext(EXACT):
        total = sum((Decimal(str(v.settings["traffic_percentile"])) for v in others), Decimal(0))
    if total > 100:
        parts = " + ".join(f"{v.name} {v.settings['traffic_percentile']}" for v in others)
        default = next(v for v in ep.versions if v.is_default)
        yield ep.problem(("versions",),
                         f"traffic_percentile of the non-default versions sums to {total}% ({parts}), more than "
                         f"100%; the default version {default.name!r} takes what the others leave")


def scaling_is_consistent(ep: Endpoint) -> Iterator[Problem]:
    """Autoscaling and num_replicas exclude each other; autoscale_* settings need autoscaling."""
    for v in ep.versions:
        enabled = v.spec.get("autoscale_enabled")
        if enabled is True and "num_replicas" in v.spec:
            yield ep.problem(("versions", v.index, "num_replicas"),
                             "num_replicas cannot be set together with autoscale_enabled: true")
        if enabled is False and "num_replicas" not in v.spec:
            yield ep.problem(("versions", v.index, "autoscale_enabled"),
                             "autoscale_enabled: false needs num_replicas")
        if not v.settings["autoscale_enabled"]:
            for name in AUTOSCALE_SETTINGS:
                if name in v.spec:
                    yield ep.problem(("versions", v.index, name),
                                     f"{name} has no effect with autoscaling off (num_replicas is set)")


def replicas_in_range(ep: Endpoint) -> Iterator[Problem]:
    """autoscale_min_replicas <= autoscale_max_replicas."""
    for v in ep.versions:
        low, high = v.settings["autoscale_min_replicas"], v.settings["autoscale_max_replicas"]
        if v.settings["autoscale_enabled"] and low > high:
            field = "autoscale_min_replicas" if "autoscale_min_replicas" in v.spec else "autoscale_max_replicas"
            yield ep.version_problem(v, field, f"autoscale_min_replicas ({low}) exceeds autoscale_max_replicas ({high})")


def limits_cover_requests(ep: Endpoint) -> Iterator[Problem]:
    """cpu_cores_limit >= cpu_cores and memory_gb_limit >= memory_gb."""
    for v in ep.versions:
        for request, limit in (("cpu_cores", "cpu_cores_limit"), ("memory_gb", "memory_gb_limit")):
            low, high = v.settings[request], v.settings[limit]
            if high is not None and high < low:
                yield ep.version_problem(v, limit, f"{limit} ({high}) is below {request} ({low})")


def resources_are_kubernetes_quantities(ep: Endpoint) -> Iterator[Problem]:
    """CPU is granted in millicores, so cpu_cores must be a multiple of 0.001."""
    for v in ep.versions:
        for name in ("cpu_cores", "cpu_cores_limit"):
            value = v.settings[name]
            if value is not None and (Decimal(str(value)) * 1000) % 1 != 0:
                yield ep.version_problem(v, name, f"{value} is finer than a millicore; use a multiple of 0.001")


def object_names_fit(ep: Endpoint) -> Iterator[Problem]:
    """`<endpoint>-<version>` names the version's Service and Deployment: at most 63 characters."""
    for v in ep.versions:
        object_name = f"{ep.name}-{v.name}"
        if len(object_name) > MAX_OBJECT_NAME:
            yield ep.problem(("versions", v.index, "version_name"),
                             f"{object_name!r} ({len(object_name)} characters) names this version's Kubernetes "
                             f"Service and must be at most {MAX_OBJECT_NAME}; shorten the endpoint or version name")


def unique_models(ep: Endpoint) -> Iterator[Problem]:
    """A version cannot list the same model name and version twice (they share a folder)."""
    for v in ep.versions:
        seen: set[tuple[str, str]] = set()
        for i, model in enumerate(v.spec.get("models", [])):
            key = (model["name"], str(model["version"]))
            if key in seen:
                yield ep.problem(("versions", v.index, "models", i),
                                 f"model {key[0]}:{key[1]} is listed twice")
            seen.add(key)


def environment_variables_safe(ep: Endpoint) -> Iterator[Problem]:
    """No secrets in environment variables, and none of the names endpointgen sets itself."""
    for v in ep.versions:
        variables = v.spec["inference_config"].get("environment_variables", {})
        for name in variables:
            path = ("versions", v.index, "inference_config", "environment_variables", name)
            if name.upper() in RESERVED_ENV_VARS:
                yield ep.problem(path, f"{name} is set by endpointgen from the spec; remove it")
            elif SECRET_LIKE_ENV.search(name):
                yield ep.problem(path, f"{name} looks like a secret, and values here are committed to git; "
                                       "keep secrets in Key Vault and read them with workload identity")


RULES: list[Rule] = [
    name_matches_file,
    name_is_not_reserved,
    compute_target_matches_cluster,
    namespace_is_not_a_system_one,
    one_auth_mode,
    token_auth_configured,
    token_claims_enforceable,
    keys_referenced_properly,
    app_insights_configured,
    model_data_collected,
    waivers_name_known_policies,
    unique_version_names,
    one_default_version,
    one_control_version,
    traffic_fits,
    scaling_is_consistent,
    replicas_in_range,
    limits_cover_requests,
    resources_are_kubernetes_quantities,
    object_names_fit,
    unique_models,
    model_loader_configured,
    environment_variables_safe,
]


def endpoint_problems(ep: Endpoint) -> list[Problem]:
    """Every semantic problem of one endpoint."""
    return [problem for rule in RULES for problem in rule(ep)]


def environment_problems(env: Environment) -> Iterator[Problem]:
    """The environment's own defaults must be consistent, even before an endpoint inherits them."""
    defaults = env.defaults
    pairs = (("autoscale_min_replicas", "autoscale_max_replicas"), ("cpu_cores", "cpu_cores_limit"),
             ("memory_gb", "memory_gb_limit"))
    for low, high in pairs:
        if low in defaults and high in defaults and defaults[low] > defaults[high]:
            yield env.doc.problem(("defaults", high), f"{high} ({defaults[high]}) is below {low} ({defaults[low]})")
    for name in ("cpu_cores", "cpu_cores_limit"):
        if name in defaults and (Decimal(str(defaults[name])) * 1000) % 1 != 0:
            yield env.doc.problem(("defaults", name),
                                  f"{defaults[name]} is finer than a millicore; use a multiple of 0.001")
    yield from prometheus_settings_consistent(env)
    yield from native_sidecars_supported(env)
    yield from mesh_revisions_consistent(env)
    yield from token_audiences_reachable(env)
    yield from prometheus_can_scrape(env)


def prometheus_can_scrape(env: Environment) -> Iterator[Problem]:
    """The NetworkPolicy must admit the autoscaling Prometheus's scraper to the sidecars' metrics ports."""
    policy = env.settings.get("network_policy", {})
    scraper = prometheus_scraper_namespace(env.settings)
    if not policy.get("enabled", True) or scraper is None or "metrics_namespaces" not in policy:
        return
    if scraper not in policy["metrics_namespaces"]:
        address = env.settings["autoscaling"]["prometheus"]["server_address"]
        yield env.doc.problem(("network_policy", "metrics_namespaces"),
                              f"the autoscaling Prometheus ({address}) scrapes from namespace {scraper!r}, which "
                              f"this list does not admit to the sidecars' metrics ports 15020 and 15090: no version "
                              f"would ever have metrics to scale on; add {scraper!r}")


def token_audiences_reachable(env: Environment) -> Iterator[Problem]:
    """An Entra ID token's aud is the API's App ID URI (a URI) or its client ID (a GUID): an Entra issuer with no
    audience of either form admits no token at all."""
    token = env.settings.get("token_auth")
    if token is None or entra_tenant(token["issuer"]) is None:
        return
    if not any(CLIENT_ID.match(a) or re.match(r"^[a-z][a-z0-9+.-]*://", a) for a in token["audiences"]):
        yield env.doc.problem(("token_auth", "audiences"),
                              "an Entra ID access token's aud is the API's App ID URI (api://... or https://...) "
                              "or its client ID (a GUID); none of these is either, so every token would get 401")


def native_sidecars_supported(env: Environment) -> Iterator[Problem]:
    """`istio.native_sidecars: true` needs a cluster whose Kubernetes runs them (AKS: 1.33 or later)."""
    version = kubernetes_minor(env.settings["kubernetes_version"])
    if env.settings["istio"].get("native_sidecars") and version < NATIVE_SIDECAR_KUBERNETES:
        yield env.doc.problem(("istio", "native_sidecars"),
                              f"native sidecars need Kubernetes 1.33 or later on AKS; this cluster runs "
                              f"{env.settings['kubernetes_version']}")


def mesh_revisions_consistent(env: Environment) -> Iterator[Problem]:
    """A canary upgrade runs two neighbouring revisions; the key-auth provider in the mesh config is endpointgen's."""
    istio, provider = env.settings["istio"], env.settings.get("key_auth", {}).get("ext_authz_provider", AUTHORIZER_NAME)
    revision, minor = istio["revision"], revision_minor(istio["revision"])
    for i, other in enumerate(istio.get("additional_revisions", [])):
        apart = None if minor is None or revision_minor(other) is None else abs(revision_minor(other) - minor)
        if other == revision or apart == 0 or (apart or 0) > 2:
            yield env.doc.problem(("istio", "additional_revisions", i),
                                  f"{other} cannot run beside {revision}: a canary upgrade installs the next "
                                  "revision (or the one after, when the next is out of support)")
    given = istio.get("mesh_config", {})
    if given and env.settings.get("key_auth", {}).get("mesh_config", "render") != "render":
        yield env.doc.problem(("istio", "mesh_config"), "with key_auth.mesh_config: snippet you manage the shared "
                              "ConfigMap yourself, so these settings would go nowhere; put them in your ConfigMap")
    for i, entry in enumerate(given.get("extensionProviders", [])):
        if entry["name"] == provider:
            yield env.doc.problem(("istio", "mesh_config", "extensionProviders", i, "name"),
                                  f"{provider} is the key-auth provider endpointgen registers; name yours otherwise")


def prometheus_settings_consistent(env: Environment) -> Iterator[Problem]:
    """KEDA must be able to reach and authenticate to the Prometheus the environment names."""
    prometheus = env.settings.get("autoscaling", {}).get("prometheus")
    if prometheus is None:
        return
    path = ("autoscaling", "prometheus")
    address, auth = prometheus["server_address"], prometheus.get("auth", "none")
    if url_host(address).endswith(AZURE_MONITOR_SUFFIX) and auth != "azure-workload":
        yield env.doc.problem((*path, "auth") if "auth" in prometheus else (*path, "server_address"),
                              "Azure Monitor managed Prometheus takes Azure AD tokens only: set auth: azure-workload")
    if auth == "azure-workload" and not address.startswith("https://"):
        yield env.doc.problem((*path, "server_address"), "workload identity tokens are sent over https only")
    for name in ("identity_client_id", "identity_id"):
        if name in prometheus and auth != "azure-workload":
            yield env.doc.problem((*path, name), f"{name} is used with auth: azure-workload only")
    named = {prometheus.get("identity_client_id"), prometheus.get("identity_id")} - {None}
    if auth == "azure-workload" and not named:
        yield env.doc.problem((*path, "auth"), "KEDA's add-on authenticates as the managed identity this names, "
                              "through a federated credential for kube-system/keda-operator: set "
                              "identity_client_id (README, Autoscaling)")
    if len(named) > 1:
        yield env.doc.problem((*path, "identity_id"), "identity_id is the earlier name of identity_client_id and "
                              "names another identity; keep identity_client_id")
    window = prometheus.get("rate_window", "1m")
    if duration_seconds(window) < 30:
        yield env.doc.problem((*path, "rate_window"), f"{window} is too short for rate(): use at least two scrape "
                                                      "intervals (30s at the very least; 1m with a 30s scrape)")


def colliding_objects(endpoints: list[Endpoint]) -> Iterator[Problem]:
    """Two versions in one namespace of one cluster must not derive the same object name (a-b + c vs a + b-c)."""
    owners: dict[tuple[str, str, str], str] = {}
    for ep in endpoints:
        for v in ep.versions:
            key = (ep.env.name, ep.namespace, f"{ep.name}-{v.name}")
            if key in owners and owners[key] != f"{ep.name}/{v.name}":
                yield ep.problem(("versions", v.index, "version_name"),
                                 f"object name {key[2]!r} in namespace {key[1]!r} is also derived from "
                                 f"{owners[key]}; rename one version")
            owners.setdefault(key, f"{ep.name}/{v.name}")
