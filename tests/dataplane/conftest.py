"""Fixtures of the data-plane tests: the tools, the scoring script, and `make e2e`'s summary line.

Every test here needs root (network namespaces, mounts, iptables) and the pinned Go tools, which the session
builds when they are missing (`make tools` builds them ahead).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from generator.check import gotools

from .labs import SCORE


@pytest.fixture(scope="session", autouse=True)
def harness_requirements() -> None:
    if os.geteuid() != 0:
        pytest.fail("the data-plane tests need root: they make network namespaces, mounts and iptables rules "
                    "(CI runs as root)")
    gotools.build_all(["istio", "opa"])


@pytest.fixture(scope="session")
def scoring_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("app") / "score.py"
    path.write_text(SCORE)
    return path


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """`make e2e` reports one line: how many data-plane tests passed and failed."""
    def count(*outcomes: str) -> int:
        return sum(1 for outcome in outcomes for report in terminalreporter.stats.get(outcome, [])
                   if "dataplane/" in getattr(report, "nodeid", ""))

    passed, failed = count("passed"), count("failed", "error")
    if passed or failed:
        terminalreporter.write_line(f"data-plane: {passed} passed, {failed} failed")
