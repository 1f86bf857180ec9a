"""A raw PostgreSQL wire-protocol client for tests that speak to the agent message by message."""

from __future__ import annotations

import contextlib
import socket
import struct

from agent.postgres import codec


class WireClient:
    def __init__(
        self, port: int, user: str, params: dict[str, str] | None = None, login: bool = True
    ) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""
        if login:
            self.sock.sendall(
                codec.startup_message({"user": user, "database": "shop", **(params or {})})
            )
            kind, payload = self.read()
            assert kind == b"R", (kind, payload)
            self.sock.sendall(codec.password_message(f"wdn_{user}".encode() + b"\x00"))
            self.startup = self.until(b"Z")

    def read(self) -> tuple[bytes, bytes]:
        while (
            len(self.buffer) < 5 or len(self.buffer) < 1 + struct.unpack("!i", self.buffer[1:5])[0]
        ):
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed"
            self.buffer += chunk
        length = struct.unpack("!i", self.buffer[1:5])[0]
        kind, payload = self.buffer[:1], self.buffer[5 : 1 + length]
        self.buffer = self.buffer[1 + length :]
        return kind, payload

    def until(self, stop: bytes) -> list[tuple[bytes, bytes]]:
        messages = []
        while True:
            kind, payload = self.read()
            messages.append((kind, payload))
            if kind == stop:
                return messages

    def send(self, *messages: bytes) -> None:
        self.sock.sendall(b"".join(messages))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(codec.TERMINATE)
        self.sock.close()
