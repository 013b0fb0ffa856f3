"""The policies every rendered environment must meet, by the id a spec's `waivers:` names.

The ids are part of the spec's vocabulary (spec/rules.py refuses an unknown one); check/policy.py enforces them.
"""

from __future__ import annotations

POLICIES: dict[str, str] = {
    "pss-privileged": "containers are not privileged",
    "pss-privilege-escalation": "allowPrivilegeEscalation is false",
    "pss-capabilities": "capabilities drop ALL and add nothing but NET_BIND_SERVICE",
    "pss-run-as-non-root": "pods or all containers set runAsNonRoot: true and no runAsUser 0",
    "pss-seccomp": "seccompProfile is RuntimeDefault or Localhost",
    "pss-host-namespaces": "no hostNetwork, hostPID or hostIPC",
    "pss-host-path": "no hostPath volumes",
    "pss-host-ports": "no hostPort",
    "resources-set": "every container requests cpu and memory",
    "probes-set": "every long-running container has liveness and readiness probes",
    "image-pinned": "images carry a tag other than latest, or a digest",
    "traffic-weights": "weighted routes have integer weights summing to 100",
    "route-destination-exists": "every route destination is a rendered Service",
    "auth-objects-present": "an endpoint with auth on has its RequestAuthentication/AuthorizationPolicy",
    "no-secret-material": "no Secret objects and no secret-looking values",
}
