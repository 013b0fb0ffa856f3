"""The test's client outside the cluster: HTTP(S) to the ingress gateway's pod, TLS with SNI, keep-alive."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """A keep-alive HTTP(S) connection to the gateway; use it inside `Mesh.call`."""

    def __init__(self, ip: str, host: str, https: bool, root_pem: bytes, timeout: float) -> None:
        self.ip, self.host, self.https, self.timeout = ip, host, https, timeout
        self.context = ssl.create_default_context(cadata=root_pem.decode()) if https else None
        self.connection: http.client.HTTPConnection | None = None

    def connect(self) -> http.client.HTTPConnection:
        port = 443 if self.https else 80
        connection = http.client.HTTPConnection(self.host, port, timeout=self.timeout)
        sock = socket.create_connection((self.ip, port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # headers and body leave at once
        if self.context is not None:
            sock = self.context.wrap_socket(sock, server_hostname=self.host)
        connection.sock = sock
        return connection

    def send(self, method: str, path: str, body: bytes | str | None = None,
             headers: Mapping[str, str] | None = None) -> Response:
        """One request; a keep-alive connection the gateway closed meanwhile is reopened (the request had not
        been sent on it), any other failure is the caller's."""
        data = body.encode() if isinstance(body, str) else body
        sent = {"Content-Type": "application/json", **(headers or {})}
        while True:
            reused = self.connection is not None
            if self.connection is None:
                self.connection = self.connect()
            began = time.monotonic()
            try:
                self.connection.request(method, path, body=data, headers=sent)
                response = self.connection.getresponse()
                payload = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if reused:
                    continue
                raise
            if response.getheader("connection", "").lower() == "close":
                self.close()
            return Response(response.status, {k.lower(): v for k, v in response.getheaders()}, payload,
                            time.monotonic() - began)

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None
