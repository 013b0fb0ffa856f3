"""The sandbox every data-plane process runs in: its own pid, mount and network namespaces.

The sandbox's network namespace is the node: a bridge (10.244.0.1/24) that every pod's veth joins; pods are
network namespaces of their own (`ip netns`, under a /run private to the sandbox). Nothing in it can reach
the machine's network: its only links are the bridge and the veths. Its pid 1 is killed with `unshare`
(`--kill-child`), and with it, by the kernel, every process the sandbox holds: a failed or interrupted test
leaves nothing behind. The test process itself stays outside; `call` runs a function in the node's network
namespace (a thread of ours that `setns` moved), for the test's own clients.
"""

from __future__ import annotations

import ctypes
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
NODE_IP = "10.244.0.1"
PREFIX = "10.244.0"
CLONE_NEWNET = 0x40000000

SETUP = f"""set -e
mount -t proc proc /proc
mount -t tmpfs tmpfs /run
mkdir -p /run/netns
ip link set lo up
ip link add br0 type bridge
ip addr add {NODE_IP}/24 dev br0
ip link set br0 up
echo ready
exec sleep infinity
"""


def _die_with_parent() -> None:
    """preexec: the sandbox's holder dies (SIGKILL) when the test process does, taking the sandbox along."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Sandbox:
    """One sandbox; `close` (or leaving the `with`) ends every process in it."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self._holder = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--kill-child=SIGKILL", "--mount", "--propagation", "private", "--net",
             "--", "sh", "-c", SETUP],
            stdout=subprocess.PIPE, stderr=open(log, "ab"), preexec_fn=_die_with_parent)
        assert self._holder.stdout is not None
        line = self._holder.stdout.readline().decode().strip()
        if line != "ready":
            self.close()
            raise RuntimeError(f"the sandbox did not start ({line!r}); see {log}: {log.read_text()[-2000:]}")
        self.init = int(Path(f"/proc/{self._holder.pid}/task/{self._holder.pid}/children").read_text().split()[0])
        self._pods = 0
        self._processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                _signal_group(process, signal.SIGKILL)
        if self._holder.poll() is None:
            self._holder.kill()
        self._holder.wait(timeout=30)
        for process in self._processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv` as run inside the sandbox (its pid, mount and network namespaces)."""
        return ["nsenter", "-t", str(self.init), "-p", "-m", "-n", "--", *argv]

    def run(self, argv: Sequence[str]) -> str:
        """Run a short command inside the sandbox; its output, or an error with its stderr."""
        result = subprocess.run(self.command(argv), capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
        return result.stdout

    def start(self, argv: Sequence[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start a long-running process inside the sandbox, in a process group of its own."""
        with open(log, "ab") as out:
            process = subprocess.Popen(self.command(argv), stdout=out, stderr=subprocess.STDOUT, env=env,
                                       start_new_session=True)
        self._processes.append(process)
        return process

    def add_pod(self, name: str) -> tuple[str, str]:
        """A pod network namespace on the node's bridge: (its /run/netns path inside the sandbox, its IP)."""
        self._pods += 1
        index = self._pods + 1
        if index > 250:
            raise RuntimeError("the node's /24 is full")
        ip, veth = f"{PREFIX}.{index}", f"veth{index}"
        for step in (["ip", "netns", "add", name],
                     ["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name],
                     ["ip", "link", "set", veth, "master", "br0", "up"],
                     ["ip", "-n", name, "link", "set", "lo", "up"],
                     ["ip", "-n", name, "addr", "add", f"{ip}/24", "dev", "eth0"],
                     ["ip", "-n", name, "link", "set", "eth0", "up"],
                     ["ip", "-n", name, "route", "add", "default", "via", NODE_IP]):
            self.run(step)
        return f"/run/netns/{name}", ip

    def call(self, function: Callable[..., T], *args: Any, timeout: float = 300) -> T:
        """`function(*args)` in a thread inside the node's network namespace (threads it starts are too)."""
        results: queue.Queue[tuple[bool, Any]] = queue.Queue()

        def body() -> None:
            try:
                fd = os.open(f"/proc/{self.init}/ns/net", os.O_RDONLY)
                try:
                    if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "setns into the sandbox's network namespace")
                finally:
                    os.close(fd)
                results.put((True, function(*args)))
            except BaseException as error:  # handed to the caller
                results.put((False, error))

        threading.Thread(target=body, daemon=True).start()
        ok, value = results.get(timeout=timeout)
        if not ok:
            raise value
        return value


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def stop(process: subprocess.Popen[bytes], grace: float = 10) -> int | None:
    """SIGTERM to the process group, SIGKILL after `grace` seconds; the exit status."""
    _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if process.poll() is None:
        _signal_group(process, signal.SIGKILL)
    return process.wait(timeout=10)
