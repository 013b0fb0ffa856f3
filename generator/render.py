"""Render endpoints into Kubernetes, Istio and Flux manifests, in memory.

Every `{{ expression }}` in a template is emitted as a JSON value (which is
also YAML), so no spec string can break out of its scalar. Each rendered
document is parsed back, checked (one object, kind on the allow-list,
expected namespace, valid name) and dumped again in one canonical style.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache, cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import fast_yaml

from .layout import CLUSTERS_DIR, GENERATED_MARK, PLATFORM, RENDERED_DIR
from .model import Endpoint, Environment

if TYPE_CHECKING:
    import jinja2
from .problems import EndpointgenError
from .keyauth import KEYS_ROOT, authorizer_view
from .views import SCORING_PORT, endpoint_view, environment_view

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"

ALLOWED_KINDS = {
    "Namespace": "v1",
    "ConfigMap": "v1",
    "ServiceAccount": "v1",
    "Service": "v1",
    "Deployment": "apps/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "PodDisruptionBudget": "policy/v1",
    "NetworkPolicy": "networking.k8s.io/v1",
    "Gateway": "networking.istio.io/v1",
    "VirtualService": "networking.istio.io/v1",
    "DestinationRule": "networking.istio.io/v1",
    "Sidecar": "networking.istio.io/v1",
    "ScaledObject": "keda.sh/v1alpha1",
    "TriggerAuthentication": "keda.sh/v1alpha1",
    "PeerAuthentication": "security.istio.io/v1",
    "RequestAuthentication": "security.istio.io/v1",
    "AuthorizationPolicy": "security.istio.io/v1",
    "SecretProviderClass": "secrets-store.csi.x-k8s.io/v1",
    "Kustomization": "kustomize.toolkit.fluxcd.io/v1",
}
CLUSTER_SCOPED = {"Namespace"}
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_UNSAFE_IN_YAML = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")


class RenderError(EndpointgenError):
    """A template produced something endpointgen refuses to write."""


@dataclass(frozen=True)
class Manifest:
    """One output file: where it goes, the object in it, and the spec it came from."""

    path: str
    obj: dict[str, Any]
    source: str

    @cached_property
    def text(self) -> str:
        header = (f"{GENERATED_MARK} from {self.source}; do not edit.\n"
                  "# Change the spec and run `make render` (endpointgen render).\n")
        return header + dump_yaml(self.obj)


# fast-yaml (Rust) quotes every string a YAML 1.1 or 1.2 reader would take for something else, except the
# one-letter booleans of YAML 1.1 that kubectl's reader still knows (y, n); those get quoted here.
_ONE_LETTER_BOOLEAN = re.compile(r"(?m)^([ ]*(?:- )*(?:[^\n]*?: )?)([yYnN])$")


_ONE_LETTER_LINE = re.compile(r"[ \n][yYnN]\n")


def dump_yaml(obj: Any) -> str:
    """The canonical output style: block YAML in the object's key order, multi-line strings double-quoted."""
    text = fast_yaml.safe_dump(obj, sort_keys=False, allow_unicode=True, width=1000)
    if ("y\n" in text or "n\n" in text or "Y\n" in text or "N\n" in text) \
            and (_ONE_LETTER_LINE.search(text) or text[:2] in ("y\n", "Y\n", "n\n", "N\n")):
        return _ONE_LETTER_BOOLEAN.sub(r"\1'\2'", text)
    return text


def to_yaml_scalar(value: Any) -> str:
    """Jinja finalize hook: any value becomes a JSON literal, valid and inert as YAML."""
    kind = type(value)
    if kind is str:
        return _string_literal(value)
    if kind is int:
        return str(value)
    import jinja2  # imported when a template renders: the fast no-change path never needs it

    if isinstance(value, jinja2.Undefined):
        str(value)  # a StrictUndefined raises here, naming the missing variable or attribute
        raise jinja2.UndefinedError("undefined value")
    return _json_literal(value)


@lru_cache(maxsize=65536)
def _string_literal(value: str) -> str:
    """Names, labels and images repeat across objects: each is quoted once."""
    return _json_literal(value)


def _json_literal(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=False)
    if _UNSAFE_IN_YAML.search(text) is None:
        return text
    return _UNSAFE_IN_YAML.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


@cache
def jinja_environment() -> jinja2.Environment:
    import jinja2

    class Environment(jinja2.Environment):
        """`a.b` on a dict looks the key up first (Jinja tries the attribute first, and the miss is slow)."""

        def getattr(self, obj: Any, attribute: str) -> Any:
            if type(obj) is dict and attribute in obj and attribute not in _DICT_ATTRIBUTES:
                return obj[attribute]
            return super().getattr(obj, attribute)

    try:  # compiled templates kept between runs (per user, keyed by each template's checksum)
        bytecode_cache: jinja2.BytecodeCache | None = jinja2.FileSystemBytecodeCache()
    except OSError:
        bytecode_cache = None
    return Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        bytecode_cache=bytecode_cache,
        auto_reload=False,  # templates do not change during a run: no stat of the file on every render
        undefined=jinja2.StrictUndefined,
        finalize=to_yaml_scalar,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


_DICT_ATTRIBUTES = frozenset(dir(dict))


def load_documents(text: str) -> list[Any]:
    """The non-empty documents of a YAML 1.2 text, by fast-yaml (one document without markers is the quick case)."""
    if "\n---" in text or "\n..." in text or text.startswith(("---", "...")):
        return [d for d in fast_yaml.safe_load_all(text) if d is not None]
    document = fast_yaml.safe_load(text)
    return [] if document is None else [document]


def render_object(template: str, expected_namespace: str | None, **context: Any) -> dict[str, Any]:
    """Render one template and return the single object it produced, after checking it."""
    import jinja2

    try:
        text = jinja_environment().get_template(template).render(**context)
    except jinja2.TemplateError as exc:
        raise RenderError(f"template {template}: {exc}") from None
    try:
        documents = load_documents(text)
    except (ValueError, fast_yaml.YAMLError) as exc:
        raise RenderError(f"template {template} produced invalid YAML: {exc}") from None
    if len(documents) != 1 or not isinstance(documents[0], dict):
        raise RenderError(f"template {template} must produce exactly one object, got {len(documents)}")
    obj: dict[str, Any] = documents[0]
    check_object(obj, template, expected_namespace)
    return obj


def check_object(obj: dict[str, Any], origin: str, expected_namespace: str | None) -> None:
    """Refuse anything but an allowed kind, in the namespace it belongs to, with a valid name."""
    kind, api = obj.get("kind"), obj.get("apiVersion")
    if kind not in ALLOWED_KINDS or ALLOWED_KINDS[kind] != api:
        raise RenderError(f"{origin}: {api}/{kind} is not on the list of kinds endpointgen writes")
    metadata = obj.get("metadata") or {}
    name, namespace = metadata.get("name"), metadata.get("namespace")
    if not isinstance(name, str) or len(name) > 253 or not DNS_SUBDOMAIN.match(name):
        raise RenderError(f"{origin}: {name!r} is not a valid object name")
    wanted = None if kind in CLUSTER_SCOPED else expected_namespace
    if namespace != wanted:
        raise RenderError(f"{origin}: {kind} {name} is in namespace {namespace!r}, expected {wanted!r}")


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
    """rendered/<env>/platform: the Gateway, and each endpoint namespace with its mTLS policy."""
    base, source = f"{RENDERED_DIR}/{env.name}/{PLATFORM}", env.doc.display
    manifests = []
    if view["gateway"]["create"]:
        manifests.append(_manifest(f"{base}/gateway", "gateway.yaml.j2", view["gateway"]["namespace"], source,
                                   env=view))
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
    if keyed:
        manifests += render_authorizer(env, view, keyed)
    return manifests


def pod_security_level(view: dict[str, Any]) -> str:
    """Namespaces enforce "restricted" only with the Istio CNI: without it istio-init needs NET_ADMIN."""
    return "restricted" if view["istio"]["cni"] else "privileged"


def render_authorizer(env: Environment, view: dict[str, Any], keyed: list[tuple[str, str, Any]]) -> list[Manifest]:
    """rendered/<env>/platform/key-auth: the OPA-Envoy authorizer of keyed endpoints and its mesh registration."""
    authz = authorizer_view(view, keyed)
    folder, source, ns = f"{RENDERED_DIR}/{env.name}/{PLATFORM}/key-auth", env.doc.display, authz["namespace"]
    labels = {"app.kubernetes.io/name": authz["name"], "app.kubernetes.io/part-of": "endpointgen",
              "app.kubernetes.io/managed-by": "endpointgen"}
    selector = {"app.kubernetes.io/name": authz["name"]}
    context = {"env": view, "authz": authz, "labels": labels, "selector": selector,
               "pod_labels": {**labels, "azure.workload.identity/use": "true"}, "keys_root": KEYS_ROOT,
               "container_security": CONTAINER_SECURITY}
    namespace = {"name": ns, "pod_security_enforce": pod_security_level(view)}
    manifests = [_manifest(folder, "namespace.yaml.j2", None, source, env=view, ns=namespace),
                 _manifest(folder, "peerauthentication.yaml.j2", ns, source, env=view, ns=namespace)]
    manifests += [_manifest(folder, f"keyauth-{kind}.yaml.j2", ns, source, **context)
                  for kind in ("serviceaccount", "configmap", "deployment", "service", "poddisruptionbudget",
                               "networkpolicy")]
    manifests += [_manifest(folder, "keyauth-secretproviderclass.yaml.j2", ns, source, vault=vault, **context)
                  for vault in authz["vaults"]]
    if authz["mesh_config"] == "render":
        manifests.append(_manifest(folder, "mesh-configmap.yaml.j2", authz["mesh_namespace"], source, **context))
    return manifests


def render_endpoint(env: Environment, view: dict[str, Any], ep: Endpoint) -> list[Manifest]:
    """rendered/<env>/endpoints/<endpoint>: everything one endpoint needs."""
    ep_view = endpoint_view(ep, view)
    folder, source, ns = f"{RENDERED_DIR}/{env.name}/endpoints/{ep.name}", ep.doc.display, ep.namespace
    manifests = [_manifest(folder, template, ns, source, env=view, ep=ep_view, versions=ep_view["versions"])
                 for template in endpoint_templates(ep_view)]
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


def endpoint_files(env: Environment, ep: Endpoint, manifests: list[Manifest]) -> dict[str, str]:
    """The files of an endpoint's manifests, with its folder's kustomization.yaml."""
    folder = f"{RENDERED_DIR}/{env.name}/endpoints/{ep.name}"
    files = {m.path: m.text for m in manifests}
    inside = sorted(p[len(folder) + 1:] for p in files if p.startswith(folder + "/"))
    files[f"{folder}/kustomization.yaml"] = _kustomization(env.name, inside)
    return files


def shared_files(env: Environment, view: dict[str, Any], endpoints: Sequence[HasNamespace]) -> dict[str, str]:
    """The files no single endpoint owns: the platform folder, its Flux Kustomization, the root kustomization.yaml."""
    manifests = render_platform(env, view, endpoints) + [flux_platform(env, view)]
    files = {m.path: m.text for m in manifests}
    base = f"{RENDERED_DIR}/{env.name}"
    platform = [p[len(base) + len(PLATFORM) + 2:] for p in files if p.startswith(f"{base}/{PLATFORM}/")]
    files[f"{base}/{PLATFORM}/kustomization.yaml"] = _kustomization(env.name, sorted(platform))
    files.update([root_kustomization(env.name, [ep.name for ep in endpoints])])
    return files


def root_kustomization(env_name: str, endpoint_names: list[str]) -> tuple[str, str]:
    """rendered/<env>/kustomization.yaml: the platform folder and every endpoint's, so kubectl builds them all."""
    folders = sorted([PLATFORM, *(f"endpoints/{name}" for name in endpoint_names)])
    return f"{RENDERED_DIR}/{env_name}/kustomization.yaml", _kustomization(env_name, folders)


class HasNamespace(Protocol):
    """An endpoint as the platform objects see it (a loaded Endpoint, or a summary of one)."""

    @property
    def name(self) -> str: ...

    @property
    def namespace(self) -> str: ...

    @property
    def key_refs(self) -> dict[str, Any] | None: ...


CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def endpoint_templates(view: dict[str, Any]) -> Iterator[str]:
    yield "serviceaccount.yaml.j2"
    yield "virtualservice.yaml.j2"
    if view["auth_keys"] is not None:
        yield "authorizationpolicy-key.yaml.j2"
    if view["annotations"]["endpointgen.io/auth"] == "token":
        yield "requestauthentication.yaml.j2"
        yield "authorizationpolicy-token.yaml.j2"
    if view["app_insights_secret"]:
        yield "secretproviderclass.yaml.j2"


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


def kustomizations(env_name: str, paths: list[str], only: Callable[[str], bool] | None = None,
                   known: Iterable[str] = ()) -> dict[str, str]:
    """kustomization.yaml for rendered/<env>/platform, each endpoint folder, and rendered/<env> (all of them,
    or those whose path `only` accepts); `known` folders hold manifests not among `paths` (the root lists them).

    Flux builds each small folder on its own; `kubectl kustomize rendered/<env>` still builds the lot.
    """
    base = f"{RENDERED_DIR}/{env_name}"
    folders: dict[str, list[str]] = {f"{base}/{PLATFORM}": []}  # Flux's platform Kustomization needs it, even empty
    folders.update((folder, []) for folder in known)
    for path in paths:
        folder = flux_folder(env_name, path)
        if folder is not None:
            folders.setdefault(folder, []).append(path[len(folder) + 1:])
    files = {f"{folder}/kustomization.yaml": _kustomization(env_name, sorted(resources))
             for folder, resources in folders.items() if only is None or only(f"{folder}/kustomization.yaml")}
    if only is None or only(f"{base}/kustomization.yaml"):
        files[f"{base}/kustomization.yaml"] = _kustomization(env_name, [f[len(base) + 1:] for f in sorted(folders)])
    return files


def flux_folder(env_name: str, path: str) -> str | None:
    """The folder a Flux Kustomization applies `path` from (platform or an endpoint's), or None if none does."""
    parts = path.split("/")
    if parts[:2] != [RENDERED_DIR, env_name] or len(parts) < 4:
        return None
    if parts[2] == PLATFORM:
        return "/".join(parts[:3])
    return "/".join(parts[:4]) if parts[2] == "endpoints" and len(parts) >= 5 else None


def _kustomization(env_name: str, resources: list[str]) -> str:
    body = dump_yaml({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                      "resources": resources})
    return (f"{GENERATED_MARK} from environments/{env_name}; do not edit.\n"
            "# Lists the manifests of this folder for `kubectl kustomize` and Flux.\n" + body)


def render_manifests(env: Environment, endpoints: list[Endpoint]) -> list[Manifest]:
    """Every object of one environment: rendered/<env> and the Flux Kustomizations in clusters/<env>."""
    return render_environment(env, endpoints) + render_flux(env, [ep.name for ep in endpoints])


def files_of(env_name: str, manifests: list[Manifest]) -> dict[str, str]:
    """The files for an environment's manifests, kustomization.yaml files added, keyed by repo-relative path."""
    files = {m.path: m.text for m in manifests}
    files.update(kustomizations(env_name, list(files)))
    return dict(sorted(files.items()))


def render_files(env: Environment, endpoints: list[Endpoint]) -> dict[str, str]:
    """All files endpointgen owns for one environment, keyed by path relative to the repo root."""
    return files_of(env.name, render_manifests(env, endpoints))
