"""The package's metadata as pip builds it: the licence in PEP 639's form, with no deprecation warning."""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
from pathlib import Path

from render_helpers import PROJECT

BUILD_METADATA = """
import sys, warnings
from setuptools import build_meta
warnings.simplefilter("error")  # a SetuptoolsDeprecationWarning (e.g. a license table) fails the build
print(build_meta.prepare_metadata_for_build_wheel(sys.argv[1]))
"""


def test_metadata_has_the_licence_as_an_spdx_expression_and_builds_without_warnings(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(PROJECT / name, source)
    shutil.copytree(PROJECT / "generator", source / "generator", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "metadata"
    out.mkdir()
    built = subprocess.run([sys.executable, "-c", BUILD_METADATA, str(out)], cwd=source, capture_output=True,
                           text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    assert "Deprecat" not in built.stderr, built.stderr
    metadata = email.message_from_string((out / built.stdout.strip().splitlines()[-1] / "METADATA").read_text())
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert metadata["License"] is None  # the old free-text field is gone
    assert not any(c.startswith("License ::") for c in metadata.get_all("Classifier") or [])
