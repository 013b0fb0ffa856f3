"""The Istio add-on upgrade, pull request by pull request: warnings when a change takes the steps out of order.

A canary upgrade (README, Upgrading the Istio add-on) is three pull requests: install the new revision beside
the old (`istio.additional_revisions`), swap the two (every pod rolls onto the new proxies), drop the old. Two
orders break endpoints, and only the base branch shows them:

- namespaces relabelled to a revision the base did not install: pods created before `az aks mesh upgrade start`
  (a scale-up, an eviction) get no sidecar, so no AuthorizationPolicy runs on them;
- the shared ConfigMap of the revision the pods run on removed: Flux prunes it while pods are still on that
  revision, and their CUSTOM policies turn into deny-all (403) until each pod restarts.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..render.mesh import configmap_name, installed_revisions
from ..spec.model import Environment
from ..spec.repository import Repository


def revision_warnings(base: Repository, head: Repository, ref: str) -> list[str]:
    """`path:line:col: warning: field: message` for every environment whose change breaks the upgrade's order."""
    before = {env.name: env for env in base.environments}
    keyed = {ep.env.name for ep in base.endpoints if ep.key_refs}
    return [warning for env in head.environments if env.name in before
            for warning in _compare(before[env.name], env, ref, env.name in keyed)]


def _compare(old: Environment, new: Environment, ref: str, keyed: bool) -> Iterator[str]:
    old_istio, new_istio = old.settings["istio"], new.settings["istio"]
    running, revision = old_istio["revision"], new_istio["revision"]
    installed_before, installed_after = installed_revisions(old_istio), installed_revisions(new_istio)
    if revision != running and revision not in installed_before:
        yield _warning(new, ("istio", "revision"),
                       f"namespaces move to {revision}, which {ref} does not install: first add it to "
                       f"istio.additional_revisions and run `az aks mesh upgrade start`, then swap")
    shared = keyed or bool(old_istio.get("mesh_config"))  # the base renders the running revision's ConfigMap
    if shared and running not in installed_after:
        yield _warning(new, ("istio", "revision"),
                       f"the pods run on {running} (on {ref}) and this removes {configmap_name(running)}: "
                       f"until every pod has restarted on {revision}, they lose its mesh config (key auth: every call denied); "
                       f"keep {running} in istio.additional_revisions until `az aks mesh upgrade complete`")


def _warning(env: Environment, path: tuple[str, ...], message: str) -> str:
    problem = env.doc.problem(path, message)
    return f"{problem.path}:{problem.line}:{problem.col}: warning: {problem.field}: {problem.message}"
