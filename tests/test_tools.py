"""The pinned Go tools: what gotools builds is what tools/*/go.mod pins, and the builds run."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from generator.check import gotools
from render_helpers import run_cli


@pytest.mark.parametrize("name", sorted(gotools.TOOLS))
def test_the_pin_is_the_version_built(name: str) -> None:
    tool = gotools.TOOLS[name]
    gotools.check_pin(tool)  # the wrapper's go.mod requires exactly the module version the cache is named after
    gomod = (tool.source / "go.mod").read_text()
    for package in tool.packages:
        if not package.startswith("./"):
            assert re.search(rf"^\s*(tool\s+)?{re.escape(package)}$", gomod, re.M), f"{package} is no tool of {name}"
    assert (tool.source / "go.sum").is_file()


def test_a_go_mod_that_disagrees_with_the_pin_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "tools" / "kubeconform"
    source.mkdir(parents=True)
    (source / "go.mod").write_text("module x\n\ngo 1.26\n\nrequire github.com/yannh/kubeconform v0.7.0 // indirect\n")
    monkeypatch.setattr(gotools, "TOOLS_SOURCE", tmp_path / "tools")
    with pytest.raises(gotools.UsageError, match="does not require github.com/yannh/kubeconform v0.8.0"):
        gotools.check_pin(gotools.TOOLS["kubeconform"])


def test_the_cache_folder_changes_with_the_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENDPOINTGEN_TOOLS_CACHE", str(tmp_path / "cache"))
    tool = gotools.TOOLS["istio"]
    before = gotools.tool_dir(tool)
    assert before.parent == tmp_path / "cache" and before.name.startswith("istio-1.29.1-")
    monkeypatch.setattr(gotools, "digest", lambda t: "0" * 12)
    assert gotools.tool_dir(tool) != before


def test_the_built_binaries_report_their_pinned_versions() -> None:
    kubeconform = subprocess.run([str(gotools.binary("kubeconform")), "-v"], capture_output=True, text=True)
    assert kubeconform.stdout.strip() == "v0.8.0"
    agent = subprocess.run([str(gotools.binary("istio", "pilot-agent")), "version", "-s"], capture_output=True,
                           text=True)
    assert agent.stdout.strip().endswith("1.29.1")
    discovery = subprocess.run([str(gotools.binary("istio", "pilot-discovery")), "version", "-s"],
                               capture_output=True, text=True)
    assert discovery.stdout.strip().endswith("1.29.1")  # "client version: 1.29.1"
    opa = subprocess.run([str(gotools.binary("opa", "opa")), "version"], capture_output=True, text=True)
    assert opa.stdout.splitlines()[0] == "Version: 1.15.2"
    assert (gotools.binary("istio", "envoy_bootstrap.json")).is_file()  # the bootstrap template pilot-agent reads


def test_tools_command_lists_the_pins(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "tools")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["kubeconform v0.8.0", "istio 1.29.1", "opa 1.15.2-envoy",
                                                      "externalsecrets v0.16.2"]
    assert run_cli(tmp_path, "tools", "nope").exit_code == 2
