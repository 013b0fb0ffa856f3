"""One parallel pass over every endpoint spec: load and validate it, then work on it (render, check, ...).

Each worker owns whole endpoints, so specs, rendered texts and parsed objects
never cross processes (pickling them would cost more than rendering them);
only problems, a short summary per endpoint and what the work returns come
back. The rule that spans endpoints (derived object names must not collide)
runs afterwards, on the summaries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..layout import ENVIRONMENTS_DIR, spec_paths
from ..output import cache
from ..problems import Problem, display_path
from ..render.views import environment_view
from ..spec.model import Endpoint, Environment
from ..spec.repository import Repository, load_endpoint, load_repository
from ..spec.identities import accounts, federated_credentials_within_limit, over_limit
from ..spec.query_load import query_load_within_limits
from .parallel import map_chunks

Work = Callable[[Environment, dict[str, Any], Endpoint], Any]  # (environment, its view, a valid endpoint) -> result


@dataclass
class Outcome:
    """What became of one endpoint spec."""

    env: str
    spec: Path
    problems: list[Problem]
    name: str = ""
    summary: dict[str, Any] | None = None  # cache.summary() of a valid endpoint
    result: Any = None  # what the work returned for it

    @property
    def namespace(self) -> str:
        assert self.summary is not None
        return str(self.summary["namespace"])

    @property
    def key_refs(self) -> dict[str, Any] | None:
        assert self.summary is not None
        return self.summary.get("keys")


@dataclass
class Sweep:
    """Every environment's problems (in the order load_repository reports them) and every endpoint's outcome."""

    environments: dict[str, Environment | None]
    outcomes: list[Outcome] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def valid(self, env: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.env == env and o.summary is not None]


def sweep(root: Path, environments: dict[str, tuple[Environment | None, list[Problem]]], work: Work | None,
          progress: Callable[[int, int], None] | None = None) -> Sweep:
    """Load and validate every endpoint of the given environments and do `work` on each valid one, in parallel."""
    specs = [(name, path) for name in environments for path in spec_paths(root / ENVIRONMENTS_DIR / name)]
    envs = {name: env for name, (env, _) in environments.items()}
    views = {name: environment_view(env) for name, env in envs.items() if env is not None}

    def task(chunk: range) -> list[Outcome]:
        outcomes = []
        for i in chunk:
            name, path = specs[i]
            part = Repository(root)
            load_endpoint(part, envs[name], path)
            outcome = Outcome(name, path, part.problems)
            if part.endpoints:
                ep = part.endpoints[0]
                outcome.name, outcome.summary = ep.name, cache.summary(ep)
                if work is not None:
                    outcome.result = work(ep.env, views[name], ep)
            outcomes.append(outcome)
        return outcomes

    result = Sweep(envs, [o for part in map_chunks(task, len(specs), progress) for o in part])
    for name, (_, problems) in environments.items():
        result.problems += problems + [p for o in result.outcomes if o.env == name for p in o.problems]
    result.problems += collisions(root, result)
    result.problems += query_load_within_limits(
        {name: env for name, env in envs.items() if env is not None},
        {name: sum(o.summary["query_hours"] for o in result.valid(name) if o.summary is not None) for name in envs})
    result.problems += identity_limits(root, result)
    return result


def identity_limits(root: Path, done: Sweep) -> list[Problem]:
    """Identities over Entra ID's federated-credential limit, from the summaries; the specs that set such an
    identity themselves are loaded again, for their located problems."""
    envs = {name: env for name, env in done.environments.items() if env is not None}
    found = [a for name, env in envs.items() for a in accounts(env, [
        (o.name, o.namespace, o.summary, o.summary["keys"] is not None, display_path(o.spec, root))
        for o in done.valid(name) if o.summary is not None])]
    over = over_limit(found)
    if not over:
        return []
    involved: dict[str, list[Path]] = {}
    for account in found:
        if account.identity in over and account.spec:
            involved.setdefault(account.env, []).append(root / account.spec)
    specs = {ep.doc.display: ep for env, paths in involved.items()
             for ep in load_repository(root, [env], only=sorted(paths)).endpoints}
    return list(federated_credentials_within_limit(envs, found, specs))


def collisions(root: Path, done: Sweep) -> list[Problem]:
    """Versions of different endpoints that derive the same object name in one namespace (see spec/rules.py).

    The summaries find the endpoints involved; only those specs are loaded again, for the rule's located problems.
    """
    owners: dict[tuple[str, str, str], Outcome] = {}
    involved: dict[str, set[Path]] = {}
    for o in done.outcomes:
        for obj in o.summary["objects"] if o.summary is not None else []:
            first = owners.setdefault((o.env, o.namespace, obj), o)
            if first.name != o.name:
                involved.setdefault(o.env, set()).update({first.spec, o.spec})
    return [problem for env, paths in sorted(involved.items())
            for problem in load_repository(root, [env], only=sorted(paths)).problems]
