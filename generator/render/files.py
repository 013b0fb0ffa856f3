"""How manifests become files: each folder's kustomization.yaml, an endpoint's files, the shared ones."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..layout import GENERATED_MARK, KEY_AUTH, PLATFORM, RENDERED_DIR
from ..spec.model import Endpoint, Environment
from .objects import HasNamespace, flux_platform, render_manifests, render_platform
from .templates import Manifest, dump_yaml


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
    shared = shared_folders(endpoints)
    for folder in shared:
        inside = [p[len(base) + len(folder) + 2:] for p in files if p.startswith(f"{base}/{folder}/")]
        files[f"{base}/{folder}/kustomization.yaml"] = _kustomization(env.name, sorted(inside))
    files.update([root_kustomization(env.name, [ep.name for ep in endpoints], shared)])
    return files


def shared_folders(endpoints: Sequence[HasNamespace]) -> list[str]:
    """The folders of rendered/<env> that no single endpoint owns: platform, and key-auth with a keyed endpoint."""
    return [PLATFORM, *([KEY_AUTH] if any(ep.key_refs for ep in endpoints) else [])]


def root_kustomization(env_name: str, endpoint_names: list[str], shared: Sequence[str]) -> tuple[str, str]:
    """rendered/<env>/kustomization.yaml: the shared folders and every endpoint's, so kubectl builds them all."""
    folders = sorted([*shared, *(f"endpoints/{name}" for name in endpoint_names)])
    return f"{RENDERED_DIR}/{env_name}/kustomization.yaml", _kustomization(env_name, folders)



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
    if parts[2] in (PLATFORM, KEY_AUTH):
        return "/".join(parts[:3])
    return "/".join(parts[:4]) if parts[2] == "endpoints" and len(parts) >= 5 else None


def _kustomization(env_name: str, resources: list[str]) -> str:
    body = dump_yaml({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                      "resources": resources})
    return (f"{GENERATED_MARK} from environments/{env_name}; do not edit.\n"
            "# Lists the manifests of this folder for `kubectl kustomize` and Flux.\n" + body)



def files_of(env_name: str, manifests: list[Manifest]) -> dict[str, str]:
    """The files for an environment's manifests, kustomization.yaml files added, keyed by repo-relative path."""
    files = {m.path: m.text for m in manifests}
    files.update(kustomizations(env_name, list(files)))
    return dict(sorted(files.items()))


def render_files(env: Environment, endpoints: list[Endpoint]) -> dict[str, str]:
    """All files endpointgen owns for one environment, keyed by path relative to the repo root."""
    return files_of(env.name, render_manifests(env, endpoints))
