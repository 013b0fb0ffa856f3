"""Find, load and validate every environment and endpoint spec of a GitOps repo."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..layout import ENDPOINTS_DIR, ENVIRONMENTS_DIR, ENVIRONMENT_FILE, select_environments, spec_paths
from ..problems import Problem, display_path
from .loader import Document, LoadError, load_yaml, parse_yaml
from .model import Endpoint, Environment
from .identities import accounts, endpoint_row, federated_credentials_within_limit
from .query_load import endpoint_query_hours, query_load_within_limits
from .rules import colliding_objects, endpoint_problems, environment_problems
from .schema import ENDPOINT_SCHEMA, ENVIRONMENT_SCHEMA, schema_problems


@dataclass
class Repository:
    """Everything loaded from a repo, and every problem found on the way."""

    root: Path
    environments: list[Environment] = field(default_factory=list)
    endpoints: list[Endpoint] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    overrides: dict[Path, str] = field(default_factory=dict)

    def endpoints_of(self, env_name: str) -> list[Endpoint]:
        return [ep for ep in self.endpoints if ep.env.name == env_name]


def load_repository(root: Path, requested: Sequence[str] = (), overrides: Mapping[Path, str] | None = None,
                    only: Sequence[Path] | None = None) -> Repository:
    """Load and validate the selected environments and all of their endpoint specs.

    `overrides` replaces (or adds) files with the given text, so an edit is validated before it is written;
    `only` limits the endpoint specs read to these files (an incremental render checks the rest by digest).
    """
    repo = Repository(root, overrides=dict(overrides or {}))
    for env_name in select_environments(root, requested):
        env_dir = root / ENVIRONMENTS_DIR / env_name
        env = _load_environment(repo, env_dir)
        paths = set(spec_paths(env_dir)) if only is None else set(only)
        paths |= {p for p in repo.overrides if p.parent == env_dir / ENDPOINTS_DIR}
        for path in sorted(paths):
            load_endpoint(repo, env, path)
    repo.problems.extend(colliding_objects(repo.endpoints))
    if only is None:  # the load of some endpoints says nothing about the limits
        hours = {env.name: sum(endpoint_query_hours(ep) for ep in repo.endpoints_of(env.name))
                 for env in repo.environments}
        repo.problems.extend(query_load_within_limits({env.name: env for env in repo.environments}, hours))
        found = [a for env in repo.environments
                 for a in accounts(env, [endpoint_row(ep) for ep in repo.endpoints_of(env.name)])]
        repo.problems.extend(federated_credentials_within_limit({env.name: env for env in repo.environments}, found,
                                                                {ep.doc.display: ep for ep in repo.endpoints}))
    return repo


def load_environments(root: Path, requested: Sequence[str] = ()) -> dict[str, tuple[Environment | None, list[Problem]]]:
    """Load and validate the selected environment files only: name -> (environment or None, its problems)."""
    loaded = {}
    for name in select_environments(root, requested):
        repo = Repository(root)
        loaded[name] = (_load_environment(repo, root / ENVIRONMENTS_DIR / name), repo.problems)
    return loaded


def _load(repo: Repository, path: Path, schema_name: str) -> Document | None:
    """Parse a file and check it against its schema; None (with problems recorded) when unusable."""
    try:
        shown = display_path(path, repo.root)
        doc = parse_yaml(repo.overrides[path], path, shown) if path in repo.overrides else load_yaml(path, shown)
    except LoadError as exc:
        repo.problems.append(exc.problem)
        return None
    if doc.data is None:
        repo.problems.append(Problem(doc.display, 1, 1, "", "file is empty; expected a YAML mapping"))
        return None
    if not isinstance(doc.data, dict):
        repo.problems.append(doc.problem((), f"expected a YAML mapping at the top level, got {type(doc.data).__name__}"))
        return None
    problems = schema_problems(doc, schema_name)
    repo.problems.extend(problems)
    return None if problems else doc


def _load_environment(repo: Repository, env_dir: Path) -> Environment | None:
    doc = _load(repo, env_dir / ENVIRONMENT_FILE, ENVIRONMENT_SCHEMA)
    if doc is None:
        return None
    if doc.data["name"] != env_dir.name:
        repo.problems.append(doc.problem(("name",), f"must equal the folder name {env_dir.name!r}"))
        return None
    env = Environment(env_dir.name, doc)
    problems = list(environment_problems(env))
    repo.problems.extend(problems)
    if problems:
        return None
    repo.environments.append(env)
    return env


def load_endpoint(repo: Repository, env: Environment | None, path: Path) -> None:
    """Load, schema-check and rule-check one endpoint spec into `repo` (its endpoints or its problems)."""
    if path.suffix != ".yaml":
        if path.suffix == ".yml":
            shown = display_path(path, repo.root)
            repo.problems.append(Problem(shown, 1, 1, "", "endpoint specs must be named <endpoint>.yaml, not .yml"))
        return
    doc = _load(repo, path, ENDPOINT_SCHEMA)
    if doc is None or env is None:  # without a valid environment only the schema can be checked
        return
    endpoint = Endpoint.build(env, doc)
    problems = endpoint_problems(endpoint)
    repo.problems.extend(problems)
    if not problems:
        repo.endpoints.append(endpoint)



def cpu_autoscaling_warnings(root: Path, requested: Sequence[str] = ()) -> list[str]:
    """One line per environment whose autoscaled versions fall back to CPU (no autoscaling.prometheus)."""
    warnings = []
    for name, (env, _) in load_environments(root, requested).items():
        if env is not None and "prometheus" not in env.settings.get("autoscaling", {}):
            warnings.append(f"{env.doc.display}: warning: no autoscaling.prometheus, so autoscaled versions scale on "
                            "CPU utilization, not AksEndpoint's rule (requests in flight per replica)")
    return warnings


def endpoint_pairs(repo: Repository) -> list[tuple[Environment, Endpoint]]:
    """Every (environment, endpoint) of a loaded repository, endpoints sorted by name within each environment."""
    return [(env, ep) for env in repo.environments for ep in sorted(repo.endpoints_of(env.name), key=lambda e: e.name)]
