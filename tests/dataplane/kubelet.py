"""A pod run as the kubelet runs it: volumes, environment, init containers, containers, probes.

What it does, from the pod spec (an injected pod template, so Istio's containers are as the webhook made
them): emptyDir, configMap, secret, downwardAPI, projected (service account token, configMap, downwardAPI)
and Secrets Store CSI volumes (each object of the SecretProviderClass written at its objectAlias, from a
stand-in Key Vault; one missing object fails the mount, as the Azure provider does); env values, fieldRef,
resourceFieldRef, secretKeyRef (Secrets, or the secretObjects a SecretProviderClass syncs) and
configMapKeyRef, with $(VAR) expansion in values, command and args; init containers in order (native
sidecars, restartPolicy Always, left running once started); the image's entrypoint, cmd, user and
environment; runAsUser / runAsGroup / runAsNonRoot (a non-numeric image user under runAsNonRoot is refused,
as the kubelet refuses it); readOnlyRootFilesystem; pod sysctls; httpGet and tcpSocket probes, sent from the
node as the kubelet sends them.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from generator.serve.pod import expand_variables as expand

from .images import Registry
from .sandbox import Sandbox, stop

LAUNCHER = Path(__file__).with_name("launcher.py")
NODE_NAME = "aks-nodepool1-00000000-vmss000000"
TOKEN_PREFIX = "endpointgen-harness-token/"  # as meshlab's TokenPrefix
NODE_CPU, NODE_MEMORY = 2, 8 * 1024**3  # what a limit-less resourceFieldRef reads (the node's allocatable)


class PodFailed(RuntimeError):
    """The pod cannot run: a volume that cannot mount, a refused container, an init container that failed."""


@dataclass
class Cluster:
    """What the kubelet reads from the API server and Key Vault: objects by (kind, namespace, name)."""

    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    key_vaults: dict[str, dict[str, str]] = field(default_factory=dict)  # vault -> secret name -> value

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        try:
            return self.objects[(kind, namespace, name)]
        except KeyError:
            raise PodFailed(f"{kind} {namespace}/{name} does not exist") from None

    def add(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self.objects[(obj["kind"], meta.get("namespace", ""), meta["name"])] = obj


def quantity(value: str) -> float:
    """A Kubernetes quantity as a number (cpu cores or bytes)."""
    units = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3,
             "Ti": 1024**4}
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value))
    if not match:
        raise ValueError(f"not a quantity: {value}")
    return float(match.group(1)) * units.get(match.group(2), 1)


@dataclass
class RunningContainer:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    spec: dict[str, Any]


class Pod:
    """One pod on the sandbox's node."""

    def __init__(self, sandbox: Sandbox, pod: dict[str, Any], netns: str, cluster: Cluster, images: Registry,
                 work: Path) -> None:
        self.sandbox, self.obj, self.netns, self.cluster, self.images = sandbox, pod, netns, cluster, images
        self.meta, self.spec = pod["metadata"], pod["spec"]
        self.name, self.namespace = self.meta["name"], self.meta["namespace"]
        self.ip = pod["status"]["podIP"]
        self.work = work
        self.work.mkdir(parents=True, exist_ok=True)
        self.containers: dict[str, RunningContainer] = {}
        self.finished: dict[str, RunningContainer] = {}  # init containers that ran to completion
        self.volumes: dict[str, Path] = {}
        self.extra_mounts: list[dict[str, Any]] = []  # files the kubelet itself mounts (/etc/hosts, resolv.conf)

    # --- volumes ---------------------------------------------------------------------------------------------

    def volume_dir(self, name: str) -> Path:
        path = self.work / "volumes" / name
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777)
        return path

    def make_volumes(self) -> None:
        for volume in self.spec.get("volumes", []):
            path = self.volume_dir(volume["name"])
            payload = self.payload(volume)
            if payload is not None:
                write_atomically(path, payload)
            elif "csi" in volume:
                self.mount_secrets_store(path, volume["csi"])
            self.volumes[volume["name"]] = path

    def sync_volumes(self) -> None:
        """The kubelet's periodic sync: configMap, secret, downwardAPI and projected volumes rewritten from the
        objects as they are now (an optional Secret that appeared, a Secret External Secrets refreshed)."""
        for volume in self.spec.get("volumes", []):
            payload = self.payload(volume)
            if payload is not None:
                write_atomically(self.volumes[volume["name"]], payload)

    def payload(self, volume: Mapping[str, Any]) -> dict[str, str] | None:
        """A volume's files (path -> text) for the kubelet's atomic writer; None for other volume types."""
        if "configMap" in volume:
            return self.items(self.config_map(volume["configMap"]), volume["configMap"])
        if "secret" in volume:
            return self.items(self.secret(volume["secret"]), volume["secret"])
        if "downwardAPI" in volume:
            return self.downward(volume["downwardAPI"]["items"])
        if "projected" not in volume:
            return None
        files: dict[str, str] = {}
        for source in volume["projected"]["sources"]:
            if "serviceAccountToken" in source:
                files[source["serviceAccountToken"]["path"]] = self.service_account_token()
            elif "configMap" in source:
                files.update(self.items(self.config_map(source["configMap"]), source["configMap"]))
            elif "secret" in source:
                files.update(self.items(self.secret(source["secret"]), source["secret"]))
            elif "downwardAPI" in source:
                files.update(self.downward(source["downwardAPI"]["items"]))
        return files

    def service_account_token(self) -> str:
        """The pod's projected token; meshlab's TokenReview stand-in reads the identity back from it."""
        return f"{TOKEN_PREFIX}{self.namespace}/{self.spec.get('serviceAccountName', 'default')}/{self.name}"

    def config_map(self, ref: Mapping[str, Any]) -> dict[str, str]:
        try:
            return self.cluster.get("ConfigMap", self.namespace, ref["name"]).get("data", {})
        except PodFailed:
            if ref.get("optional"):
                return {}
            raise

    def secret(self, ref: Mapping[str, Any]) -> dict[str, str]:
        """A Secret's data; an optional one that does not exist (yet) is empty, as the kubelet makes it."""
        try:
            return self.cluster.get("Secret", self.namespace, ref.get("secretName") or ref["name"]).get(
                "stringData", {})
        except PodFailed:
            if ref.get("optional"):
                return {}
            raise

    @staticmethod
    def items(data: Mapping[str, str], ref: Mapping[str, Any]) -> dict[str, str]:
        items = ref.get("items") or [{"key": k, "path": k} for k in data]
        for item in items:  # a key the object lacks fails the volume, unless the source is optional
            if item["key"] not in data and not ref.get("optional"):
                raise PodFailed(f"references non-existent key: {item['key']}")
        return {item["path"]: data[item["key"]] for item in items if item["key"] in data}

    def downward(self, items: list[dict[str, Any]]) -> dict[str, str]:
        files = {}
        for item in items:
            field_path = item["fieldRef"]["fieldPath"]
            values = {"metadata.labels": self.meta.get("labels", {}),
                      "metadata.annotations": self.meta.get("annotations", {})}.get(field_path)
            files[item["path"]] = ("\n".join(f"{k}={json.dumps(v)}" for k, v in sorted(values.items()))
                                   if values is not None else self.field(field_path))
        return files

    @staticmethod
    def write_file(path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o644)

    def mount_secrets_store(self, path: Path, csi: Mapping[str, Any]) -> None:
        """The Secrets Store CSI driver with the Azure provider: every object, or the mount fails."""
        name = csi["volumeAttributes"]["secretProviderClass"]
        spc = self.cluster.get("SecretProviderClass", self.namespace, name)
        params = spc["spec"]["parameters"]
        vault = self.cluster.key_vaults.get(params["keyvaultName"], {})
        for entry in (yaml.safe_load(item) for item in yaml.safe_load(params["objects"])["array"]):
            if entry["objectName"] not in vault:
                raise PodFailed(f"MountVolume.SetUp failed for volume of SecretProviderClass {name}: secret "
                                f"{entry['objectName']} not found in Key Vault {params['keyvaultName']}")
            self.write_file(path / entry.get("objectAlias", entry["objectName"]), vault[entry["objectName"]])

    def synced_secret(self, name: str, key: str) -> str | None:
        """A value of a Secret that a SecretProviderClass (mounted by this pod) syncs from Key Vault."""
        for (kind, namespace, _), spc in self.cluster.objects.items():
            if kind != "SecretProviderClass" or namespace != self.namespace:
                continue
            vault = self.cluster.key_vaults.get(spc["spec"]["parameters"]["keyvaultName"], {})
            for synced in spc["spec"].get("secretObjects", []):
                if synced["secretName"] == name:
                    for data in synced["data"]:
                        if data["key"] == key and data["objectName"] in vault:
                            return vault[data["objectName"]]
        return None

    # --- environment -----------------------------------------------------------------------------------------

    def field(self, path: str) -> str:
        values = {"metadata.name": self.name, "metadata.namespace": self.namespace,
                  "metadata.uid": self.meta.get("uid", ""), "status.podIP": self.ip, "status.podIPs": self.ip,
                  "status.hostIP": "10.244.0.1", "spec.nodeName": NODE_NAME,
                  "spec.serviceAccountName": self.spec.get("serviceAccountName", "default")}
        match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
        if match:
            return self.meta.get(match.group(1), {}).get(match.group(2), "")
        return values[path]

    def resource(self, container: Mapping[str, Any], ref: Mapping[str, Any]) -> str:
        kind, _, name = ref["resource"].partition(".")
        limits = container.get("resources", {}).get(kind, {})
        node = {"cpu": NODE_CPU, "memory": NODE_MEMORY, "ephemeral-storage": 100 * 1024**3}
        value = quantity(limits[name]) if name in limits else node[name]
        divisor = quantity(ref.get("divisor", "1"))
        if name == "cpu":  # the kubelet rounds cpu up to whole divisors, at least 1
            return str(max(1, math.ceil(round(value / divisor, 6))))
        return str(int(value // divisor))

    def environment(self, container: Mapping[str, Any], image_env: Mapping[str, str]) -> dict[str, str]:
        env = dict(image_env)
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = expand(item["value"], env)
                continue
            source = item.get("valueFrom", {})
            if "fieldRef" in source:
                env[item["name"]] = self.field(source["fieldRef"]["fieldPath"])
            elif "resourceFieldRef" in source:
                env[item["name"]] = self.resource(container, source["resourceFieldRef"])
            elif "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                value = self.synced_secret(ref["name"], ref["key"])
                if value is None:
                    value = self.secret({"name": ref["name"]}).get(ref["key"])
                if value is None:
                    raise PodFailed(f"container {container['name']}: secret {ref['name']} has no key {ref['key']}")
                env[item["name"]] = value
            elif "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                env[item["name"]] = self.config_map(ref).get(ref["key"], "")
            else:
                env[item["name"]] = ""
        return env

    # --- containers ------------------------------------------------------------------------------------------

    def launch(self, container: dict[str, Any]) -> RunningContainer:
        image = self.images(container["image"])
        context = {**self.spec.get("securityContext", {}), **container.get("securityContext", {})}
        uid = context.get("runAsUser", image.uid)
        gid = context.get("runAsGroup", image.gid if context.get("runAsUser") is None else 0)
        if context.get("runAsNonRoot"):
            if uid is None:
                raise PodFailed(f"container {container['name']}: container has runAsNonRoot and image has "
                                f"non-numeric user, cannot verify user is non-root")
            if uid == 0:
                raise PodFailed(f"container {container['name']}: container has runAsNonRoot and image will run "
                                f"as root")
        env = self.environment(container, image.env)
        command = [expand(a, env) for a in container.get("command", image.entrypoint)]
        args = [expand(a, env) for a in container.get("args", [] if "command" in container else image.cmd)]
        mounts = [{"path": m["mountPath"], "readOnly": bool(m.get("readOnly")),
                   "source": str(self.volumes[m["name"]] / m.get("subPath", ""))}
                  for m in container.get("volumeMounts", [])] + self.extra_mounts
        sysctls = {s["name"]: s["value"] for s in self.spec.get("securityContext", {}).get("sysctls", [])}
        spec = {"netns": self.netns, "state": str(self.work / "containers" / container["name"]),
                "image": image.files, "dirs": image.dirs, "shared": list(image.shared), "argv": command + args,
                "env": env, "mounts": mounts,
                "uid": uid or 0, "gid": gid or 0, "readOnlyRoot": bool(context.get("readOnlyRootFilesystem")),
                "workingDir": container.get("workingDir", image.working_dir), "sysctls": sysctls}
        spec_file = self.work / f"{container['name']}.json"
        spec_file.write_text(json.dumps(spec, indent=1))
        log = self.work / f"{container['name']}.log"
        log.touch()
        log.chmod(0o666)  # the runtime gives a container a pipe as stdout, which /dev/stdout reopens as any user
        process = self.sandbox.start([sys.executable, str(LAUNCHER), str(spec_file)], log)
        running = RunningContainer(container["name"], process, log, container)
        self.containers[container["name"]] = running
        return running

    def start(self, timeout: float = 120) -> None:
        """Mount the volumes, run the init containers in order, start the containers, wait until ready."""
        self.make_volumes()
        for init in self.spec.get("initContainers", []):
            running = self.launch(init)
            if init.get("restartPolicy") == "Always":  # a native sidecar: running, and started, before the next
                self.wait_until(lambda c=init: self.probe(c, "startupProbe") and self.alive(running), timeout)
                continue
            code = running.process.wait(timeout=timeout)
            self.finished[init["name"]] = self.containers.pop(init["name"])
            if code != 0:
                raise PodFailed(f"init container {init['name']} exited with {code}: {self.tail(running)}")
        for container in self.spec["containers"]:
            self.launch(container)
        self.wait_until(self.ready, timeout)

    def alive(self, running: RunningContainer) -> bool:
        if running.process.poll() is not None:
            raise PodFailed(f"container {running.name} exited with {running.process.returncode}: "
                            f"{self.tail(running)}")
        return True

    def ready(self) -> bool:
        for running in self.containers.values():
            self.alive(running)
        return all(self.probe(r.spec, "readinessProbe") for r in self.containers.values())

    def wait_until(self, condition: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise PodFailed(f"pod {self.namespace}/{self.name} not ready after {timeout:.0f} s:\n" +
                                "\n".join(f"--- {r.name}\n{self.tail(r)}" for r in self.containers.values()))
            time.sleep(0.2)

    def probe(self, container: Mapping[str, Any], kind: str) -> bool:
        """One probe, as the kubelet sends it: from the node to the pod's IP, within its timeoutSeconds."""
        probe = container.get(kind)
        if not probe:
            return True
        timeout = probe.get("timeoutSeconds", 1)
        if "httpGet" in probe:
            get = probe["httpGet"]
            port = self.port(container, get["port"])
            return self.sandbox.call(http_probe, self.ip, port, get.get("path", "/"), timeout)
        if "tcpSocket" in probe:
            return self.sandbox.call(tcp_probe, self.ip, self.port(container, probe["tcpSocket"]["port"]), timeout)
        raise NotImplementedError(f"{kind} of {container['name']}: only httpGet and tcpSocket probes")

    @staticmethod
    def port(container: Mapping[str, Any], port: int | str) -> int:
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        return next(p["containerPort"] for p in container.get("ports", []) if p.get("name") == port)

    @staticmethod
    def tail(running: RunningContainer, chars: int = 3000) -> str:
        return running.log.read_text(errors="replace")[-chars:] if running.log.exists() else ""

    def wait_for_log(self, container: str, text: str, count: int = 1, timeout: float = 60) -> None:
        """Until the container's log holds `text` `count` times (a readiness the probes do not tell)."""
        self.wait_until(lambda: self.tail(self.containers[container], 10**9).count(text) >= count, timeout)

    def stop(self, container: str, grace: float = 30) -> int | None:
        """SIGTERM to the container's processes, SIGKILL after `grace` seconds, as the kubelet stops one."""
        return stop(self.containers[container].process, grace)

    def terminate(self) -> dict[str, float]:
        """Delete the pod as the kubelet does: each container's preStop hook (the sleep action), then SIGTERM,
        all containers at once (a native sidecar, an init container that keeps running, only after the app's
        containers have exited), SIGKILL at terminationGracePeriodSeconds. When each container exited (s)."""
        grace = self.spec.get("terminationGracePeriodSeconds", 30)
        began = time.monotonic()
        native = {c["name"] for c in self.spec.get("initContainers", []) if c.get("restartPolicy") == "Always"}
        exited: dict[str, float] = {}

        def stop_one(name: str) -> None:
            running = self.containers[name]
            hook = (running.spec.get("lifecycle") or {}).get("preStop") or {}
            if "sleep" in hook:
                time.sleep(hook["sleep"]["seconds"])
            elif hook:
                raise NotImplementedError(f"preStop of {name}: only the sleep action")
            main_process = container_main_pid(running.process)  # the runtime signals the container's PID 1 only
            if main_process is not None:
                os.kill(main_process, signal.SIGTERM)
            try:
                running.process.wait(timeout=max(0.1, grace - (time.monotonic() - began)))
            except subprocess.TimeoutExpired:
                stop(running.process, 0)
            exited[name] = time.monotonic() - began

        for group in ([n for n in self.containers if n not in native], [n for n in self.containers if n in native]):
            threads = [threading.Thread(target=stop_one, args=(name,)) for name in group]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        return exited

    def signal(self, container: str, sig: int) -> None:
        """A signal to every process of a container (SIGKILL: it crashed; SIGSTOP: it hangs)."""
        os.killpg(self.containers[container].process.pid, sig)


def write_atomically(path: Path, files: Mapping[str, str]) -> None:
    """The kubelet's AtomicWriter (pkg/volume/util/atomic_writer.go): the files in a new `..<timestamp>` folder,
    `..data` switched to it by one rename, each top-level entry a symlink into `..data`, the old folder removed;
    a reader sees the old set or the new one, never a mix."""
    stamp = path / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
    for rel, text in files.items():
        target = stamp / rel
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        target.write_text(text)
        target.chmod(0o644)
    stamp.mkdir(exist_ok=True, mode=0o755)
    for folder in [stamp, *(p for p in stamp.rglob("*") if p.is_dir())]:
        folder.chmod(0o755)
    data = path / "..data"
    old = os.readlink(data) if data.is_symlink() else None
    staged = path / "..data_tmp"
    staged.unlink(missing_ok=True)
    staged.symlink_to(stamp.name)
    os.rename(staged, data)
    tops = {rel.split("/")[0] for rel in files}
    for top in tops:
        if not (path / top).is_symlink():
            (path / top).symlink_to(f"..data/{top}")
    for entry in path.iterdir():
        if entry.is_symlink() and not entry.name.startswith("..") and entry.name not in tops:
            entry.unlink()
    if old:
        shutil.rmtree(path / old, ignore_errors=True)


def container_main_pid(process: subprocess.Popen[bytes]) -> int | None:
    """The container's first process: the child `nsenter` forked into the sandbox, which exec'd the image's
    entrypoint (None when it has exited)."""
    try:
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    except FileNotFoundError:
        return None
    return int(children[0]) if children else None


def http_probe(ip: str, port: int, path: str, timeout: float) -> bool:
    try:
        connection = http.client.HTTPConnection(ip, port, timeout=timeout)
        connection.request("GET", path, headers={"User-Agent": "kube-probe/1.33"})
        status = connection.getresponse().status
        connection.close()
        return 200 <= status < 400
    except (OSError, http.client.HTTPException):
        return False


def tcp_probe(ip: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return True
    except OSError:
        return False

