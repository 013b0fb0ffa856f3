"""Which objects an environment gets: the platform's (gateway, namespaces, key-auth
authorizer), each endpoint's and version's, and the Flux Kustomizations that apply them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from ..layout import CLUSTERS_DIR, KEY_AUTH, PLATFORM, RENDERED_DIR
from ..spec.model import Endpoint, Environment
from .containers import CONTAINER_SECURITY
from .keyauth import KEYS_ROOT, authorizer_view, provider_snippet
from .mesh import mesh_configmaps
from .templates import Manifest, render_object
from .views import SCORING_PORT, endpoint_view, environment_view


def render_environment(env: Environment, endpoints: list[Endpoint]) -> list[Manifest]:
    """Every manifest of one environment under rendered/<env>: the shared platform objects, then each endpoint's."""
    view = environment_view(env)
    manifests = render_platform(env, view, endpoints)
    for ep in sorted(endpoints, key=lambda e: e.name):
        manifests += render_endpoint(env, view, ep)
    return sorted(manifests, key=lambda m: m.path)


def _manifest(folder: str, template: str, namespace: str | None, source: str, **context: Any) -> Manifest:
    obj = render_object(template, namespace, **context)
    return Manifest(f"{folder}/{obj['kind'].lower()}-{obj['metadata']['name']}.yaml", obj, source)


def render_platform(env: Environment, view: dict[str, Any], endpoints: Sequence[HasNamespace]) -> list[Manifest]:
    """What no single endpoint owns: rendered/<env>/platform (the Gateway, each endpoint namespace with its mTLS
    policy, the mesh ConfigMaps) and, with a keyed endpoint, rendered/<env>/key-auth and its Flux Kustomization."""
    base, source = f"{RENDERED_DIR}/{env.name}/{PLATFORM}", env.doc.display
    manifests = []
    if view["gateway"]["create"]:
        manifests.append(_manifest(f"{base}/gateway", "gateway.yaml.j2", view["gateway"]["namespace"], source,
                                   env=view, hosts=gateway_hosts(view["istio"]["hosts"], endpoints)))
    enforce = pod_security_level(view)
    for name in sorted({ep.namespace for ep in endpoints}):
        ns = {"name": name, "pod_security_enforce": enforce}
        manifests.append(_manifest(f"{base}/namespaces/{name}", "namespace.yaml.j2", None, source, env=view, ns=ns))
        manifests.append(_manifest(f"{base}/namespaces/{name}", "peerauthentication.yaml.j2", name, source,
                                   env=view, ns=ns))
        if view["prometheus"] and view["prometheus"]["auth"] == "azure-workload":
            manifests.append(_manifest(f"{base}/namespaces/{name}", "triggerauthentication.yaml.j2", name, source,
                                       env=view, ns=ns))
        if view["network_policy"]["enabled"]:
            manifests.append(_manifest(f"{base}/namespaces/{name}", "networkpolicy.yaml.j2", name, source,
                                       env=view, ns=ns, scoring_port=SCORING_PORT))
    keyed = [(ep.name, ep.namespace, ep.key_refs) for ep in endpoints if ep.key_refs]
    for mesh in mesh_configmaps(view, provider_snippet(view) if keyed else None):
        manifests.append(_manifest(f"{base}/mesh", "mesh-configmap.yaml.j2", mesh["namespace"], source, mesh=mesh))
    if keyed:
        manifests += render_authorizer(env, view, keyed) + [flux_key_auth(env, view)]
    return manifests


def gateway_hosts(hosts: list[str], endpoints: Sequence[HasNamespace]) -> list[str]:
    """The Gateway's hosts as `<namespace>/<host>` for each namespace that serves endpoints, so a VirtualService
    elsewhere cannot bind them ("./<host>", the Gateway's own namespace, while there are none)."""
    namespaces = sorted({ep.namespace for ep in endpoints}) or ["."]
    return [f"{namespace}/{host}" for namespace in namespaces for host in hosts]


def pod_security_level(view: dict[str, Any]) -> str:
    """Namespaces enforce "restricted" only with the Istio CNI: without it istio-init needs NET_ADMIN."""
    return "restricted" if view["istio"]["cni"] else "privileged"


def render_authorizer(env: Environment, view: dict[str, Any], keyed: list[tuple[str, str, Any]]) -> list[Manifest]:
    """rendered/<env>/key-auth: the OPA-Envoy authorizer of keyed endpoints and the keys External Secrets gives it."""
    authz = authorizer_view(view, keyed)
    folder, source, ns = f"{RENDERED_DIR}/{env.name}/{KEY_AUTH}", env.doc.display, authz["namespace"]
    labels = {"app.kubernetes.io/name": authz["name"], "app.kubernetes.io/part-of": "endpointgen",
              "app.kubernetes.io/managed-by": "endpointgen"}
    selector = {"app.kubernetes.io/name": authz["name"]}
    context = {"env": view, "authz": authz, "labels": labels, "selector": selector,
               "pod_labels": {**labels, "istio.io/rev": view["istio"]["revision"]}, "keys_root": KEYS_ROOT,
               "container_security": CONTAINER_SECURITY}
    namespace = {"name": ns, "pod_security_enforce": pod_security_level(view)}
    manifests = [_manifest(folder, "namespace.yaml.j2", None, source, env=view, ns=namespace),
                 _manifest(folder, "peerauthentication.yaml.j2", ns, source, env=view, ns=namespace)]
    manifests += [_manifest(folder, f"keyauth-{kind}.yaml.j2", ns, source, **context)
                  for kind in ("serviceaccount", "configmap", "deployment", "service", "poddisruptionbudget",
                               "networkpolicy")]
    manifests += [_manifest(folder, "keyauth-secretstore.yaml.j2", ns, source, store=store, **context)
                  for store in authz["stores"]]
    manifests += [_manifest(folder, "keyauth-externalsecret.yaml.j2", ns, source, key=key, **context)
                  for key in authz["key_secrets"]]
    return manifests


def render_endpoint(env: Environment, view: dict[str, Any], ep: Endpoint) -> list[Manifest]:
    """rendered/<env>/endpoints/<endpoint>: everything one endpoint needs."""
    ep_view = endpoint_view(ep, view)
    folder, source, ns = f"{RENDERED_DIR}/{env.name}/endpoints/{ep.name}", ep.doc.display, ep.namespace
    manifests = [_manifest(folder, template, ns, source, env=view, ep=ep_view, versions=ep_view["versions"])
                 for template in endpoint_templates(ep_view)]
    manifests += [_manifest(folder, "secretproviderclass.yaml.j2", ns, source, env=view, ep=ep_view, spc=spc)
                  for spc in secret_providers(ep_view)]
    for version in ep_view["versions"]:
        manifests += [_manifest(folder, template, ns, source, env=view, ep=ep_view, v=version,
                                container_security=CONTAINER_SECURITY) for template in version_templates(version)]
    return manifests


def render_flux(env: Environment, endpoint_names: list[str]) -> list[Manifest]:
    """clusters/<env>: a Flux Kustomization for the platform folder and one per endpoint, each after the platform."""
    view = environment_view(env)
    return [flux_platform(env, view)] + [flux_endpoint(env, view, name) for name in sorted(endpoint_names)]


def flux_platform(env: Environment, view: dict[str, Any]) -> Manifest:
    """clusters/<env>/platform.yaml: the Flux Kustomization <env>-platform for rendered/<env>/platform."""
    k = {"name": f"{env.name}-{PLATFORM}", "path": f"./{RENDERED_DIR}/{env.name}/{PLATFORM}", "depends_on": []}
    return _flux(env, view, f"{CLUSTERS_DIR}/{env.name}/{PLATFORM}.yaml", k)


def flux_key_auth(env: Environment, view: dict[str, Any]) -> Manifest:
    """clusters/<env>/key-auth.yaml: the Flux Kustomization <env>-key-auth for the authorizer. No endpoint waits
    for it, so one endpoint's missing key never holds up another's deploy."""
    k = {"name": f"{env.name}-{KEY_AUTH}", "path": f"./{RENDERED_DIR}/{env.name}/{KEY_AUTH}", "depends_on": []}
    return _flux(env, view, f"{CLUSTERS_DIR}/{env.name}/{KEY_AUTH}.yaml", k)


def flux_endpoint(env: Environment, view: dict[str, Any], name: str) -> Manifest:
    """clusters/<env>/endpoints/<endpoint>.yaml: the Flux Kustomization <env>-<endpoint>, after the platform."""
    k = {"name": f"{env.name}-{name}", "path": f"./{RENDERED_DIR}/{env.name}/endpoints/{name}",
         "depends_on": [f"{env.name}-{PLATFORM}"]}
    return _flux(env, view, f"{CLUSTERS_DIR}/{env.name}/endpoints/{name}.yaml", k)


def _flux(env: Environment, view: dict[str, Any], path: str, k: dict[str, Any]) -> Manifest:
    obj = render_object("flux-kustomization.yaml.j2", view["flux"]["namespace"], env=view, k=k)
    return Manifest(path, obj, env.doc.display)


def endpoint_manifests(env: Environment, view: dict[str, Any], ep: Endpoint) -> list[Manifest]:
    """Every object one endpoint owns: its manifests and its Flux Kustomization."""
    return render_endpoint(env, view, ep) + [flux_endpoint(env, view, ep.name)]


class HasNamespace(Protocol):
    """An endpoint as the platform objects see it (a loaded Endpoint, or a summary of one)."""

    @property
    def name(self) -> str: ...

    @property
    def namespace(self) -> str: ...

    @property
    def key_refs(self) -> dict[str, Any] | None: ...


def endpoint_templates(view: dict[str, Any]) -> Iterator[str]:
    yield "serviceaccount.yaml.j2"
    yield "virtualservice.yaml.j2"
    if view["auth_keys"] is not None:
        yield "authorizationpolicy-key.yaml.j2"
    if view["annotations"]["endpointgen.io/auth"] == "token":
        yield "requestauthentication.yaml.j2"
        yield "authorizationpolicy-token.yaml.j2"


def secret_providers(view: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The endpoint's SecretProviderClasses: the App Insights values, the model data storage's connection string."""
    if view["app_insights_secret"]:
        yield {"name": view["app_insights_secret"], **view["app_insights_objects"]}
    if view["model_data_secret"]:
        yield view["model_data_secret"]


def version_templates(version: dict[str, Any]) -> Iterator[str]:
    yield "deployment.yaml.j2"
    yield "service.yaml.j2"
    yield "destinationrule.yaml.j2"
    yield "sidecar.yaml.j2"
    if version["scaled_object"]:
        yield "scaledobject.yaml.j2"
    if version["cpu_hpa"]:
        yield "horizontalpodautoscaler.yaml.j2"
    if version["pdb"]:
        yield "poddisruptionbudget.yaml.j2"
    if version["model_config_map"]:
        yield "model-config-map.yaml.j2"


def render_manifests(env: Environment, endpoints: list[Endpoint]) -> list[Manifest]:
    """Every object of one environment: rendered/<env> and the Flux Kustomizations in clusters/<env>."""
    return render_environment(env, endpoints) + render_flux(env, [ep.name for ep in endpoints])
