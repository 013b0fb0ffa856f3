"""External Secrets Operator's sync, for tests: the Secrets its controller writes for rendered ExternalSecrets.

A stand-in for the controller's loop (read each remote key from the SecretStore's Key Vault; any missing key
fails that ExternalSecret alone and writes nothing), with the target's template rendered by the operator's own
engine (`pkg/template/v2` of external-secrets v0.16.2, built as tools/externalsecrets `esotemplate`).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlparse

from generator.check import gotools

KeyVaults = Mapping[str, Mapping[str, str]]  # vault name -> secret name -> value


def render_template(template: Mapping[str, str], data: Mapping[str, str]) -> dict[str, str]:
    """The target Secret's data as External Secrets' template engine v2 renders it."""
    result = subprocess.run([str(gotools.binary("externalsecrets", "esotemplate"))],
                            input=json.dumps({"template": dict(template), "data": dict(data)}),
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def synced_secrets(objects: Iterable[Mapping[str, Any]], vaults: KeyVaults) -> dict[tuple[str, str], dict[str, str]]:
    """(namespace, name) -> data of every Secret the ExternalSecrets among `objects` make from `vaults`."""
    objects = list(objects)
    stores = {(o["metadata"]["namespace"], o["metadata"]["name"]): urlparse(o["spec"]["provider"]["azurekv"]
                                                                           ["vaultUrl"]).hostname.split(".")[0]
              for o in objects if o["kind"] == "SecretStore"}
    secrets = {}
    for o in objects:
        if o["kind"] != "ExternalSecret":
            continue
        namespace, spec = o["metadata"]["namespace"], o["spec"]
        vault = vaults.get(stores[(namespace, spec["secretStoreRef"]["name"])], {})
        if not all(item["remoteRef"]["key"] in vault for item in spec["data"]):
            continue  # SecretSyncedError: this ExternalSecret only
        data = {item["secretKey"]: vault[item["remoteRef"]["key"]] for item in spec["data"]}
        template = spec["target"].get("template", {}).get("data")
        secrets[(namespace, spec["target"]["name"])] = render_template(template, data) if template else data
    return secrets
