"""A TCP proxy in front of a private broker that can lose the *answers* to one client's Produce
requests: the broker appends the records, the client never hears so and times them out — the
"Message timed out" whose record is in Kafka all the same (issue 15 item 6).

The broker must advertise the proxy (``advertised.listeners``), so every connection of every
client goes through it; only Produce responses of the one ``client.id`` are dropped, and only while
:attr:`KafkaProxy.drop_produce_acks` is set. Kafka frames are ``int32 size`` + payload; a request
header starts with ``int16 api_key, int16 api_version, int32 correlation_id, string client_id``,
a response header with ``int32 correlation_id``.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator

PRODUCE = 0


def _read_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _frames(sock: socket.socket) -> Iterator[bytes]:
    while True:
        head = _read_exact(sock, 4)
        if head is None:
            return
        (size,) = struct.unpack(">i", head)
        body = _read_exact(sock, size)
        if body is None:
            return
        yield head + body


class KafkaProxy:
    def __init__(self, listen_port: int, target_port: int, client_id: str) -> None:
        self.target_port = target_port
        self.client_id = client_id.encode()
        """The ``client.id`` whose Produce acks are dropped (settable once it is known)."""
        self.drop_produce_acks = threading.Event()
        self.dropped = 0
        self._server = socket.create_server(("127.0.0.1", listen_port), reuse_port=False)
        self._closing = threading.Event()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="kafka-proxy", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closing.set()
        with contextlib.suppress(OSError):
            self._server.close()
        for s in self._sockets:
            with contextlib.suppress(OSError):
                s.close()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                broker = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            self._sockets += [client, broker]
            swallow: set[int] = set()
            lock = threading.Lock()
            for target, args in (
                (self._requests, (client, broker, swallow, lock)),
                (self._responses, (broker, client, swallow, lock)),
            ):
                threading.Thread(target=target, args=args, daemon=True).start()

    def _requests(
        self, src: socket.socket, dst: socket.socket, swallow: set[int], lock: threading.Lock
    ) -> None:
        with contextlib.suppress(OSError):
            for frame in _frames(src):
                api_key, _, correlation, id_len = struct.unpack(">hhih", frame[4:14])
                client_id = frame[14 : 14 + id_len] if id_len > 0 else b""
                if (
                    api_key == PRODUCE
                    and client_id == self.client_id
                    and self.drop_produce_acks.is_set()
                ):
                    with lock:
                        swallow.add(correlation)
                dst.sendall(frame)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def _responses(
        self, src: socket.socket, dst: socket.socket, swallow: set[int], lock: threading.Lock
    ) -> None:
        with contextlib.suppress(OSError):
            for frame in _frames(src):
                (correlation,) = struct.unpack(">i", frame[4:8])
                with lock:
                    if correlation in swallow:
                        swallow.discard(correlation)
                        self.dropped += 1
                        continue
                dst.sendall(frame)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
