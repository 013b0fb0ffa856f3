"""Key auth, offline: the rendered authorizer, and its policy evaluated by the OPA-Envoy plugin's own binary.

The policy and its data come from the rendered objects: policy.rego and data.json from the authorizer's
ConfigMap, and the keys from the files the kubelet would write for the Deployment's projected volume of the
Secrets External Secrets makes from the rendered ExternalSecrets (their template rendered by the operator's own
engine), loaded by OPA's own loader with the paths the Deployment gives `opa run` (`/policy apikeys:/keys`),
here through `opa eval`. Requests are shaped as OPA-Envoy
builds its input from Envoy's ext_authz CheckRequest; tests/dataplane/test_keyauth_e2e.py sends real ones.
The policy's unit tests (generator/render/keyauth_test.rego) run under `opa test`.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from external_secrets import synced_secrets
from generator.check import gotools
from render_helpers import copy_examples, manifests, of_kind, rendered_files, run_cli, version_spec, write_endpoint

PRIMARY, SECONDARY = "mlk_Sentiment0Primary0aaaaaaaaaaaaaaa", "mlk_Sentiment1Secondary1bbbbbbbbbbbbb"
FRAUD_KEY = "mlk_Fraud2Primary2ccccccccccccccccccc"
KEYS = {  # vault -> secret -> the value in Key Vault; never in git, only in this test
    "kv-ml-prod": {"sentiment-primary-key": PRIMARY, "sentiment-secondary-key": SECONDARY},
    "kv-fraud-keys": {"fraud-key-1": FRAUD_KEY},
}
DENIED = {"allowed": False, "http_status": 401, "headers": {"www-authenticate": "Bearer"}, "body": ""}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """prod's examples plus a keyed endpoint with keys in another Key Vault and namespace; its rendered objects."""
    root = copy_examples(tmp_path_factory.mktemp("keyauth") / "repo")
    write_endpoint(root, "prod", "fraud", [version_spec("gbm-v1")], namespace="fraud-ml",
                   auth_keys={"key_vault": "kv-fraud-keys", "primary_key_secret": "fraud-key-1"})
    objects = manifests(rendered_files(root, ["prod"]))
    return {"root": root, "objects": objects}


def platform(lab: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return of_kind({r: o for r, o in lab["objects"].items() if "/key-auth/" in r}, kind)


def key_files(lab: dict[str, Any], root: Path, vaults: dict[str, dict[str, str]]) -> None:
    """Write what the kubelet would for the authorizer's projected volume: each optional Secret's items, of the
    Secrets External Secrets syncs from `vaults` (a key missing from Key Vault: no Secret, so no file)."""
    deployment = platform(lab, "Deployment")["endpointgen-key-auth"]["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in deployment["containers"][0]["volumeMounts"]}
    secrets = synced_secrets(lab["objects"].values(), vaults)
    namespace = platform(lab, "Deployment")["endpointgen-key-auth"]["metadata"]["namespace"]
    [volume] = [v for v in deployment["volumes"] if "projected" in v]
    for source in volume["projected"]["sources"]:
        ref = source["secret"]
        assert ref["optional"] is True
        data = secrets.get((namespace, ref["name"]))
        for item in ref["items"] if data is not None else []:
            path = root / mounts[volume["name"]].lstrip("/") / item["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(data[item["key"]])


def opa_data(lab: dict[str, Any], root: Path) -> list[str]:
    """The authorizer's data arguments, as `opa` flags on this machine: its policy folder (the ConfigMap's
    policy.rego and data.json) and `apikeys:<the keys folder>`, the paths of the Deployment's `run` arguments."""
    container = platform(lab, "Deployment")["endpointgen-key-auth"]["spec"]["template"]["spec"]["containers"][0]
    configmap = platform(lab, "ConfigMap")["endpointgen-key-auth"]
    policy = root / "policy"
    policy.mkdir(exist_ok=True)
    for name in ("policy.rego", "data.json"):
        (policy / name).write_text(configmap["data"][name])
    paths = [a for a in container["args"] if not a.startswith("-") and a != "run"]
    assert paths == ["/policy", "apikeys:/keys"]
    return ["--data", str(policy), "--data", f"apikeys:{root / 'keys'}"]


def decide(lab: dict[str, Any], data: list[str], principal: str | None, authorization: str | None
           ) -> dict[str, Any]:
    """OPA-Envoy's decision for a request to the workload `principal` with that Authorization header."""
    headers = {":method": "POST", ":path": "/score", ":authority": "ml.contoso.com", "content-type": "application/json",
               "x-forwarded-proto": "https"}
    if authorization is not None:
        headers["authorization"] = authorization
    attributes: dict[str, Any] = {
        "source": {"address": {"socketAddress": {"address": "10.244.1.23", "portValue": 51234}},
                   "principal": "spiffe://cluster.local/ns/aks-istio-ingress/sa/aks-istio-ingressgateway-external"},
        "destination": {"address": {"socketAddress": {"address": "10.244.2.7", "portValue": 5001}}},
        "request": {"http": {"id": "9187", "method": "POST", "headers": headers, "path": "/score",
                             "host": "ml.contoso.com", "scheme": "https", "protocol": "HTTP/1.1"}},
        "metadataContext": {},
    }
    if principal is not None:
        attributes["destination"]["principal"] = principal
    request = {"attributes": attributes, "parsed_path": ["score"], "parsed_query": {}, "parsed_body": None,
               "version": {"encoding": "protojson", "ext_authz": "v3"}}
    result = subprocess.run([str(gotools.binary("opa", "opa-envoy-plugin")), "eval", "--format", "json", *data,
                             "--stdin-input", "data.envoy.authz.allow"], input=json.dumps(request),
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout)["result"][0]["expressions"][0]["value"]  # type: ignore[no-any-return]


SENTIMENT = "spiffe://cluster.local/ns/ml-endpoints/sa/sentiment"
FRAUD = "spiffe://cluster.local/ns/fraud-ml/sa/fraud"


@pytest.mark.parametrize("principal, authorization, allowed", [
    (SENTIMENT, f"Bearer {PRIMARY}", True),
    (SENTIMENT, f"Bearer {SECONDARY}", True),
    (SENTIMENT, f"bearer {PRIMARY}", True),  # the scheme is case-insensitive (RFC 7235)
    (FRAUD, f"Bearer {FRAUD_KEY}", True),  # another Key Vault, another namespace
    (SENTIMENT, None, False),  # no header
    (SENTIMENT, f"Basic {PRIMARY}", False),  # another scheme
    (SENTIMENT, PRIMARY, False),  # no scheme
    (SENTIMENT, "Bearer ", False),  # an empty key
    (SENTIMENT, "Bearer", False),
    (SENTIMENT, f"Bearer {FRAUD_KEY}", False),  # another endpoint's key
    (FRAUD, f"Bearer {PRIMARY}", False),
    (SENTIMENT, "Bearer mlk_Sentiment0Primary0aaaaaaaaaaaaaab", False),  # a wrong key
    (SENTIMENT, f"Bearer {PRIMARY[:-1]}", False),  # a prefix of the key
    (SENTIMENT, f"Bearer {PRIMARY}x", False),
    (SENTIMENT, f"Bearer  {PRIMARY}", False),  # two spaces: not the key
    (SENTIMENT, f"Bearer {PRIMARY} {PRIMARY}", False),
    (None, f"Bearer {PRIMARY}", False),  # no workload identity (not mTLS): the endpoint is unknown
    ("spiffe://evil.example/ns/ml-endpoints/sa/sentiment", f"Bearer {PRIMARY}", False),  # another trust domain
    ("spiffe://cluster.local/ns/ml-endpoints/sa/sentiment/x", f"Bearer {PRIMARY}", False),
    ("spiffe://cluster.local/ns/ml-endpoints/sa/image-classifier", f"Bearer {PRIMARY}", False),
])
def test_the_decision(lab: dict[str, Any], tmp_path: Path, principal: str | None, authorization: str | None,
                      allowed: bool) -> None:
    key_files(lab, tmp_path, KEYS)
    decision = decide(lab, opa_data(lab, tmp_path), principal, authorization)
    if allowed:
        assert decision == {"allowed": True, "headers": {}, "request_headers_to_remove": ["authorization"]}
    else:
        assert decision == DENIED  # 401, and nothing says why


def test_rotation_old_key_refused_once_its_file_changes(lab: dict[str, Any], tmp_path: Path) -> None:
    key_files(lab, tmp_path, KEYS)
    assert decide(lab, opa_data(lab, tmp_path), SENTIMENT, f"Bearer {PRIMARY}")["allowed"] is True
    rotated = {**KEYS, "kv-ml-prod": {**KEYS["kv-ml-prod"], "sentiment-primary-key": "mlk_Rotated9Primary9zzzzzzzzzzzzzzz"}}
    key_files(lab, tmp_path, rotated)  # Key Vault's new version, synced by External Secrets' refresh
    data = opa_data(lab, tmp_path)  # what opa run --watch reloads
    assert decide(lab, data, SENTIMENT, f"Bearer {PRIMARY}") == DENIED
    assert decide(lab, data, SENTIMENT, "Bearer mlk_Rotated9Primary9zzzzzzzzzzzzzzz")["allowed"] is True
    assert decide(lab, data, SENTIMENT, f"Bearer {SECONDARY}")["allowed"] is True  # clients move one at a time


def test_a_short_key_never_matches(lab: dict[str, Any], tmp_path: Path) -> None:
    """Fail closed: a key shorter than 16 characters is never accepted (a number is just a string now)."""
    weak = {**KEYS, "kv-ml-prod": {"sentiment-primary-key": "short", "sentiment-secondary-key": "12345678901234567890"}}
    key_files(lab, tmp_path, weak)
    data = opa_data(lab, tmp_path)
    assert decide(lab, data, SENTIMENT, "Bearer short") == DENIED
    assert decide(lab, data, SENTIMENT, "Bearer 12345678901234567890")["allowed"] is True


@pytest.mark.parametrize("malformed", ['a": b: {c', "line\nbreak and \u2028 and --- and ]", "\x00\x01 binary"])
def test_one_missing_or_malformed_key_fails_alone(lab: dict[str, Any], tmp_path: Path, malformed: str) -> None:
    """sentiment's primary is missing from Key Vault and its secondary is not YAML, JSON or text at all: fraud's
    key still passes, and so does sentiment's secondary (any value is only a digest in valid JSON)."""
    vaults = {"kv-ml-prod": {"sentiment-secondary-key": malformed}, "kv-fraud-keys": KEYS["kv-fraud-keys"]}
    key_files(lab, tmp_path, vaults)
    data = opa_data(lab, tmp_path)  # OPA loads the folder: one bad file would fail the whole load
    assert decide(lab, data, FRAUD, f"Bearer {FRAUD_KEY}")["allowed"] is True
    assert decide(lab, data, SENTIMENT, f"Bearer {PRIMARY}") == DENIED
    if " " not in malformed:
        assert decide(lab, data, SENTIMENT, f"Bearer {malformed}")["allowed"] is True


def test_the_authorizer_holds_digests_not_keys(lab: dict[str, Any], tmp_path: Path) -> None:
    key_files(lab, tmp_path, KEYS)
    text = "".join(p.read_text() for p in (tmp_path / "keys").rglob("*.json"))
    assert PRIMARY not in text and SECONDARY not in text and FRAUD_KEY not in text
    assert json.loads((tmp_path / "keys/ml-endpoints/sentiment/primary/key.json").read_text()) == {
        "sha256": hashlib.sha256(PRIMARY.encode()).hexdigest(), "length": len(PRIMARY)}


def test_keys_are_compared_in_constant_time_and_never_printed(lab: dict[str, Any]) -> None:
    policy = platform(lab, "ConfigMap")["endpointgen-key-auth"]["data"]["policy.rego"]
    assert "crypto.hmac.equal(crypto.sha256(key), candidate.sha256)" in policy
    assert "print(" not in policy and "trace(" not in policy
    assert "candidate == " not in policy and "key == " not in policy
    config = yaml.safe_load(platform(lab, "ConfigMap")["endpointgen-key-auth"]["data"]["config.yaml"])
    assert config["decision_logs"] == {"console": False}  # decision logs would hold the Authorization header


def test_the_provider_is_registered_and_served(lab: dict[str, Any]) -> None:
    objects = lab["objects"]
    policies = [p for p in of_kind(objects, "AuthorizationPolicy").values() if p["spec"]["action"] == "CUSTOM"]
    assert {p["metadata"]["name"] for p in policies} == {"sentiment-require-key", "fraud-require-key"}
    mesh = of_kind({r: o for r, o in objects.items() if "/platform/mesh/" in r}, "ConfigMap")[
        "istio-shared-configmap-asm-1-25"]
    assert mesh["metadata"]["namespace"] == "aks-istio-system"
    [provider] = yaml.safe_load(mesh["data"]["mesh"])["extensionProviders"]
    assert {p["spec"]["provider"]["name"] for p in policies} == {provider["name"]}
    grpc = provider["envoyExtAuthzGrpc"]
    assert grpc["failOpen"] is False
    service = platform(lab, "Service")["endpointgen-key-auth"]
    assert grpc["service"] == f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local"
    assert grpc["port"] == service["spec"]["ports"][0]["port"]
    deployment = platform(lab, "Deployment")["endpointgen-key-auth"]
    pod = deployment["spec"]["template"]
    assert all(pod["metadata"]["labels"].get(k) == v for k, v in service["spec"]["selector"].items())
    container = pod["spec"]["containers"][0]
    assert container["image"] == "openpolicyagent/opa:1.15.2-envoy-static"  # the maintainers' OPA-Envoy image
    assert service["spec"]["ports"][0]["targetPort"] in {p["name"] for p in container["ports"]}
    assert deployment["spec"]["replicas"] >= 2
    pdb = platform(lab, "PodDisruptionBudget")["endpointgen-key-auth"]
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health?plugins"
    assert "--addr=localhost:8181" in container["args"]  # the REST API (which could read the keys) stays local
    assert container["resources"]["limits"]["memory"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    # External Secrets reads Key Vault as the ServiceAccount's identity; the pod itself gets no Azure token
    assert "azure.workload.identity/use" not in pod["metadata"]["labels"]
    assert not any("csi" in v for v in pod["spec"]["volumes"])


def test_each_key_is_an_external_secret_of_its_own(lab: dict[str, Any]) -> None:
    """One SecretStore per Key Vault (the authorizer's workload identity), one ExternalSecret per key, each
    naming only its secret; the Secrets they write are what the projected volume takes, each optional."""
    stores = platform(lab, "SecretStore")
    assert {s["spec"]["provider"]["azurekv"]["vaultUrl"] for s in stores.values()} == {
        "https://kv-ml-prod.vault.azure.net", "https://kv-fraud-keys.vault.azure.net"}
    assert all(s["spec"]["provider"]["azurekv"]["authType"] == "WorkloadIdentity"
               and s["spec"]["provider"]["azurekv"]["serviceAccountRef"] == {"name": "endpointgen-key-auth"}
               for s in stores.values())
    externals = platform(lab, "ExternalSecret")
    assert {name: e["spec"]["data"][0]["remoteRef"]["key"] for name, e in externals.items()} == {
        "ml-endpoints.sentiment.primary": "sentiment-primary-key",
        "ml-endpoints.sentiment.secondary": "sentiment-secondary-key", "fraud-ml.fraud.primary": "fraud-key-1"}
    assert all(e["spec"]["secretStoreRef"]["name"] in stores and e["spec"]["target"]["deletionPolicy"] == "Delete"
               for e in externals.values())  # a key deleted in Key Vault is revoked, not kept
    [volume] = [v for v in platform(lab, "Deployment")["endpointgen-key-auth"]["spec"]["template"]["spec"]["volumes"]
                if "projected" in v]
    assert {s["secret"]["name"] for s in volume["projected"]["sources"]} == set(externals)
    text = json.dumps(lab["objects"])
    assert not any(value in text for vault in KEYS.values() for value in vault.values())


def test_network_policy_admits_only_endpoint_namespaces_to_the_authorizer(lab: dict[str, Any]) -> None:
    policy = platform(lab, "NetworkPolicy")["endpointgen-key-auth"]
    grpc = policy["spec"]["ingress"][0]
    assert [p["port"] for p in grpc["ports"]] == [9191]
    sources = {f["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for f in grpc["from"]}
    assert sources == {"ml-endpoints", "fraud-ml"}


def test_snippet_mode_renders_no_mesh_configmap_and_prints_the_snippet(tmp_path: Path) -> None:
    root = copy_examples(tmp_path / "repo")
    path = root / "environments" / "prod" / "environment.yaml"
    data = yaml.safe_load(path.read_text())
    data["key_auth"] = {"mesh_config": "snippet"}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    objects = manifests(rendered_files(root, ["prod"]))
    assert "istio-shared-configmap-asm-1-25" not in of_kind(objects, "ConfigMap")
    assert "endpointgen-key-auth" in of_kind(objects, "Deployment")
    result = run_cli(root, "mesh-config", "--env", "prod")
    assert result.exit_code == 0
    snippet = yaml.safe_load(result.stdout)
    assert snippet["extensionProviders"][0]["name"] == "endpointgen-key-auth"


def test_no_keyed_endpoint_no_authorizer(tmp_path: Path) -> None:
    root = copy_examples(tmp_path / "repo")
    spec = root / "environments" / "prod" / "endpoints" / "sentiment.yaml"
    data = yaml.safe_load(spec.read_text())
    data["auth_enabled"] = False
    data.pop("auth_keys")
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    files = rendered_files(root, ["prod"])
    assert not any("/key-auth/" in rel for rel in files)


def test_the_authorizer_namespace_is_not_an_endpoint_namespace(tmp_path: Path) -> None:
    root = copy_examples(tmp_path / "repo")
    write_endpoint(root, "prod", "squatter", [version_spec("v-one")], namespace="endpointgen-auth",
                   auth_enabled=False)
    result = run_cli(root, "validate", "--specs-only", "--env", "prod")
    assert result.exit_code == 1
    assert "namespace 'endpointgen-auth' belongs to the cluster or the platform" in result.stderr


def test_the_policy_unit_tests_pass_with_opa_test(tmp_path: Path) -> None:
    """generator/render/keyauth_test.rego under `opa test`; the same tests fail on a policy that accepts short keys."""
    opa = str(gotools.binary("opa", "opa"))
    policy = Path(__file__).resolve().parent.parent / "generator" / "render"
    result = subprocess.run([opa, "test", str(policy / "keyauth.rego"), str(policy / "keyauth_test.rego")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("PASS: 6/6")
    weakened = tmp_path / "keyauth.rego"
    weakened.write_text((policy / "keyauth.rego").read_text().replace("min_key_length := 16", "min_key_length := 1"))
    result = subprocess.run([opa, "test", str(weakened), str(policy / "keyauth_test.rego")], capture_output=True,
                            text=True)
    assert result.returncode != 0 and "test_short_or_malformed_keys_never_match: FAIL" in result.stdout
