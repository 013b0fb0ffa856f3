"""The scoring pod as istiod's injection webhook makes it from the rendered Deployment (meshlab inject runs
istioctl's chart and the webhook's code), for each way the add-on can run: with or without the Istio CNI
plugin, with or without native sidecars.

Model loaders need the network (Blob Storage, Azure ML registries) before the app starts:
- no CNI: they run before istio-init sets up the redirection (the injector puts it last);
- CNI, no native sidecars: the redirection is there before any init container and the proxy starts after
  them, so the loaders run as the proxy's own user, whose traffic the redirection rules return untouched;
- native sidecars: the proxy is an init container that starts before them, and carries their traffic.
The probes (startup included) are rewritten to pilot-agent; the proxy gets the rendered drain settings.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from generator.check import gotools
from render_helpers import copy_examples

from .labs import rendered_objects
from .mesh import operator

DEPLOYMENT = "image-classifier-resnet-v3"  # prod's version with two models


def injected_pod(tmp_path: Path, istio: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(rendered pod template, injected pod template) of DEPLOYMENT with prod's istio section changed."""
    root = copy_examples(tmp_path / "repo")
    env_file = root / "environments" / "prod" / "environment.yaml"
    settings = yaml.safe_load(env_file.read_text())
    settings["istio"].update(istio)
    env_file.write_text(yaml.safe_dump(settings))
    objects = rendered_objects(root, "prod")
    iop = tmp_path / "operator.yaml"
    iop.write_text(operator(settings["istio"]["revision"], cni=bool(istio.get("cni"))))
    stream = "\n---\n".join(yaml.safe_dump(o) for o in objects if o["kind"] in ("Namespace", "Deployment"))
    result = subprocess.run([str(gotools.binary("istio", "meshlab")), "inject", "--operator", str(iop)],
                            input=stream, capture_output=True, text=True, check=True)
    [found] = [r for r in map(json.loads, result.stdout.splitlines()) if r["name"] == DEPLOYMENT]
    assert found["injected"], found
    [rendered] = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == DEPLOYMENT]
    return rendered["spec"]["template"], found["template"]


def init_order(pod: dict[str, Any]) -> list[str]:
    return [c["name"] for c in pod["spec"].get("initContainers", [])]


def user_of(pod: dict[str, Any], container: dict[str, Any]) -> int:
    return container.get("securityContext", {}).get("runAsUser", pod["spec"]["securityContext"]["runAsUser"])


def loaders(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in pod["spec"]["initContainers"] if c["name"].startswith("fetch-model-")]


def proxy(pod: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in pod["spec"]["containers"] + pod["spec"].get("initContainers", [])
                if c["name"] == "istio-proxy")


def test_without_cni_the_loaders_run_before_the_redirection(tmp_path: Path) -> None:
    _, pod = injected_pod(tmp_path, {})
    order = init_order(pod)
    assert order == ["fetch-model-0", "fetch-model-1", "istio-init"]
    assert {user_of(pod, c) for c in loaders(pod)} == {1000}


def test_with_cni_and_classic_sidecars_the_loaders_run_as_the_proxys_user(tmp_path: Path) -> None:
    rendered, pod = injected_pod(tmp_path, {"cni": True})
    assert rendered["metadata"]["annotations"]["sidecar.istio.io/nativeSidecar"] == "false"
    assert "istio-init" not in init_order(pod) and init_order(pod)[0] == "istio-validation"
    assert "restartPolicy" not in proxy(pod)  # the proxy starts with the app, after every init container
    exempt = proxy(pod)["securityContext"]["runAsUser"]  # the redirection returns this user's traffic untouched
    assert {user_of(pod, c) for c in loaders(pod)} == {exempt} == {1337}
    assert user_of(pod, next(c for c in pod["spec"]["containers"] if c["name"] == "scoring")) == 1000


@pytest.mark.parametrize("cni", [True, False])
def test_with_native_sidecars_the_proxy_starts_before_the_loaders(tmp_path: Path, cni: bool) -> None:
    rendered, pod = injected_pod(tmp_path, {"cni": cni, "native_sidecars": True})
    assert rendered["metadata"]["annotations"]["sidecar.istio.io/nativeSidecar"] == "true"
    order = init_order(pod)
    assert proxy(pod)["restartPolicy"] == "Always"
    assert order.index("istio-proxy") < order.index("fetch-model-0") < order.index("fetch-model-1")
    assert {user_of(pod, c) for c in loaders(pod)} == {1000}
    config = json.loads(rendered["metadata"]["annotations"]["proxy.istio.io/config"])
    assert "terminationDrainDuration" not in config  # a native sidecar stops after the app by itself


def test_the_probes_go_to_pilot_agent_and_the_proxy_drains_as_rendered(tmp_path: Path) -> None:
    rendered, pod = injected_pod(tmp_path, {})
    scoring = next(c for c in pod["spec"]["containers"] if c["name"] == "scoring")
    for kind, path in (("startupProbe", "startupz"), ("livenessProbe", "livez"), ("readinessProbe", "readyz")):
        assert scoring[kind]["httpGet"] == {"path": f"/app-health/scoring/{path}", "port": 15020}, kind
    assert scoring["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    config = json.loads(rendered["metadata"]["annotations"]["proxy.istio.io/config"])
    env = {e["name"]: e.get("value") for e in proxy(pod)["env"]}
    agent = json.loads(env["PROXY_CONFIG"])
    assert agent["terminationDrainDuration"] == config["terminationDrainDuration"]
    assert {k: env[k] for k in config["proxyMetadata"]} == config["proxyMetadata"]
    drain = int(config["terminationDrainDuration"].rstrip("s"))
    assert drain < rendered["spec"]["terminationGracePeriodSeconds"]
