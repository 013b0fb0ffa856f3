"""Generate a synthetic endpointgen GitOps repository for benchmarks.

Realistic specs: every endpoint has several versions with models, a canary
share, resources and probes; every tenth runs on GPUs; most use key or token
auth. The output is deterministic for the same arguments.

    python bench/synth.py OUT [--endpoints 1000] [--versions 3] [--envs dev,staging,prod]
"""

from __future__ import annotations

import argparse
import shutil
import uuid
from pathlib import Path

ENVIRONMENT = """\
name: {env}
cluster_name: aks-ml-{env}
kubernetes_version: "1.33"
namespace: ml-{env}
istio:
  revision: asm-1-25
  gateway:
    name: ml-endpoints
    namespace: aks-istio-ingress
    selector: aks-istio-ingressgateway-external
  hosts:
    - ml.{env}.contoso.com
token_auth:
  issuer: https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0
  audiences:
    - api://ml-endpoints-{env}
key_vault:
  name: kv-ml-{env}
  tenant_id: 72f988bf-86f1-41af-91ab-2d7cd011db47
  client_id: 5b1c7f3e-2d4a-4c8e-9f6b-0a1b2c3d4e5f
app_insights:
  instrumentation_key_secret: appinsights-instrumentation-key
  connection_string_secret: appinsights-connection-string
model_loader:
  image: mlacr{env}.azurecr.io/platform/model-loader:1.3.0
defaults:
  cpu_cores: 0.5
  memory_gb: 1
  autoscale_max_replicas: 6
"""

VERSION_NAMES = ["blue", "green", "canary", "delta", "echo", "foxtrot"]


def endpoint_spec(index: int, env: str, versions: int) -> str:
    name = f"model-{index:04d}"
    auth = ("auth_enabled: true\n", "token_auth_enabled: true\n", "auth_enabled: false\n")[
        0 if index % 10 < 6 else 1 if index % 10 < 9 else 2]
    gpu = index % 10 == 7
    lines = [
        f"# Synthetic endpoint {index} for the endpointgen benchmark.",
        f"name: {name}",
        f"namespace: team-{index % 20:02d}",
        f"description: Synthetic scoring endpoint number {index}",
        "tags:",
        f"  team: team-{index % 20:02d}",
        f"  cost-center: \"{4000 + index % 50}\"",
        "properties:",
        f"  owner: team-{index % 20:02d}@contoso.com",
        auth.rstrip("\n"),
        # an identity per endpoint: one identity holds at most 20 federated credentials (README, Identities)
        f"workload_identity_client_id: {uuid.uuid5(uuid.NAMESPACE_URL, f'endpointgen-bench/{env}/{name}')}",
        f"enable_app_insights: {'true' if index % 3 == 0 else 'false'}",
        "versions:",
    ]
    for v in range(versions):
        version = VERSION_NAMES[v]
        lines += [
            f"  - version_name: {version}",
            f"    description: Version {version} of {name}",
        ]
        if v == 0:
            lines += ["    is_default: true", "    is_control_version_type: true"]
        else:
            lines.append(f"    traffic_percentile: {10 if v == 1 else 5}")
        lines += [
            "    models:",
            f"      - name: {name}-model",
            f"        version: {v + 1}",
            f"        uri: https://mlmodels{env}.blob.core.windows.net/models/{name}/{v + 1}",
            "    inference_config:",
            f"      image: mlacr{env}.azurecr.io/scoring/{name}:1.{v}.{index % 7}",
            "      entry_script: score.py",
            "      environment_variables:",
            "        LOG_LEVEL: info",
        ]
        if gpu:
            lines += ["    gpu_cores: 1", "    cpu_cores: 4", "    memory_gb: 16", "    num_replicas: 2"]
        else:
            lines += ["    cpu_cores: 1", "    memory_gb: 2", "    cpu_cores_limit: 2", "    memory_gb_limit: 4",
                      f"    autoscale_min_replicas: {2 if v == 0 else 1}", "    autoscale_max_replicas: 8"]
    return "\n".join(lines) + "\n"


def generate(out: Path, endpoints: int, versions: int, envs: list[str]) -> None:
    """Write environments/<env>/ for every environment; removes what `out` had."""
    shutil.rmtree(out / "environments", ignore_errors=True)
    for env in envs:
        base = out / "environments" / env
        (base / "endpoints").mkdir(parents=True)
        (base / "environment.yaml").write_text(ENVIRONMENT.format(env=env))
        for index in range(endpoints):
            (base / "endpoints" / f"model-{index:04d}.yaml").write_text(endpoint_spec(index, env, versions))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--versions", type=int, default=3, choices=range(1, 7))
    parser.add_argument("--envs", default="dev,staging,prod")
    args = parser.parse_args()
    generate(args.out, args.endpoints, args.versions, args.envs.split(","))


if __name__ == "__main__":
    main()
