"""Property tests: no input makes the loader or the validation crash; bad input only ever becomes Problems."""

from __future__ import annotations

import json
import tempfile
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import PROJECT, copy_example_repo, spec_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator.problems import Problem
from generator.spec.effective import effective_json, effective_table
from generator.spec.loader import LoadError, load_yaml, parse_yaml
from generator.spec.repository import load_repository
from generator.spec.traffic import EXACT

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SCHEMA = json.loads((PROJECT / "schema" / "endpoint.schema.json").read_text())
FIELDS: dict[str, dict[str, Any]] = SCHEMA["$defs"]["fields"]


@pytest.fixture(scope="module")
def fuzz_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One example repo for a whole module: each example overwrites the same spec file."""
    return copy_example_repo(tmp_path_factory.mktemp("fuzz") / "repo")


def check_problem(problem: Problem) -> None:
    assert isinstance(problem, Problem)
    assert problem.line >= 1 and problem.col >= 1
    assert "\n" not in str(problem) and "\r" not in str(problem)


def check_repository(root: Path) -> None:
    """Validation records problems and never raises; what it accepts can be reported on."""
    loaded = load_repository(root, ["dev"])
    for problem in loaded.problems:
        check_problem(problem)
    for endpoint in loaded.endpoints:
        data = json.loads(effective_json(endpoint))
        assert sum(v["route_weight"] for v in data["versions"]) == 100
        with localcontext(EXACT):
            assert sum((v.share for v in endpoint.versions), Decimal(0)) == 100
        assert effective_table(endpoint).startswith(f"endpoint {endpoint.name} ")


# --- the loader alone --------------------------------------------------------------------------------

YAML_CHARACTERS = [*"ab01.:-[]{}&*!|>'\"#%@`?,~<= \t\n\r\\", "\x00", "\x85", "é", "\ufeff", "\u2028", "\x07"]
YAMLISH = st.text(alphabet=st.sampled_from(YAML_CHARACTERS), max_size=200)


def _parse(text: str) -> None:
    try:
        doc = parse_yaml(text, Path("fuzz.yaml"), "fuzz.yaml")
    except LoadError as exc:
        check_problem(exc.problem)
        return
    for line, col in [*doc.positions.values(), *doc.key_positions.values()]:
        assert line >= 1 and col >= 1


@FUZZ
@given(st.text(max_size=300))
def test_loader_never_crashes_on_arbitrary_text(text: str) -> None:
    _parse(text)


@FUZZ
@given(YAMLISH)
def test_loader_never_crashes_on_yaml_like_text(text: str) -> None:
    _parse(text)


@FUZZ
@given(st.binary(max_size=300))
def test_loader_never_crashes_on_arbitrary_bytes(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.yaml"
        path.write_bytes(data)
        try:
            load_yaml(path, "fuzz.yaml")
        except LoadError as exc:
            check_problem(exc.problem)


# --- the whole validation --------------------------------------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
json_like = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)), max_leaves=20)
SPEC_KEYS = st.sampled_from(sorted(SCHEMA["properties"]) + ["primary_key", "versions", "versions"])


@FUZZ
@given(st.one_of(json_like, st.dictionaries(SPEC_KEYS, json_like, max_size=6)))
def test_validation_never_crashes_on_arbitrary_structures(fuzz_repo: Path, data: Any) -> None:
    spec_path(fuzz_repo, "fuzz").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    check_repository(fuzz_repo)


@FUZZ
@given(st.text(max_size=300))
def test_validation_never_crashes_on_arbitrary_text(fuzz_repo: Path, text: str) -> None:
    spec_path(fuzz_repo, "fuzz").write_text(text, encoding="utf-8", errors="surrogatepass")
    check_repository(fuzz_repo)


def rarely(draw: st.DrawFn, odd: st.SearchStrategy[Any], usual: st.SearchStrategy[Any]) -> Any:
    """Draw from `odd` about one time in ten, else from `usual` (hypothesis favours small choices)."""
    return draw(odd) if draw(st.integers(min_value=0, max_value=9)) == 7 else draw(usual)


@st.composite
def field_values(draw: st.DrawFn, schema: dict[str, Any]) -> Any:
    """Mostly values of the field's type within its bounds, sometimes edges and junk."""
    kind = schema.get("type")
    low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
    high = schema.get("maximum", 100)
    if kind == "boolean":
        typed: st.SearchStrategy[Any] = st.booleans()
    elif kind == "integer":
        typed = st.integers(min_value=max(low, 1), max_value=min(high, 12))
    else:
        typed = (st.floats(min_value=low, max_value=high, exclude_min=True)
                 | st.sampled_from([high, 0.0005, 1e-30, 33.3, 2.0, 0.125])
                 | st.decimals(min_value=low, max_value=high, places=3).filter(lambda d: d > 0).map(float))
    junk = st.sampled_from([None, "", "1", True, 1.5, 2.0, low - 1, high + 1, float("inf"), float("nan"), [], {}])
    return rarely(draw, junk, typed)


NAMES = st.sampled_from(["blue", "green", "red", "gold", "teal", "plum", "jade"])
ODD_NAMES = st.sampled_from(["v1", "Blue", "b" * 31, "b" * 33])
ENV_VARS = st.sampled_from(["LOG_LEVEL", "WORKERS"])
ODD_ENV_VARS = st.sampled_from(["AZUREML_MODEL_DIR", "DB_PASSWORD", "token", "1BAD"])
MODELS = st.sampled_from([("m", 1), ("m", "1"), ("n", 2)])


@st.composite
def versions(draw: st.DrawFn) -> dict[str, Any]:
    version: dict[str, Any] = {"version_name": rarely(draw, ODD_NAMES, NAMES)}
    models = rarely(draw, st.lists(MODELS, min_size=2, max_size=3),
                    st.lists(MODELS, min_size=1, max_size=2, unique_by=lambda model: model[0]))
    version["models"] = [{"name": n, "version": v, "uri": f"https://blob.example.com/{n}/{v}"} for n, v in models]
    inference: dict[str, Any] = {"image": "acr.azurecr.io/scoring/x:1", "entry_script": "score.py"}
    if draw(st.booleans()):
        count = draw(st.integers(min_value=0, max_value=2))
        inference["environment_variables"] = {rarely(draw, ODD_ENV_VARS, ENV_VARS): "x" for _ in range(count)}
    version["inference_config"] = inference
    for name in draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=5, unique=True)):
        version[name] = draw(field_values(FIELDS[name]))  # type: ignore[arg-type]
    return version


@st.composite
def near_valid_specs(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": draw(st.sampled_from(["fuzz", "fuzz", "fuzz", "other"]))}
    for name in ("auth_enabled", "token_auth_enabled", "enable_app_insights"):
        if draw(st.booleans()):
            spec[name] = draw(st.booleans())
    if draw(st.booleans()):
        spec["compute_target_name"] = draw(st.sampled_from(["aks-ml-dev", "aks-ml-prod"]))
    if draw(st.booleans()):
        spec["namespace"] = draw(st.sampled_from(["ml-endpoints-dev", "other", "other", "Bad_NS"]))
    if draw(st.booleans()):
        spec["auth_keys"] = draw(st.dictionaries(
            st.sampled_from(["primary_key_secret", "secondary_key_secret", "key_vault"]), st.just("kv-secret-1"),
            max_size=3))
    spec["versions"] = rarely(draw, st.lists(versions(), min_size=1, max_size=7),
                              st.lists(versions(), min_size=1, max_size=7, unique_by=lambda v: v["version_name"]))
    return spec


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(near_valid_specs())
def test_validation_never_crashes_on_near_valid_specs(fuzz_repo: Path, spec: dict[str, Any]) -> None:
    spec_path(fuzz_repo, "fuzz").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    check_repository(fuzz_repo)


@FUZZ
@given(st.dictionaries(st.sampled_from(sorted(FIELDS)), st.integers(min_value=-1, max_value=12) | st.floats(),
                      max_size=4))
def test_validation_never_crashes_on_environment_defaults(fuzz_repo: Path, defaults: dict[str, Any]) -> None:
    env = fuzz_repo / "environments" / "dev" / "environment.yaml"
    original = env.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(original)
        data["defaults"] = defaults
        env.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        spec_path(fuzz_repo, "fuzz").unlink(missing_ok=True)
        check_repository(fuzz_repo)
    finally:
        env.write_text(original, encoding="utf-8")


def test_near_valid_strategy_reaches_the_semantic_rules(fuzz_repo: Path) -> None:
    """Guard for the generator above: valid specs with version fields do come out of it sometimes."""
    accepted = []

    @settings(max_examples=400, deadline=None, database=None, derandomize=True)
    @given(near_valid_specs())
    def collect(spec: dict[str, Any]) -> None:
        spec_path(fuzz_repo, "fuzz").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        loaded = load_repository(fuzz_repo, ["dev"])
        if any(ep.name == "fuzz" for ep in loaded.endpoints):
            accepted.append(spec)

    collect()
    assert len(accepted) >= 5, f"the near-valid strategy produced only {len(accepted)} valid spec(s)"
    assert any(len(spec["versions"]) > 1 for spec in accepted)


@settings(max_examples=300, deadline=None)
@given(spec=st.recursive(
    st.none() | st.booleans() | st.integers(-3, 200) | st.floats(allow_nan=False, width=32) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["name", "versions", "version_name", "cpu_cores", "models", "uri", "image", "tags",
                         "entry_script", "inference_config", "traffic_percentile", "x"]), children, max_size=4),
    max_leaves=20))
def test_the_fast_schema_check_agrees_with_jsonschema(spec: object) -> None:
    """jsonschema-rs is only a shortcut: whatever it accepts, the reference validator accepts too, and vice versa."""
    from generator.spec.schema import ENDPOINT_SCHEMA, is_valid, validator

    assert is_valid(spec, ENDPOINT_SCHEMA) == validator(ENDPOINT_SCHEMA).is_valid(spec)
