"""Shared material of the manifest-validation tests: minimal objects, and the rule ids a module yields."""

from __future__ import annotations

import ast
import inspect
from types import ModuleType


def yielded_rule_ids(module: ModuleType) -> set[str]:
    """Every rule id a module yields: the string literal that ends a yielded tuple."""
    ids = set()
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if isinstance(node, (ast.Yield, ast.YieldFrom)) and isinstance(node.value, ast.Tuple):
            last = node.value.elts[-1]
            if isinstance(last, ast.Constant) and isinstance(last.value, str):
                ids.add(last.value)
    return ids
