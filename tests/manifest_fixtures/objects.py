"""Minimal valid Kubernetes and Istio objects for the API-server rule and policy tests.

Each builder returns a fresh dict that passes every rule and policy (the tests assert so), for a test to break
one thing in.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]
NAMESPACE = "ml"
ENDPOINT = "demo"


def metadata(name: str, **extra: Any) -> Obj:
    return {"name": name, "namespace": NAMESPACE, "labels": {"endpointgen.io/endpoint": ENDPOINT}, **extra}


def container(name: str = "scoring", **extra: Any) -> Obj:
    """A long-running container meeting Pod Security "restricted", with resources and both probes."""
    return {
        "name": name,
        "image": "acr.azurecr.io/scoring/demo:1.0",
        "ports": [{"name": "http", "containerPort": 5001}],
        "resources": {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
        "livenessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 10, "successThreshold": 1},
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 10},
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        **extra,
    }


def init_container() -> Obj:
    c = container("fetch-model")
    del c["ports"], c["livenessProbe"], c["readinessProbe"]
    return c


def pod_spec() -> Obj:
    return {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "initContainers": [init_container()],
        "containers": [container()],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }


def deployment(name: str = "demo-blue") -> Obj:
    labels = {"endpointgen.io/endpoint": ENDPOINT, "endpointgen.io/version": "blue"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(name),
        "spec": {
            "selector": {"matchLabels": dict(labels)},
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec()},
        },
    }


def service(name: str = "demo-blue") -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(name),
        "spec": {"selector": {"endpointgen.io/version": "blue"}, "ports": [{"name": "http", "port": 80}]},
    }


def hpa(target: str = "demo-blue") -> Obj:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(target),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": 1,
            "maxReplicas": 3,
            "behavior": {"scaleUp": {"policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}},
        },
    }


def pdb(name: str = "demo-blue") -> Obj:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": metadata(name),
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"endpointgen.io/version": "blue"}}}}


def virtual_service(auth: str | None = None) -> Obj:
    annotations = {"endpointgen.io/auth": auth} if auth else {}
    destinations = [
        {"destination": {"host": f"demo-blue.{NAMESPACE}.svc.cluster.local", "port": {"number": 80}}, "weight": 60},
        {"destination": {"host": "demo-green", "port": {"number": 80}}, "weight": 40},
    ]
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": metadata(ENDPOINT, annotations=annotations),
        "spec": {"hosts": ["ml.example.internal"], "http": [{"name": "weighted", "route": destinations}]},
    }


def authorization_policy(action: str) -> Obj:
    return {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": metadata(f"{ENDPOINT}-{action.lower()}"),
            "spec": {"selector": {"matchLabels": {"endpointgen.io/endpoint": ENDPOINT}}, "action": action}}


def request_authentication() -> Obj:
    return {"apiVersion": "security.istio.io/v1", "kind": "RequestAuthentication", "metadata": metadata(ENDPOINT),
            "spec": {"selector": {"matchLabels": {"endpointgen.io/endpoint": ENDPOINT}}}}


def endpoint_objects(auth: str | None = None) -> list[Obj]:
    """One endpoint's objects: two versions behind a weighted VirtualService, with the auth objects `auth` needs."""
    objects = [deployment("demo-blue"), deployment("demo-green"), service("demo-blue"), service("demo-green"),
               hpa("demo-blue"), virtual_service(auth)]
    if auth == "key":
        objects.append(authorization_policy("CUSTOM"))
    if auth == "token":
        objects += [request_authentication(), authorization_policy("ALLOW")]
    return objects


def scoring(obj: Obj) -> Obj:
    """The scoring container of a Deployment."""
    return obj["spec"]["template"]["spec"]["containers"][0]
