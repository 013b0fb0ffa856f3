"""The templates environment: one Jinja template in, one checked object out, dumped in one canonical style.

Every `{{ expression }}` in a template is emitted as a JSON value (which is
also YAML), so no spec string can break out of its scalar. Each rendered
document is parsed back, checked (one object, kind on the allow-list,
expected namespace, valid name) and dumped again in one canonical style.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache, cached_property, lru_cache
from typing import TYPE_CHECKING, Any

import fast_yaml

from ..layout import GENERATED_MARK, TOOL_DIR
from ..problems import EndpointgenError

if TYPE_CHECKING:
    import jinja2

TEMPLATE_DIR = TOOL_DIR / "templates"

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
    "ExternalSecret": "external-secrets.io/v1",
    "SecretStore": "external-secrets.io/v1",
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
