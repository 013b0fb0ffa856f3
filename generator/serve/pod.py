"""A version's scoring pod laid out on this machine, from its rendered Deployment: files, environment, port, command."""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..problems import UsageError

SERVER_COMMAND = Path(sys.executable).parent / "azmlinfsrv"  # the package's console script, in this environment



# Fake values for the secrets a pod gets from Key Vault: clearly not real, and App Insights telemetry goes to a
# closed port on this machine (9, discard) instead of Azure. `--secret NAME=VALUE` gives real ones.
FAKE_SECRETS = {
    "AML_APP_INSIGHTS_KEY": "00000000-0000-0000-0000-000000000000",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": ("InstrumentationKey=00000000-0000-0000-0000-000000000000;"
                                              "IngestionEndpoint=http://127.0.0.1:9/"),
    # azureml-monitoring's storage: Azurite's on its default port, if one runs here (serve collects to the log)
    "AML_MODEL_DC_STORAGE": "UseDevelopmentStorage=true",
}



@dataclass(frozen=True)
class Pod:
    """A scoring pod laid out under `root`: its container's environment (paths moved there) and its port."""

    root: Path
    env: dict[str, str]
    container_port: int
    liveness_path: str
    readiness_path: str
    start: tuple[str, ...] = ()  # the container's command, $(VAR)s expanded; empty: the image's own start


    @property
    def app_root(self) -> Path:
        return Path(self.env.get("AML_APP_ROOT", str(self.root / "var/azureml-app")))

    def command(self, port: int) -> list[str]:
        """The rendered command (azmlinfsrv, run from the app root) on `port`; without one, what the Azure ML
        images' runit script runs: `azmlinfsrv --entry_script $AZUREML_ENTRY_SCRIPT`."""
        if not self.start:
            return [str(SERVER_COMMAND), "--entry_script", self.env.get("AZUREML_ENTRY_SCRIPT", "main.py"),
                    "--port", str(port)]
        if self.start[0] != "azmlinfsrv":
            raise UsageError(f"the scoring container starts {self.start[0]!r}; serve runs azmlinfsrv only")
        args = list(self.start[1:])
        if "--port" in args:
            args[args.index("--port") + 1] = str(port)
        else:
            args += ["--port", str(port)]
        return [str(SERVER_COMMAND), *args]


def scoring_container(deployment: Mapping[str, Any]) -> dict[str, Any]:
    return next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "scoring")


def model_destinations(deployment: Mapping[str, Any]) -> list[str]:
    """Where each model-loader init container puts its model (its last argument), in the container's paths."""
    return [c["args"][-1] for c in deployment["spec"]["template"]["spec"].get("initContainers", [])]


def under(root: Path, path: str) -> Path:
    """A container path inside the temporary root."""
    return root / path.lstrip("/")


def container_environment(container: Mapping[str, Any], root: Path, secrets: Mapping[str, str]) -> dict[str, str]:
    """The container's env list as a dict: plain values (absolute paths moved under `root`) and secrets.

    A variable from a Secret takes `secrets[name]`, else a fake value from FAKE_SECRETS; any other secret
    reference without a value is an error, so nothing silently runs without it.
    """
    env: dict[str, str] = {}
    for item in container.get("env", []):
        name = item["name"]
        if "valueFrom" in item:
            if name in secrets:
                env[name] = secrets[name]
            elif name in FAKE_SECRETS:
                env[name] = FAKE_SECRETS[name]
            else:
                raise UsageError(f"{name} comes from a Secret in the pod; give it with --secret {name}=VALUE")
        else:
            value = item["value"]
            env[name] = str(under(root, value)) if value.startswith("/") else value
    return env


def http_port(container: Mapping[str, Any], port: Any) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p.get("name") == port)


def lay_out(deployment: Mapping[str, Any], source_directory: str, root: Path, source: Path,
            models: Mapping[str, Path], secrets: Mapping[str, str]) -> Pod:
    """Build the pod's file system under `root`: `source`'s entries linked into `source_directory`, and each
    model folder linked where its init container would fetch it (`models` maps `name/version` to a folder)."""
    container = scoring_container(deployment)
    source_folder = under(root, source_directory)
    source_folder.mkdir(parents=True, exist_ok=True)
    for entry in sorted(source.iterdir()):
        if not (source_folder / entry.name).exists():
            (source_folder / entry.name).symlink_to(entry.resolve())
    missing = []
    for destination in model_destinations(deployment):
        key = "/".join(destination.rstrip("/").split("/")[-2:])
        if key not in models:
            missing.append(key.replace("/", ":"))
            continue
        target = under(root, destination)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(models[key].resolve())
    if missing:
        raise UsageError("this version's models need local folders: " +
                         ", ".join(f"--model {m}=DIR" for m in missing))
    liveness, readiness = container["livenessProbe"]["httpGet"], container["readinessProbe"]["httpGet"]
    port = http_port(container, liveness["port"])
    env = container_environment(container, root, secrets)
    start = tuple(expand_variables(arg, env) for arg in container.get("command", []))
    return Pod(root, env, port, liveness["path"], readiness["path"], start)


def local_telemetry(pod: Pod, app_insights: bool, secrets: Mapping[str, str]) -> Pod:
    """App Insights off on this machine unless asked for, with a real key: the server would otherwise retry its
    uploads to a closed port and hold a failing init() for half a minute before it exits."""
    env = dict(pod.env)
    if app_insights:
        if "AML_APP_INSIGHTS_KEY" not in secrets:
            raise UsageError("--app-insights sends telemetry to Azure: give the instrumentation key with "
                             "--secret AML_APP_INSIGHTS_KEY=KEY")
        env.update({"AML_APP_INSIGHTS_ENABLED": "true", "AML_APP_INSIGHTS_KEY": secrets["AML_APP_INSIGHTS_KEY"]})
    else:
        env["AML_APP_INSIGHTS_ENABLED"] = "false"
        for name in FAKE_SECRETS:
            if name not in secrets:
                env.pop(name, None)
    return replace(pod, env=env)


def local_collection(pod: Pod, secrets: Mapping[str, str]) -> tuple[Pod, str | None]:
    """collect_model_data on this machine: to the storage of `--secret AML_MODEL_DC_STORAGE=...` (e.g. Azurite's
    connection string), else in the collector's debug mode, which prints each collected row to the server's log
    instead of uploading. Returns the pod and what it does, in words (None when the version does not collect)."""
    if pod.env.get("AML_MODEL_DC_STORAGE_ENABLED") != "true":
        return pod, None
    if "AML_MODEL_DC_STORAGE" in secrets:
        return pod, "model data collection uploads to the storage of --secret AML_MODEL_DC_STORAGE"
    env = {**pod.env, "AML_MODEL_DC_STORAGE_ENABLED": "false", "AML_MODEL_DC_DEBUG": "true"}
    env.pop("AML_MODEL_DC_STORAGE", None)
    return replace(pod, env=env), ("model data collection prints each collected row to the log (debug mode); "
                                   "--secret AML_MODEL_DC_STORAGE=CONNECTION_STRING uploads instead")


def expand_variables(text: str, env: Mapping[str, str]) -> str:
    """The kubelet's $(VAR) expansion in command and args ($$ escapes; unknown variables stay as written)."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text)



@contextmanager
def pod_folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="endpointgen-serve-") as folder:
        yield Path(folder)


def version_deployment(root: Path, env_name: str, endpoint: str, version: str) -> tuple[dict[str, Any], str]:
    """The rendered Deployment of one version (valid specs only) and the version's source_directory."""
    from ..render.objects import render_endpoint
    from ..spec.repository import load_repository
    from ..problems import ProblemsFound
    from ..render.views import APP_ROOT, environment_view

    repo = load_repository(root, [env_name])
    if repo.problems:
        raise ProblemsFound(repo.problems)
    ep = next((e for e in repo.endpoints if e.name == endpoint), None)
    if ep is None:
        raise UsageError(f"no endpoint {endpoint!r} in environment {env_name!r}")
    v = next((v for v in ep.versions if v.name == version), None)
    if v is None:
        raise UsageError(f"endpoint {endpoint!r} has no version {version!r} "
                         f"(versions: {', '.join(x.name for x in ep.versions)})")
    manifests = render_endpoint(ep.env, environment_view(ep.env), ep)
    deployment = next(m.obj for m in manifests
                      if m.obj["kind"] == "Deployment" and m.obj["metadata"]["name"] == f"{endpoint}-{version}")
    return deployment, v.settings["inference_config"].get("source_directory", APP_ROOT)
