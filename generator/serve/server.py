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
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..problems import EndpointgenError, UsageError
from .pod import Pod, SERVER_COMMAND, lay_out, pod_folder, version_deployment

SERVER_PACKAGE = "azureml_inference_server_http"
INSTALL_HINT = "the Azure ML inference server is not installed; install it with `pip install -e '.[serve]'`"
# Never ask Azure's instance metadata service (a link-local address) who we are: this is not an Azure VM.
LOCAL_ONLY = {"APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true"}


def server_installed() -> bool:
    return importlib.util.find_spec(SERVER_PACKAGE) is not None and SERVER_COMMAND.exists()


def start(pod: Pod, port: int, extra_env: Mapping[str, str] | None = None, **popen: Any) -> subprocess.Popen[bytes]:
    """Start the server for `pod` on `port` with the pod's environment (plus PATH, HOME and `extra_env`)."""
    if not server_installed():
        raise EndpointgenError(INSTALL_HINT)
    home = pod.root / "home"
    home.mkdir(exist_ok=True)
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "TMPDIR": str(pod.root / "tmp"),
               **LOCAL_ONLY, **pod.env, **(extra_env or {})}
    (pod.root / "tmp").mkdir(exist_ok=True)
    pod.app_root.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(pod.command(port), cwd=pod.app_root, env=environ, **popen)  # noqa: S603


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
    """SIGTERM, as Kubernetes does, then SIGKILL after 10 s; the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


def serve(root: Path, env_name: str, endpoint: str, version: str, source: Path, models: Mapping[str, Path],
          secrets: Mapping[str, str], port: int, echo: Any) -> int:
    """Serve one version until Ctrl-C (exit 0) or until the server stops by itself (exit 1 if it never started)."""
    if not server_installed():
        raise EndpointgenError(INSTALL_HINT)
    if not source.is_dir():
        raise UsageError(f"--source {source}: not a folder")
    deployment, source_directory = version_deployment(root, env_name, endpoint, version)
    with pod_folder() as folder:
        pod = lay_out(deployment, source_directory, folder, source, models, secrets)
        process = start(pod, port)
        try:
            base = f"http://127.0.0.1:{port}"
            if not wait_until_ready(process, base + pod.liveness_path, timeout=300):
                code = process.wait()
                raise EndpointgenError(f"the inference server stopped (exit code {code}) before it was ready: the "
                                       f"scoring script failed to load or init() failed; see its log above")
            echo(f"endpointgen: {endpoint}/{version} ({env_name}) serves at {base}/score "
                 f"(the pod's {pod.container_port}; the gateway's /api/v1/service/{endpoint}/score)")
            echo(f"  curl -X POST {base}/score -H 'Content-Type: application/json' -d '{{\"data\": []}}'")
            echo("endpointgen: Ctrl-C stops it")
            code = process.wait()
            echo(f"endpointgen: the inference server stopped by itself (exit code {code})")
            return 1
        except KeyboardInterrupt:  # the finally below stops the server
            echo("endpointgen: stopped")
            return 0
        finally:
            stop(process)
