"""The harness's own guarantees: nothing leaves the machine, nothing outlives the test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .sandbox import Sandbox

HERE = Path(__file__).resolve().parent


def gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_the_node_has_no_way_out_and_the_machine_is_untouched(tmp_path: Path) -> None:
    before = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    with Sandbox(tmp_path / "sandbox.log") as sandbox:
        sandbox.add_pod("pod0")
        links = {line.split(":")[1].strip().split("@")[0] for line in sandbox.run(["ip", "-o", "link"]).splitlines()}
        assert links == {"lo", "br0", "veth2"}  # no link but the bridge and the pods' veths
        routes = sandbox.run(["ip", "route", "show", "table", "all"])
        assert "default" not in routes  # no route beyond the node's /24
        during = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True).stdout
        assert during == before  # the machine's own namespace gets no address, no link
    assert subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True).stdout == before


def test_closing_ends_every_process_even_after_a_failure(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="a test failed"):
        with Sandbox(tmp_path / "sandbox.log") as sandbox:
            sandbox.add_pod("pod0")
            process = sandbox.start(["sleep", "600"], tmp_path / "sleep.log")
            orphan = sandbox.start(["sh", "-c", "setsid sleep 600 & wait"], tmp_path / "orphan.log")
            init = sandbox.init
            raise RuntimeError("a test failed")
    assert process.poll() is not None and orphan.poll() is not None
    assert gone(init)  # the sandbox's pid 1, and with it everything in its pid namespace


def test_a_killed_test_process_leaves_nothing_behind(tmp_path: Path) -> None:
    """SIGKILL to the process holding a sandbox (no cleanup code runs): the kernel ends the sandbox with it."""
    program = (f"import sys, json; sys.path.insert(0, {str(HERE)!r}); from pathlib import Path\n"
               "from sandbox import Sandbox\n"
               f"s = Sandbox(Path({str(tmp_path / 'sandbox.log')!r})); s.add_pod('pod0')\n"
               f"s.start(['sleep', '600'], Path({str(tmp_path / 'sleep.log')!r}))\n"
               "print(json.dumps({'init': s.init}), flush=True)\n"
               "import time; time.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    init = json.loads(holder.stdout.readline())["init"]
    assert Path(f"/proc/{init}").exists()
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)
    assert gone(init)
