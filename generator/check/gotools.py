"""The pinned Go tools: built once per version from the Go module proxy into a cache outside the repository.

Each tool is a small wrapper module under `tools/` (go.mod with `tool` lines, go.sum committed) that pins the
upstream module; `go build -mod=readonly` builds its packages from that go.sum alone, so nothing but the
module proxy is reached and a tampered download fails. A build lands in
`$ENDPOINTGEN_TOOLS_CACHE` (default `~/.cache/endpointgen/tools`) under `<tool>-<version>-<digest>`, the
digest covering the wrapper's go.mod, go.sum and Go sources: a new pin or a change to the harness's own Go
code builds anew, anything else reuses the binaries. See tools/README.md.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..layout import TOOL_DIR
from ..problems import UsageError

TOOLS_SOURCE = TOOL_DIR / "tools"


@dataclass(frozen=True)
class Tool:
    """One wrapper module and what it builds."""

    name: str
    version: str  # the upstream release the pin is (or is closest to)
    packages: tuple[str, ...]  # Go packages, each a binary named after its last element
    pin: str  # the module whose required version must match `version`
    env: dict[str, str] = field(default_factory=dict)
    ldflags: str = ""
    files: tuple[tuple[str, str], ...] = ()  # (module, path inside it) copied beside the binaries

    @property
    def source(self) -> Path:
        return TOOLS_SOURCE / self.name


ISTIO_LDFLAGS = " ".join(f"-X istio.io/istio/pkg/version.{key}={value}" for key, value in (
    ("buildVersion", "1.29.1"), ("buildGitRevision", "6991a379e1fcfbe21e64da2eda5d56624a5547b4"),
    ("buildStatus", "Clean"), ("buildTag", "1.29.1")))

TOOLS: dict[str, Tool] = {tool.name: tool for tool in (
    Tool("kubeconform", "v0.8.0", ("github.com/yannh/kubeconform/cmd/kubeconform",),
         pin="github.com/yannh/kubeconform v0.8.0", ldflags="-X main.version=v0.8.0"),
    Tool("istio", "1.29.1", ("istio.io/istio/pilot/cmd/pilot-discovery", "istio.io/istio/pilot/cmd/pilot-agent",
                             "./meshlab"),
         pin="istio.io/istio v0.0.0-20260306174214-6991a379e1fc", ldflags=ISTIO_LDFLAGS,
         files=(("istio.io/istio", "tools/packaging/common/envoy_bootstrap.json"),)),
    Tool("opa", "1.15.2-envoy", ("github.com/open-policy-agent/opa-envoy-plugin/cmd/opa-envoy-plugin",
                                 "github.com/open-policy-agent/opa"),
         pin="github.com/open-policy-agent/opa-envoy-plugin v1.15.2-envoy", env={"CGO_ENABLED": "0"},
         ldflags="-X github.com/open-policy-agent/opa/version.Version=1.15.2-envoy"),
    Tool("externalsecrets", "v0.16.2", ("./esotemplate",),
         pin="github.com/external-secrets/external-secrets v0.16.2", env={"CGO_ENABLED": "0"}),
)}


def cache_root() -> Path:
    configured = os.environ.get("ENDPOINTGEN_TOOLS_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "endpointgen" / "tools"


def digest(tool: Tool) -> str:
    """A hash of what decides the build: go.mod, go.sum, the Go sources and the build settings."""
    h = hashlib.sha256(f"{tool.packages}{tool.env}{tool.ldflags}{tool.files}".encode())
    for path in sorted(p for p in tool.source.rglob("*") if p.is_file() and p.suffix in {".mod", ".sum", ".go"}):
        h.update(str(path.relative_to(tool.source)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:12]


def tool_dir(tool: Tool) -> Path:
    return cache_root() / f"{tool.name}-{tool.version}-{digest(tool)}"


def check_pin(tool: Tool) -> None:
    """The wrapper's go.mod requires exactly the pinned version (so the cache name tells the truth)."""
    module, version = tool.pin.split()
    gomod = (tool.source / "go.mod").read_text(encoding="utf-8")
    if not re.search(rf"^\s*(require\s+)?{re.escape(module)}\s+{re.escape(version)}(\s|$)", gomod, re.M):
        raise UsageError(f"tools/{tool.name}/go.mod does not require {module} {version}")


def binary(name: str, program: str | None = None, *, build: bool = True) -> Path:
    """The path of a tool's program (default: the tool's own name), built first when missing and `build`."""
    tool = TOOLS[name]
    program = program or Path(tool.packages[0]).name
    path = tool_dir(tool) / program
    if not path.exists():
        if not build:
            raise UsageError(f"{program} is not built: run `make tools` (or endpointgen tools --build {name})")
        ensure(tool)
    return path


def ensure(tool: Tool, *, log=sys.stderr) -> tuple[Path, float | None]:
    """Build the tool unless its cache folder is there; (folder, seconds the build took or None)."""
    target = tool_dir(tool)
    if target.exists():
        return target, None
    check_pin(tool)
    go = shutil.which("go")
    if go is None:
        raise UsageError(f"building {tool.name} needs the Go toolchain (Go 1.26 or newer) on PATH")
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{tool.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():  # another process built it meanwhile
            return target, None
        began = time.monotonic()
        print(f"building {tool.name} {tool.version} (tools/{tool.name}) into {target}", file=log, flush=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{tool.name}-") as staging:
            env = {**os.environ, "GOFLAGS": "-mod=readonly", **tool.env}
            command = [go, "build", "-trimpath", "-ldflags", tool.ldflags, "-o", staging + "/", *tool.packages]
            result = subprocess.run(command, cwd=tool.source, env=env, capture_output=True, text=True)
            if result.returncode != 0:
                raise UsageError(f"building {tool.name} failed:\n{result.stderr.strip()}")
            for module, inside in tool.files:
                folder = subprocess.run([go, "list", "-m", "-f", "{{.Dir}}", module], cwd=tool.source, env=env,
                                        capture_output=True, text=True, check=True).stdout.strip()
                shutil.copy(Path(folder) / inside, Path(staging) / Path(inside).name)
            os.chmod(staging, 0o755)
            os.rename(staging, target)
        seconds = time.monotonic() - began
        print(f"built {tool.name} {tool.version} in {seconds:.0f} s", file=log, flush=True)
        return target, seconds


def build_all(names: list[str] | None = None, *, log=sys.stderr) -> dict[str, float | None]:
    """Build every tool named (all by default); the seconds each build took (None: already cached)."""
    return {name: ensure(TOOLS[name], log=log)[1] for name in (names or list(TOOLS))}
