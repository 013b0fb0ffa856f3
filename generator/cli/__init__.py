"""The endpointgen command line: click commands that parse options and call plain functions.

base.py holds the group, the shared options and the error handling; each other module registers its commands
on the group when imported: pipeline.py (validate, effective, render, check, diff), edit.py (the spec edits,
import, serialize), tools.py (serve, mesh-config, identities, vendor-schemas).
"""

from __future__ import annotations

from . import edit, pipeline, tools  # noqa: F401  (each registers its commands on `cli`)
from .base import cli, main

__all__ = ["cli", "main"]
