"""A small blocking NATS client for the commit path: publish a JetStream batch, read its ack.

Why not nats-py: every nats-py call from a committing thread hops onto its asyncio loop
thread and back, which costs ~150 us of CPU on a no-op and ~500 us per JetStream publish
on the machines we measured - more than the quorum round trip on loopback. The commit path
needs one thing only: write a few messages and wait for one reply. This client does that on
its own socket, from the calling thread, with no buffering: a message is either written
now or the call fails (nothing is sent later behind the caller's back, as a reconnecting
client would). Everything else (stream info, reads, subscriptions, the object store) stays
on nats-py.

Protocol (https://docs.nats.io/reference/reference-protocols/nats-protocol): the server
greets with ``INFO {json}``; we send ``CONNECT {json}``, subscribe to a private inbox,
``PING`` and wait for ``PONG``. A request is ``HPUB subject [reply] hdr_len total_len`` with
an ``NATS/1.0`` header block; replies arrive as ``MSG``/``HMSG`` on the inbox. A server
``PING`` is answered with ``PONG`` while waiting.

Used only for plain ``nats://host:port`` URLs (no credentials, no TLS); :func:`usable`
says which. Not thread-safe: the caller serializes (one publisher per primary).
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any, Final
from urllib.parse import urlsplit

from .errors import ReplicationUnavailable

__all__ = ["SyncPublisher", "usable"]

_CRLF: Final = b"\r\n"
_DEFAULT_PORT: Final = 4222


def usable(servers: list[str]) -> bool:
    """True when every URL is a plain ``nats://host[:port]`` (the only kind this client
    speaks: no user, password, token or TLS)."""
    for url in servers:
        u = urlsplit(url if "://" in url else f"nats://{url}")
        if u.scheme != "nats" or u.username or u.password or not u.hostname:
            return False
    return True


def _addresses(servers: list[str]) -> list[tuple[str, int]]:
    out = []
    for url in servers:
        u = urlsplit(url if "://" in url else f"nats://{url}")
        out.append((u.hostname or "127.0.0.1", u.port or _DEFAULT_PORT))
    return out


class _Broken(Exception):
    """The connection failed while a request was out: its outcome is unknown."""


class SyncPublisher:
    """Blocking request/reply to JetStream over one NATS connection of its own."""

    def __init__(self, servers: list[str], *, timeout: float, name: str) -> None:
        self._addrs = _addresses(servers)
        self._next = 0                      # the server to try first on the next connect
        self.timeout = timeout
        self.name = name
        self._sock: socket.socket | None = None
        self._buf = bytearray()
        self._inbox = f"_INBOX.{os.urandom(12).hex()}"
        self._token = 0
        self.max_payload = 1 << 20

    # -- connection -----------------------------------------------------------------------

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
                self._buf.clear()

    def _connect(self) -> socket.socket:
        errors = []
        for i in range(len(self._addrs)):
            host, port = self._addrs[(self._next + i) % len(self._addrs)]
            try:
                sock = socket.create_connection((host, port), timeout=min(self.timeout, 5.0))
            except OSError as exc:
                errors.append(f"{host}:{port}: {exc}")
                continue
            try:
                self._handshake(sock)
            except (OSError, _Broken, ValueError) as exc:
                sock.close()
                self._buf.clear()
                errors.append(f"{host}:{port}: {exc}")
                continue
            self._next = (self._next + i) % len(self._addrs)
            sock.settimeout(self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
            return sock
        self._next = (self._next + 1) % len(self._addrs)
        raise ReplicationUnavailable(f"cannot reach NATS ({'; '.join(errors)}); nothing was sent")

    def _handshake(self, sock: socket.socket) -> None:
        self._sock = sock
        try:
            line = self._line()
            if not line.startswith(b"INFO "):
                raise ValueError(f"unexpected greeting {line[:40]!r}")
            info = json.loads(line[5:])
            if info.get("tls_required") or info.get("auth_required"):
                raise ValueError("the server requires TLS or credentials")
            self.max_payload = int(info.get("max_payload", self.max_payload))
            connect = {"verbose": False, "pedantic": False, "headers": True, "no_responders": True,
                       "lang": "python-tierdb", "version": "1", "protocol": 1, "name": self.name}
            sock.sendall(b"CONNECT " + json.dumps(connect).encode() + _CRLF
                         + f"SUB {self._inbox}.* 1".encode() + _CRLF + b"PING" + _CRLF)
            while True:
                line = self._line()
                if line == b"PONG":
                    return
                if line.startswith(b"-ERR"):
                    raise ValueError(line.decode(errors="replace"))
                if line == b"PING":
                    sock.sendall(b"PONG" + _CRLF)
        except BaseException:
            self._sock = None
            raise

    # -- reading --------------------------------------------------------------------------

    def _fill(self) -> None:
        assert self._sock is not None
        try:
            data = self._sock.recv(65536)
        except TimeoutError:
            raise _Broken(f"no answer within {self.timeout:g} s") from None
        except OSError as exc:
            raise _Broken(f"connection failed: {exc}") from None
        if not data:
            raise _Broken("the server closed the connection")
        self._buf += data

    def _line(self) -> bytes:
        while True:
            i = self._buf.find(_CRLF)
            if i >= 0:
                line = bytes(self._buf[:i])
                del self._buf[:i + 2]
                return line
            self._fill()

    def _exact(self, n: int) -> bytes:
        while len(self._buf) < n + 2:
            self._fill()
        data = bytes(self._buf[:n])
        del self._buf[:n + 2]
        return data

    def _reply(self, subject: bytes) -> tuple[int, bytes]:
        """The next message on ``subject``: (status, payload); status 0 = none in headers."""
        sock = self._sock
        assert sock is not None
        while True:
            line = self._line()
            if line.startswith((b"MSG ", b"HMSG ")):
                parts = line.split()
                if parts[0] == b"MSG":
                    payload, status = self._exact(int(parts[-1])), 0
                else:
                    block = self._exact(int(parts[-1]))
                    hlen = int(parts[-2])
                    head, payload = block[:hlen], block[hlen:]
                    first = head.split(_CRLF, 1)[0].split()
                    status = int(first[1]) if len(first) > 1 and first[1].isdigit() else 0
                if parts[1] == subject:
                    return status, payload
                continue                    # a late reply to an earlier, abandoned request
            if line == b"PING":
                sock.sendall(b"PONG" + _CRLF)
            elif line.startswith(b"-ERR"):
                raise _Broken(f"server error {line.decode(errors='replace')}")
            # +OK, PONG and INFO updates need nothing

    # -- requests -------------------------------------------------------------------------

    def request(self, items: list[tuple[str, dict[str, str], bytes]]) -> dict[str, Any]:
        """Publish ``items`` (subject, headers, payload) in order, the last one as a request;
        return its JSON reply. Raises ReplicationUnavailable: "nothing was sent" in its
        message when certainly nothing left, else the outcome is unknown."""
        sock = self._sock if self._sock is not None else self._connect()
        self._token += 1
        reply = f"{self._inbox}.{self._token}"
        frames = []
        for i, (subject, headers, payload) in enumerate(items):
            head = b"NATS/1.0\r\n" + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()) + _CRLF
            to = f" {reply}" if i == len(items) - 1 else ""
            frames.append(f"HPUB {subject}{to} {len(head)} {len(head) + len(payload)}\r\n".encode())
            frames += (head, payload, _CRLF)
        try:
            try:
                sock.sendall(b"".join(frames))
            except OSError as exc:
                raise _Broken(f"send failed: {exc}") from None
            status, payload = self._reply(reply.encode())
        except _Broken as exc:
            self.close()
            raise ReplicationUnavailable(f"NATS request failed ({exc}); the outcome is unknown") from None
        if status == 503:
            raise ReplicationUnavailable("no JetStream stream answered (503 no responders); "
                                         "check the stream and the servers' quorum")
        try:
            return dict(json.loads(payload))
        except ValueError:
            raise ReplicationUnavailable(f"JetStream answered {payload[:200]!r}") from None
