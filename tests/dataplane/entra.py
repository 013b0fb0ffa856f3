"""A stand-in for an Entra ID tenant: a signing key, access tokens with the claims of Entra's documented v1
and v2 access tokens, and the key set served over TLS on the sandbox's loopback, where istiod fetches a
RequestAuthentication's jwksUri (PILOT_JWT_ENABLE_REMOTE_JWKS=false, its default: istiod inlines the keys).
"""

from __future__ import annotations

import json
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

KEYS_PATH = "/discovery/keys"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Tenant:
    """One tenant's signing key, and tokens it issues for an API (App ID URI and client ID)."""

    tenant_id: str
    app_id_uri: str
    client_id: str
    key: rsa.RSAPrivateKey = field(default_factory=new_key)
    kid: str = "harness-signing-key"

    def jwks(self) -> str:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return json.dumps({"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "RS256"}]})

    def token(self, version: str, *, aud: str | None = None, roles: tuple[str, ...] = (), scp: str | None = None,
              tenant: str | None = None, lifetime: int = 3600, key: rsa.RSAPrivateKey | None = None) -> str:
        """An access token as Entra issues it: v1 (iss sts.windows.net/<tenant>/, aud as the client asked: the
        App ID URI by default) or v2 (iss login.microsoftonline.com/<tenant>/v2.0, aud the client ID)."""
        tid = tenant or self.tenant_id
        now = int(time.time())
        caller = str(uuid.uuid5(uuid.NAMESPACE_URL, "harness-caller"))
        claims: dict[str, Any] = {"iat": now - 60, "nbf": now - 60, "exp": now + lifetime, "tid": tid,
                                  "oid": caller, "sub": caller, "aio": "harness", "uti": uuid.uuid4().hex,
                                  "rh": "0.harness."}
        if version == "1.0":
            claims |= {"iss": f"https://sts.windows.net/{tid}/", "aud": aud or self.app_id_uri, "ver": "1.0",
                       "appid": caller, "appidacr": "1", "idp": f"https://sts.windows.net/{tid}/"}
        else:
            claims |= {"iss": f"https://login.microsoftonline.com/{tid}/v2.0", "aud": aud or self.client_id,
                       "ver": "2.0", "azp": caller, "azpacr": "1"}
        if roles:
            claims["roles"] = list(roles)
        if scp is not None:
            claims["scp"] = scp
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": self.kid, "typ": "JWT"})


def serve_keys(tenant: Tenant, port: int, cert: Path, key: Path) -> ThreadingHTTPServer:
    """Bind 127.0.0.1:`port` in the calling thread's network namespace and serve the tenant's keys over TLS
    (GET KEYS_PATH) from a daemon thread; stop it with shutdown()."""
    body = tenant.jwks().encode()

    class Keys(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            found = self.path == KEYS_PATH
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body) if found else 0))
            self.end_headers()
            if found:
                self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Keys)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
