"""What `diff` says of a new version, a new endpoint and a platform change, in words a reviewer checks.

Each test commits the rendered example repo as the base, changes it with the editing commands (or the
environment file by hand, as a platform team does), and reads the summary `diff --base HEAD` prints.
"""

from __future__ import annotations

import re
from pathlib import Path

from conftest import replace_in
from test_edit_cli import BODY, base, git, ok  # noqa: F401 - base is a fixture
from test_pr import PROD_SENTIMENT, Run, commit, diff

from generator.pr.platform import describe_object

PROD_ENV = "environments/prod/environment.yaml"
FRAUD = "environments/prod/endpoints/fraud.yaml"


def summary(run_cli: Run, *more: str) -> list[str]:
    """The lines in words: everything before the manifest diff."""
    return diff(run_cli, *more).split("\n\n", 1)[0].splitlines()


def edit_environment(root: Path, *replacements: tuple[str, str]) -> None:
    for old, new in replacements:
        replace_in(root / PROD_ENV, old, new)


def test_a_new_version_is_described_whole(base: Path, run_cli: Run) -> None:
    ok(run_cli(["create-version", "sentiment", "amber", "--env", "prod", *BODY, "--traffic-percentile", "5",
                "--gpu-cores", "1", "--num-replicas", "3", "--cpu-cores", "2", "--memory-gb", "8",
                "--cpu-cores-limit", "4", "--memory-gb-limit", "16"]), PROD_SENTIMENT)
    ok(run_cli(["create-version", "image-classifier", "resnet-v4", "--env", "prod", *BODY,
                "--model", "labels:2=https://models.example.com/labels/2", "--traffic-percentile", "20",
                "--autoscale-min-replicas", "2", "--autoscale-max-replicas", "4",
                "--autoscale-target-utilization", "50"]), "environments/prod/endpoints/image-classifier.yaml")
    assert summary(run_cli) == [
        "image-classifier (prod): resnet-v3 traffic 100% -> 80%, resnet-v4 traffic 0% -> 20%; version resnet-v4 "
        "added: 20% of traffic, image acr.azurecr.io/scoring/fraud:1.0, models fraud-gbm:3 and labels:2, 0.5 CPU "
        "and 1 GB memory, autoscaling 2 to 4 replicas at 50% utilization, Azure AD token auth for "
        "api://ml-endpoints-prod or 6e1d2c3b-4a5f-4e6d-8c7b-9a0f1e2d3c4b, needing role Scoring.Invoke",
        # 0.5 CPU and 1 GB come from the environment's defaults, the rest from the command
        "sentiment (prod): blue traffic 90% -> 85%, amber traffic 0% -> 5%; version amber added: 5% of traffic, "
        "image acr.azurecr.io/scoring/fraud:1.0, model fraud-gbm:3, 2 CPU and 8 GB memory (limit 4 CPU and 16 GB), "
        "1 GPU, 3 replicas, key auth (keys sentiment-primary-key and sentiment-secondary-key in Key Vault "
        "kv-ml-prod)",
    ]


def test_a_new_endpoint_names_its_namespace_hosts_and_auth(base: Path, run_cli: Run) -> None:
    edit_environment(base, ("    - ml.contoso.com\n", "    - ml.contoso.com\n    - scoring.contoso.com\n"))
    commit(base, run_cli, "a second host")
    ok(run_cli(["new", "fraud", "--env", "prod", "--namespace", "ml-fraud", "--version-name", "gbm-v3", *BODY,
                "--token-auth-enabled", "--enable-app-insights"]), FRAUD)
    ok(run_cli(["create-version", "fraud", "gbm-v4", "--env", "prod", *BODY, "--traffic-percentile", "25",
                "--is-control-version-type", "--model", "labels:2=https://models.example.com/labels/2"]), FRAUD)
    per_version = "image acr.azurecr.io/scoring/fraud:1.0, {models}, 0.5 CPU and 1 GB memory, autoscaling 1 to 6 " \
                  "replicas at 70% utilization, {role}"
    sentences = [
        "new endpoint (gbm-v3 75%, gbm-v4 25%)",
        "namespace ml-fraud, scored at https://ml.contoso.com/api/v1/service/fraud/score and "
        "https://scoring.contoso.com/api/v1/service/fraud/score, Azure AD token auth for api://ml-endpoints-prod or "
        "6e1d2c3b-4a5f-4e6d-8c7b-9a0f1e2d3c4b, needing role Scoring.Invoke, App Insights on",
        "gbm-v3: " + per_version.format(models="model fraud-gbm:3", role="the default version"),
        "gbm-v4: " + per_version.format(models="models fraud-gbm:3 and labels:2", role="the control version"),
    ]
    assert summary(run_cli)[0] == "fraud (prod): " + "; ".join(sentences)
    markdown = diff(run_cli, "--format", "markdown")
    assert "### fraud (prod)\n\n" + "".join(f"- {s}\n" for s in sentences) + "\n```mermaid\n" in markdown


def test_a_new_endpoint_without_auth_says_anyone_can_score(base: Path, run_cli: Run) -> None:
    ok(run_cli(["new", "open", "--env", "prod", "--version-name", "first", *BODY, "--no-auth-enabled"]),
       "environments/prod/endpoints/open.yaml")
    [words] = summary(run_cli)
    assert words.startswith("open (prod): new endpoint (first 100%); namespace ml-endpoints, scored at "
                            "https://ml.contoso.com/api/v1/service/open/score, no auth: anyone who reaches the "
                            "gateway can score; first: image ")


def test_a_new_namespace_brings_its_platform_objects(base: Path, run_cli: Run) -> None:
    ok(run_cli(["new", "fraud", "--env", "prod", "--namespace", "ml-fraud", "--version-name", "gbm-v3", *BODY]),
       FRAUD)
    fraud, platform = summary(run_cli)
    assert fraud.startswith("fraud (prod): new endpoint (gbm-v3 100%); namespace ml-fraud, scored at "
                            "https://ml.contoso.com/api/v1/service/fraud/score, key auth (keys fraud-primary-key in "
                            "Key Vault kv-ml-prod); gbm-v3: ")
    assert platform == (
        "platform (prod): namespace ml-fraud added (Istio revision asm-1-25) with NetworkPolicy endpointgen-scoring, "
        "PeerAuthentication default, TriggerAuthentication endpointgen-prometheus; gateway "
        "aks-istio-ingress/ml-endpoints adds ml-fraud/ml.contoso.com; the key-auth authorizer's pods roll "
        "(spec.volumes changes); the key-auth authorizer gets the primary key "
        "of ml-fraud/fraud (Key Vault secret fraud-primary-key); NetworkPolicy endpointgen-auth/endpointgen-key-auth: "
        "spec.ingress[0].from[1].namespaceSelector.matchLabels.kubernetes.io/metadata.name unset -> ml-fraud")


def test_platform_changes_in_words(base: Path, run_cli: Run) -> None:
    edit_environment(
        base,
        ("    - ml.contoso.com\n", "    - ml-eu.contoso.com\n"),
        ("tls_credential_name: ml-contoso-com-tls", "tls_credential_name: ml-contoso-com-tls-2027"),
        ("  revision: asm-1-25                 # istio.io/rev label of the AKS Istio add-on\n",
         "  revision: asm-1-25\n  mesh_config:\n    accessLogFile: /dev/stdout\n"),
        ("    client_id: 7c8d9e0f-1a2b-4c3d-8e4f-5a6b7c8d9e0f   # the only identity that reads the scoring keys\n",
         "    client_id: 7c8d9e0f-1a2b-4c3d-8e4f-5a6b7c8d9e0f\n    image: openpolicyagent/opa:1.16.0-envoy-static\n"
         "    replicas: 3\n"))
    *endpoints, platform = summary(run_cli)
    assert endpoints == [  # each endpoint's VirtualService names the hosts
        f"{name} (prod): virtualservice-{name}.yaml changes with no change to its spec (from the environment's "
        "settings or endpointgen's templates)" for name in ("image-classifier", "sentiment")]
    assert platform.split("; ") == [
        "platform (prod): environment.yaml: istio.hosts [ml.contoso.com] -> [ml-eu.contoso.com], "
        "istio.gateway.tls_credential_name ml-contoso-com-tls -> ml-contoso-com-tls-2027, "
        "istio.mesh_config.accessLogFile unset -> /dev/stdout, key_auth.authorizer.image unset -> "
        "openpolicyagent/opa:1.16.0-envoy-static and 1 more",
        "gateway aks-istio-ingress/ml-endpoints adds ml-endpoints/ml-eu.contoso.com and drops "
        "ml-endpoints/ml.contoso.com",
        "gateway aks-istio-ingress/ml-endpoints TLS credential ml-contoso-com-tls -> ml-contoso-com-tls-2027",
        "key-auth authorizer image openpolicyagent/opa:1.15.2-envoy-static -> openpolicyagent/opa:1.16.0-envoy-static",
        "key-auth authorizer replicas 2 -> 3",
        "the key-auth authorizer's pods roll",
        "mesh config of Istio revision asm-1-25: accessLogFile unset -> /dev/stdout",
    ]


def test_an_istio_revision_swap_moves_namespaces_and_rolls_the_authorizer(base: Path, run_cli: Run) -> None:
    edit_environment(base, ("revision: asm-1-25", "revision: asm-1-26"))
    platform = summary(run_cli)[2]
    assert platform.split("; ") == [
        "platform (prod): environment.yaml: istio.revision asm-1-25 -> asm-1-26",
        "namespace endpointgen-auth moves from Istio revision asm-1-25 to asm-1-26",
        "namespace ml-endpoints moves from Istio revision asm-1-25 to asm-1-26",
        "the key-auth authorizer's pods roll (metadata.labels.istio.io/rev asm-1-25 -> asm-1-26)",
        "mesh config of Istio revision asm-1-25 removed",
        "mesh config of Istio revision asm-1-26 added (extension providers: endpointgen-key-auth)",
    ]


def test_the_last_key_auth_endpoint_takes_the_authorizer_with_it(base: Path, run_cli: Run) -> None:
    ok(run_cli(["update", "sentiment", "--env", "dev", "--token-auth-enabled", "--no-auth-enabled"]),
       "environments/dev/endpoints/sentiment.yaml")
    endpoint, platform = summary(run_cli, "--env", "dev")
    assert endpoint == "sentiment (dev): key auth on -> off; token auth off -> on"
    assert platform.split("; ") == [
        "platform (dev): namespace endpointgen-auth removed: Flux deletes it with everything in it (ConfigMap "
        "endpointgen-key-auth, NetworkPolicy endpointgen-key-auth, PeerAuthentication default, PodDisruptionBudget "
        "endpointgen-key-auth, SecretStore endpointgen-key-auth-kv-ml-dev, Service endpointgen-key-auth, "
        "ServiceAccount endpointgen-key-auth)",
        "key-auth authorizer removed: no endpoint of this environment uses key auth",
        "the key-auth authorizer no longer gets the primary key of ml-endpoints-dev/sentiment (Key Vault secret "
        "sentiment-primary-key)",
        "mesh config of Istio revision asm-1-25 removed",
        "Flux Kustomization flux-system/dev-key-auth removed",
    ]


def test_platform_words_cannot_inject_markdown(base: Path, run_cli: Run) -> None:
    edit_environment(base, ("description: Production scoring endpoints", 'description: "</details><img src=x>"'))
    markdown = diff(run_cli, "--format", "markdown")
    assert ("### platform (prod)\n\n- environment.yaml: description Production scoring endpoints -> "
            "&lt;/details>&lt;img src=x>\n") in markdown
    assert "<img" not in markdown


def test_changed_fields_are_named_the_first_few_then_counted() -> None:
    def config(values: dict[str, str]) -> dict[str, object]:
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "ns"},
                "data": values}
    old = config({key: "1" for key in "abcdef"})
    new = config({**{key: "2" for key in "abcde"}, "f": "line one\nline two"})
    assert describe_object(("ConfigMap", "ns", "x"), old, new) == [
        "ConfigMap ns/x: data.a 1 -> 2, data.b 1 -> 2, data.c 1 -> 2, data.d 1 -> 2 and 2 more"]
    assert describe_object(("ConfigMap", "ns", "x"), config({"f": "1"}), config({"f": "a\nb"})) == [
        "ConfigMap ns/x: data.f changed"]  # a multi-line value is not shown
    assert describe_object(("ConfigMap", "ns", "x"), old, old) == []
    assert re.fullmatch(r"ConfigMap ns/x (added|removed)", describe_object(("ConfigMap", "ns", "x"), None, old)[0])
