"""kube-dns, as far as the pods need it: A records for istiod and the Services, NXDOMAIN for everything else.

It answers on the cluster DNS address (10.0.0.10, on the node) inside the sandbox. Names outside the
cluster (Azure's) do not resolve, quickly, as in a cluster cut off from the internet: no lookup waits for a
timeout, and none can leave the machine.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Mapping


def question(packet: bytes) -> tuple[str, int, int]:
    """The first question's name, type, and the offset just after it."""
    labels, offset = [], 12
    while packet[offset]:
        length = packet[offset]
        labels.append(packet[offset + 1:offset + 1 + length].decode("ascii", "replace").lower())
        offset += 1 + length
    qtype = struct.unpack("!H", packet[offset + 1:offset + 3])[0]
    return ".".join(labels), qtype, offset + 5


def answer(packet: bytes, records: Mapping[str, str]) -> bytes:
    ident, flags = struct.unpack("!HH", packet[:4])
    name, qtype, end = question(packet)
    ip = records.get(name)
    rd = flags & 0x0100
    if ip is None:
        return struct.pack("!HHHHHH", ident, 0x8083 | rd, 1, 0, 0, 0) + packet[12:end]  # NXDOMAIN
    if qtype != 1:  # the name exists, without records of that type (NODATA)
        return struct.pack("!HHHHHH", ident, 0x8480 | rd, 1, 0, 0, 0) + packet[12:end]
    record = struct.pack("!HHHLH", 0xC00C, 1, 1, 5, 4) + socket.inet_aton(ip)
    return struct.pack("!HHHHHH", ident, 0x8480 | rd, 1, 1, 0, 0) + packet[12:end] + record


def serve(address: str, records: Mapping[str, str]) -> socket.socket:
    """Bind `address`:53/udp in the calling thread's network namespace and answer in a daemon thread."""
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind((address, 53))
    table = {k.lower().rstrip("."): v for k, v in records.items()}

    def loop() -> None:
        while True:
            try:
                packet, peer = server.recvfrom(512)
            except OSError:
                return
            try:
                server.sendto(answer(packet, table), peer)
            except (IndexError, struct.error, OSError):
                continue

    threading.Thread(target=loop, daemon=True).start()
    return server
