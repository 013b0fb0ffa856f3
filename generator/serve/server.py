"""Run a version's scoring pod locally: the real Azure ML inference server with the rendered container's environment.

`endpointgen serve` is this project's `LocalWebservice`. It renders the
version's Deployment, lays out a temporary folder the way the pod's file
system looks (the source folder where the image has it, each model where its
init container puts it), moves every absolute path of the scoring container's
environment under that folder, and starts the server as Azure ML inference
images do: `cd "$AML_APP_ROOT" && azmlinfsrv --entry_script "$AZUREML_ENTRY_SCRIPT" --port PORT`.
The contract tests start it the same way (tests/test_serving.py).
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..problems import EndpointgenError, UsageError
from .pod import Pod, SERVER_COMMAND, lay_out, local_collection, local_telemetry, pod_folder, version_deployment

SERVER_PACKAGE = "azureml_inference_server_http"
INSTALL_HINT = "the Azure ML inference server is not installed; install it with `pip install -e '.[serve]'`"
# Never ask Azure's instance metadata service (a link-local address) who we are: this is not an Azure VM.
LOCAL_ONLY = {"APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true"}


def server_installed() -> bool:
    return importlib.util.find_spec(SERVER_PACKAGE) is not None and SERVER_COMMAND.exists()


def address_part(host: str) -> str:
    """An IP address as it stands before `:port` in a bind or a URL (IPv6 in brackets); anything else is refused."""
    address = ipaddress.ip_address(host)
    return f"[{address}]" if address.version == 6 else str(address)


def bind_config(pod: Pod, host: str) -> Path:
    """A gunicorn config file whose on_starting hook (run in the master before it opens its sockets) moves every
    address azmlinfsrv binds (0.0.0.0, its DEFAULT_HOST, on the command line) to `host`."""
    shown = address_part(host)  # a literal address only: it goes into Python source
    path = pod.root / "gunicorn.serve.py"
    path.write_text("# endpointgen serve: the inference server listens on this host only\n"
                    f"HOST = {shown!r}\n\n\n"
                    "def on_starting(server):\n"
                    "    server.cfg.set('bind', [HOST + ':' + a.rsplit(':', 1)[1] for a in server.cfg.bind])\n")
    return path


def start(pod: Pod, port: int, extra_env: Mapping[str, str] | None = None, host: str = "127.0.0.1",
          **popen: Any) -> subprocess.Popen[bytes]:
    """Start the server for `pod` on `host`:`port` with the pod's environment (plus PATH, HOME and `extra_env`),
    in a process group of its own so that stop() ends all of it."""
    if not server_installed():
        raise EndpointgenError(INSTALL_HINT)
    home = pod.root / "home"
    home.mkdir(exist_ok=True)
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "TMPDIR": str(pod.root / "tmp"),
               **LOCAL_ONLY, **pod.env, **(extra_env or {})}
    environ["GUNICORN_CMD_ARGS"] = f"{environ.get('GUNICORN_CMD_ARGS', '')} --config {bind_config(pod, host)}".strip()
    (pod.root / "tmp").mkdir(exist_ok=True)
    pod.app_root.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(pod.command(port), cwd=pod.app_root, env=environ,  # noqa: S603
                            start_new_session=True, **popen)


def wait_until_ready(process: subprocess.Popen[bytes], url: str, timeout: float = 60) -> bool:
    """Poll `url` until it answers 200 (True) or the server exits (False); a timeout is an error."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own server on loopback
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise EndpointgenError(f"the inference server did not answer {url} within {timeout:.0f} s")


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM to the server's whole process group, as Kubernetes stops a container, then SIGKILL to what is
    left after 10 s (a worker the master lost); the master's exit code."""
    if process.poll() is None:
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    _signal_group(process.pid, signal.SIGKILL)
    return process.wait()


def _signal_group(group: int, sig: int) -> None:
    try:
        os.killpg(group, sig)
    except ProcessLookupError:  # nothing left in the group
        pass


class Stopped(Exception):
    """SIGTERM or SIGHUP reached `serve`: stop the server and clean up, as Ctrl-C does."""


@contextmanager
def stopped_by_signals() -> Iterator[None]:
    """While serving, SIGTERM and SIGHUP raise Stopped (SIGINT raises KeyboardInterrupt), so every cleanup runs."""
    def handler(signum: int, _frame: Any) -> None:
        raise Stopped(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def serve(root: Path, env_name: str, endpoint: str, version: str, source: Path, models: Mapping[str, Path],
          secrets: Mapping[str, str], port: int, echo: Any, host: str = "127.0.0.1", app_insights: bool = False) -> int:
    """Serve one version on `host`:`port` until Ctrl-C, SIGTERM or SIGHUP (exit 0) or until the server stops by
    itself (exit 1, an error if it never got ready); the server's processes and the pod folder never outlive it."""
    if not server_installed():
        raise EndpointgenError(INSTALL_HINT)
    if not source.is_dir():
        raise UsageError(f"--source {source}: not a folder")
    deployment, source_directory = version_deployment(root, env_name, endpoint, version)
    with stopped_by_signals(), pod_folder() as folder:
        pod = lay_out(deployment, source_directory, folder, source, models, secrets)
        pod = local_telemetry(pod, app_insights, secrets)
        pod, collection = local_collection(pod, secrets)
        process = None
        try:
            process = start(pod, port, host=host)
            base = f"http://{address_part(host)}:{port}"
            if not wait_until_ready(process, base + pod.liveness_path, timeout=300):
                code = process.wait()
                raise EndpointgenError(f"the inference server stopped (exit code {code}) before it was ready: the "
                                       f"scoring script failed to load or init() failed; see its log above")
            echo(f"endpointgen: {endpoint}/{version} ({env_name}) serves at {base}/score "
                 f"(the pod's {pod.container_port}; the gateway's /api/v1/service/{endpoint}/score)")
            echo(f"  curl -X POST {base}/score -H 'Content-Type: application/json' -d '{{\"data\": []}}'")
            if collection:
                echo(f"endpointgen: {collection}")
            echo("endpointgen: Ctrl-C (or SIGTERM, SIGHUP) stops it")
            code = process.wait()
            echo(f"endpointgen: the inference server stopped by itself (exit code {code})")
            return 1
        except (KeyboardInterrupt, Stopped):  # the finally below stops the server, then the folder goes
            echo("endpointgen: stopped")
            return 0
        finally:
            if process is not None:
                stop(process)
