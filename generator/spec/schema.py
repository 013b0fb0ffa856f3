"""JSON Schema validation of specs and environment files, with positioned, readable messages."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator
from functools import cache
from typing import TYPE_CHECKING, Any

import jsonschema_rs

from ..layout import TOOL_DIR
from ..problems import Problem
from .loader import Document, FieldPath

if TYPE_CHECKING:  # jsonschema is imported only when a document is invalid (it words the messages)
    import jsonschema

SCHEMA_DIR = TOOL_DIR / "schema"
ENDPOINT_SCHEMA = "endpoint.schema.json"
ENVIRONMENT_SCHEMA = "environment.schema.json"

SECRET_FIELDS = {
    "primary_key": "a plaintext key in git is readable by everyone with the repo",
    "secondary_key": "a plaintext key in git is readable by everyone with the repo",
}
SECRET_ADVICE = (
    "store the key in Azure Key Vault and reference it with "
    "auth_keys: {primary_key_secret: <secret name>} (see README, 'Scoring keys')"
)

MAX_SHOWN = 200  # characters of a bad value quoted in a message
_SAS_SIGNATURE = re.compile(r"([?&]sig=)[^&\s'\"]*", re.IGNORECASE)

_TYPE_NAMES = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
               float: "a number", type(None): "null (empty)"}


@cache
def validator(schema_name: str) -> jsonschema.protocols.Validator:
    """A compiled Draft 2020-12 validator for one of the bundled schemas."""
    import jsonschema
    from referencing import Registry, Resource

    resources = []
    for path in sorted(SCHEMA_DIR.glob("*.schema.json")):
        contents = json.loads(path.read_text())
        resources.append((path.name, Resource.from_contents(contents)))
        resources.append((contents["$id"], Resource.from_contents(contents)))
    registry: Registry = Registry().with_resources(resources)
    schema = registry[schema_name].contents
    base = jsonschema.validators.validator_for(schema)
    base.check_schema(schema)
    # JSON Schema counts 2.0 as an integer; YAML makes it a float that Kubernetes integer fields refuse.
    strict = base.TYPE_CHECKER.redefine("integer", _is_integer)
    cls = jsonschema.validators.extend(base, type_checker=strict)
    return cls(schema, registry=registry, format_checker=cls.FORMAT_CHECKER)


def _is_integer(_checker: object, instance: Any) -> bool:
    """Only real integers (not 2.0, not booleans) are integers."""
    return isinstance(instance, int) and not isinstance(instance, bool)


@cache
def fast_validator(schema_name: str) -> Any:
    """The same schema compiled by jsonschema-rs: a quick yes for valid documents (most of them)."""
    contents = {path.name: json.loads(path.read_text()) for path in SCHEMA_DIR.glob("*.schema.json")}
    by_id = {schema["$id"]: schema for schema in contents.values()}

    def retrieve(uri: str) -> Any:
        return by_id.get(uri) or contents[uri.rsplit("/", 1)[-1]]

    return jsonschema_rs.validator_for(contents[schema_name], retriever=retrieve)


def _integral_float(value: Any) -> bool:
    """True if a float like 2.0 is anywhere in `value` (JSON Schema calls it an integer; we do not)."""
    if isinstance(value, float):
        return value.is_integer()
    if isinstance(value, dict):
        return any(_integral_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_integral_float(v) for v in value)
    return False


def is_valid(data: Any, schema_name: str) -> bool:
    """Whether `data` satisfies the schema: jsonschema-rs when its answer is exact, else jsonschema."""
    if not _integral_float(data):
        return bool(fast_validator(schema_name).is_valid(data))
    return validator(schema_name).is_valid(data)


def schema_problems(doc: Document, schema_name: str) -> list[Problem]:
    """Every schema violation in the document, one problem each, pointing at the offending value."""
    if is_valid(doc.data, schema_name):
        return []
    problems: list[Problem] = []
    for error in validator(schema_name).iter_errors(doc.data):
        problems.extend(_describe(doc, error))
    return problems


def _describe(doc: Document, error: jsonschema.ValidationError) -> Iterator[Problem]:
    path: FieldPath = tuple(error.absolute_path)
    kind = error.validator
    schema: dict[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    instance = error.instance
    if kind == "additionalProperties" and isinstance(instance, dict):
        known = list(schema.get("properties", {}))
        for key in sorted(set(instance) - set(known)):
            yield doc.problem(path + (key,), _unknown_field(key, known), key=True)
        return
    if kind in ("anyOf", "oneOf") and schema.get("x-hint"):
        yield doc.problem(path, f"expected {schema['x-hint']}, got {_show(instance)}")
        return
    if kind in ("anyOf", "oneOf") and error.context:  # report the branch that got furthest
        best = max(error.context, key=lambda e: len(e.absolute_path))
        yield from _describe(doc, best)
        return
    if "propertyNames" in error.relative_schema_path and isinstance(instance, str):
        yield doc.problem(path + (instance,), "invalid key: " + _message(kind, error, schema, instance), key=True)
        return
    yield doc.problem(path, _message(kind, error, schema, instance))


def _unknown_field(key: str, known: list[str]) -> str:
    if key in SECRET_FIELDS:
        return f"plaintext keys are not allowed: {SECRET_FIELDS[key]}; {SECRET_ADVICE}"
    guess = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"; did you mean {guess[0]!r}?" if guess else f"; expected one of: {', '.join(sorted(known))}"
    return f"unknown field {key!r}{hint}"


def _message(kind: str, error: jsonschema.ValidationError, schema: dict[str, Any], instance: Any) -> str:
    value = error.validator_value
    got = _TYPE_NAMES.get(type(instance), type(instance).__name__)
    if kind == "type":
        expected = " or ".join(_TYPE_NAMES.get(_PY[t], t) for t in ([value] if isinstance(value, str) else value))
        advice = "; quote the value to make it a string" if "string" in value and instance is not None else ""
        return f"expected {expected}, got {got} {_show(instance)}{advice}"
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"missing required field {missing!r}"
    if kind == "pattern" or (kind in ("minLength", "maxLength") and "x-hint" in schema):
        hint = schema.get("x-hint", f"a string matching {schema.get('pattern')}")
        return f"expected {hint}, got {_show(instance)}"
    if kind == "enum":
        return f"expected one of {', '.join(map(repr, value))}, got {_show(instance)}"
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        op = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[kind]
        return f"must be {op} {value}, got {_show(instance)}"
    if kind == "minItems":
        return f"needs at least {value} item(s), got {len(instance)}"
    if kind == "maxItems":
        return f"allows at most {value} item(s), got {len(instance)}"
    if kind == "maxProperties":
        return f"allows at most {value} entries, got {len(instance)}"
    if kind == "minLength":
        return f"must be at least {value} character(s) long, got {len(instance)}"
    if kind == "maxLength":
        return f"must be at most {value} characters long, got {len(instance)}"
    if kind == "uniqueItems":
        return "items must be unique"
    if kind == "not" and "x-hint" in schema:
        return f"expected {schema['x-hint']}, got {_show(instance)}"
    return error.message


def _show(value: Any) -> str:
    """A value quoted for a message: SAS signatures masked, long values cut short."""
    shown = _SAS_SIGNATURE.sub(r"\1<redacted>", repr(value))
    return shown if len(shown) <= MAX_SHOWN else shown[:MAX_SHOWN] + "..."


_PY = {"object": dict, "array": list, "string": str, "boolean": bool, "integer": int, "number": float,
       "null": type(None)}
