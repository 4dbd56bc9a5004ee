"""Ask a Kafka broker for its metadata using only the standard library.

Used by scripts/stack.sh to decide whether the local broker is ready, before any
virtualenv exists (so it cannot rely on kafka-python).

Input: ``--bootstrap HOST:PORT`` and ``--timeout SECONDS``.
Output: on success prints one line ``ok brokers=N topics=M cluster=ID`` (``--topics``
adds one topic name per line) and exits 0.
Guarantees: sends a real ApiVersions request, then a Metadata request (all topics,
no auto-creation) at a version the broker says it supports; "ready" means the
broker listed at least one broker in its metadata (it has registered with the
KRaft controller and is unfenced).
Failure modes: exits 1 with one line on stderr when the socket cannot connect, the
broker does not answer within the timeout, answers with an error code, lists no
brokers yet, or supports no Metadata version between 1 and 8.
"""

from __future__ import annotations

import argparse
import socket
import struct
import sys

API_METADATA = 3
API_VERSIONS = 18
CLIENT_ID = b"fallwatch-stack-probe"


class ProbeError(Exception):
    """Raised by this probe when the broker is unreachable or not ready; the caller retries."""


class _Reader:
    """Sequential big-endian decoder over one response body."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def _take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self._data, self._pos)
        self._pos += struct.calcsize(fmt)
        return int(value)

    def int8(self) -> int:
        return self._take(">b")

    def int16(self) -> int:
        return self._take(">h")

    def int32(self) -> int:
        return self._take(">i")

    def string(self) -> str | None:
        length = self.int16()
        if length < 0:
            return None
        raw = self._data[self._pos : self._pos + length]
        self._pos += length
        return raw.decode("utf-8")

    def int32_array(self) -> list[int]:
        return [self.int32() for _ in range(max(self.int32(), 0))]


def _request(sock: socket.socket, api_key: int, version: int, corr: int, body: bytes) -> _Reader:
    # Request header v1 (non-flexible): key, version, correlation id, client id.
    header = struct.pack(">hhih", api_key, version, corr, len(CLIENT_ID)) + CLIENT_ID
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    size = struct.unpack(">i", _recv_exact(sock, 4))[0]
    reader = _Reader(_recv_exact(sock, size))
    if reader.int32() != corr:
        raise ProbeError("correlation id mismatch")
    return reader


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = sock.recv(n - len(chunks))
        if not chunk:
            raise ProbeError("broker closed the connection")
        chunks.extend(chunk)
    return bytes(chunks)


def _metadata_version(sock: socket.socket) -> int:
    reader = _request(sock, API_VERSIONS, 0, 1, b"")
    error = reader.int16()
    if error != 0:
        raise ProbeError(f"ApiVersions error code {error}")
    ranges: dict[int, tuple[int, int]] = {}
    for _ in range(reader.int32()):
        key, low, high = reader.int16(), reader.int16(), reader.int16()
        ranges[key] = (low, high)
    low, high = ranges.get(API_METADATA, (0, -1))
    version = min(high, 8)
    if version < max(low, 1):
        raise ProbeError(f"broker supports Metadata v{low}-v{high}, probe speaks v1-v8")
    return version


def probe(host: str, port: int, timeout: float) -> tuple[int, str | None, list[str]]:
    """Return (broker count, cluster id, topic names); raise ProbeError when not ready."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            version = _metadata_version(sock)
            body = struct.pack(">i", -1)  # null topic array = all topics
            if version >= 4:
                body += struct.pack(">b", 0)  # allow_auto_topic_creation = false
            if version >= 8:
                body += struct.pack(">bb", 0, 0)  # no authorized-operations lists
            reader = _request(sock, API_METADATA, version, 2, body)
    except OSError as exc:
        raise ProbeError(f"{host}:{port}: {exc}") from exc
    if version >= 3:
        reader.int32()  # throttle_time_ms
    brokers = 0
    for _ in range(reader.int32()):
        reader.int32(), reader.string(), reader.int32(), reader.string()
        brokers += 1
    cluster_id = reader.string() if version >= 2 else None
    reader.int32()  # controller id
    topics: list[str] = []
    for _ in range(reader.int32()):
        reader.int16()
        name = reader.string()
        reader.int8()
        for _ in range(reader.int32()):
            reader.int16(), reader.int32(), reader.int32()
            if version >= 7:
                reader.int32()
            reader.int32_array(), reader.int32_array()
            if version >= 5:
                reader.int32_array()
        if version >= 8:
            reader.int32()
        if name is not None:
            topics.append(name)
    if brokers == 0:
        raise ProbeError("broker answers but lists no brokers yet (still registering)")
    return brokers, cluster_id, sorted(topics)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--topics", action="store_true", help="also print topic names")
    args = parser.parse_args()
    host, _, port = args.bootstrap.rpartition(":")
    try:
        brokers, cluster_id, topics = probe(host, int(port), args.timeout)
    except (ProbeError, struct.error) as exc:
        print(f"kafka probe: {exc}", file=sys.stderr)
        return 1
    print(f"ok brokers={brokers} topics={len(topics)} cluster={cluster_id}")
    if args.topics:
        print("\n".join(topics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
