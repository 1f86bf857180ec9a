"""Connections to the upstream PostgreSQL server with the datasource's own credentials.

Supports TLS with libpq's ``sslmode`` semantics, trust, cleartext, md5 and SCRAM-SHA-256
authentication, a tiny simple-query client for catalog side queries, and forwarding
cancel requests.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import socket
import ssl
import struct
from dataclasses import dataclass, field

from agent.postgres import codec
from agent.postgres.messages import (
    AUTHENTICATION,
    BACKEND_KEY_DATA,
    DATA_ROW,
    ERROR_RESPONSE,
    PARAMETER_STATUS,
    PARSE,
    READY_FOR_QUERY,
    ROW_DESCRIPTION,
    TARGET_STATEMENT,
    TX_IDLE,
)
from agent.upstream import UpstreamConfig


class UpstreamError(Exception):
    """Upstream refused the connection or authentication; ``fields`` holds its error."""

    def __init__(self, text: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(text)
        self.fields = fields or {}


@dataclass
class UpstreamConnection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    backend_pid: int = 0
    backend_secret: int = 0
    # ParameterStatus messages (raw bytes) received during startup, to relay to the client.
    parameter_messages: list[bytes] = field(default_factory=list)
    transaction_status: bytes = TX_IDLE

    def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()


async def read_message(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """(type code, payload) of the next message."""
    header = await reader.readexactly(5)
    kind, length = header[0], struct.unpack("!i", header[1:])[0]
    return kind, await reader.readexactly(length - 4)


async def open_stream(config: UpstreamConfig) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the server, upgraded to TLS as ``config.sslmode`` asks."""
    context = config.ssl_context
    if context is None:
        return await asyncio.open_connection(config.host, config.port)
    loop = asyncio.get_running_loop()
    sock = await _connected_socket(loop, config.host, config.port)
    try:
        await loop.sock_sendall(sock, codec.ssl_request())
        # Exactly one byte: anything the server (or a man in the middle) sent after it
        # stays in the socket and is read as TLS records, never as protocol messages.
        answer = await loop.sock_recv(sock, 1)
        if answer == codec.SSL_WILLING:
            return await asyncio.open_connection(
                sock=sock, ssl=context, server_hostname=config.host
            )
        if answer != codec.ENCRYPTION_UNWILLING:
            raise UpstreamError(f"unexpected answer {answer!r} to the TLS request")
        if config.sslmode != "prefer":
            raise UpstreamError(f"upstream server does not support TLS (sslmode={config.sslmode})")
        return await asyncio.open_connection(sock=sock)
    except ssl.SSLError as exc:
        sock.close()
        raise UpstreamError(f"TLS with the upstream server failed: {exc}") from exc
    except BaseException:
        sock.close()
        raise


async def _connected_socket(loop: asyncio.AbstractEventLoop, host: str, port: int) -> socket.socket:
    last_error: OSError | None = None
    for family, kind, proto, _, address in await loop.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    ):
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        except BaseException:  # cancelled or timed out: do not leak the socket
            sock.close()
            raise
        return sock
    raise last_error or OSError(f"cannot resolve {host}")


async def connect(
    config: UpstreamConfig,
    extra_params: dict[str, str] | None = None,
) -> UpstreamConnection:
    reader, writer = await open_stream(config)
    conn = UpstreamConnection(reader, writer)
    params = {"user": config.user, "database": config.database, **(extra_params or {})}
    writer.write(codec.startup_message(params))
    try:
        await _authenticate(conn, config)
        await _read_until_ready(conn)
    except BaseException:
        conn.close()
        raise
    return conn


async def _authenticate(conn: UpstreamConnection, config: UpstreamConfig) -> None:
    scram: ScramClient | None = None
    while True:
        kind, payload = await read_message(conn.reader)
        if kind == ERROR_RESPONSE:
            fields = codec.parse_error_fields(payload)
            raise UpstreamError(fields.get("M", "upstream error"), fields)
        if kind != AUTHENTICATION:
            raise UpstreamError(f"unexpected message {bytes((kind,))!r} during authentication")
        code = struct.unpack_from("!i", payload)[0]
        if code == codec.AUTH_OK:
            return
        if code == codec.AUTH_CLEARTEXT:
            conn.writer.write(codec.password_message(config.password.encode() + b"\x00"))
        elif code == codec.AUTH_MD5:
            conn.writer.write(codec.password_message(md5_password(config, payload[4:8])))
        elif code == codec.AUTH_SASL:
            if b"SCRAM-SHA-256\x00" not in payload[4:]:
                raise UpstreamError("upstream offers no supported SASL mechanism")
            scram = ScramClient(config.password)
            first = scram.client_first()
            conn.writer.write(codec.sasl_initial_response("SCRAM-SHA-256", first))
        elif code == codec.AUTH_SASL_CONTINUE and scram is not None:
            conn.writer.write(codec.password_message(scram.client_final(payload[4:])))
        elif code == codec.AUTH_SASL_FINAL and scram is not None:
            scram.verify_server_final(payload[4:])
        else:
            raise UpstreamError(f"unsupported upstream authentication method {code}")


async def _read_until_ready(conn: UpstreamConnection) -> None:
    while True:
        kind, payload = await read_message(conn.reader)
        if kind == BACKEND_KEY_DATA:
            conn.backend_pid, conn.backend_secret = struct.unpack("!ii", payload[:8])
        elif kind == PARAMETER_STATUS:
            conn.parameter_messages.append(codec.message(PARAMETER_STATUS, payload))
        elif kind == READY_FOR_QUERY:
            conn.transaction_status = payload[:1]
            return
        elif kind == ERROR_RESPONSE:
            fields = codec.parse_error_fields(payload)
            raise UpstreamError(fields.get("M", "upstream error"), fields)
        # NoticeResponse during startup is dropped.


def md5_password(config: UpstreamConfig, salt: bytes) -> bytes:
    inner = hashlib.md5(config.password.encode() + config.user.encode()).hexdigest()
    outer = hashlib.md5(inner.encode() + salt).hexdigest()
    return b"md5" + outer.encode() + b"\x00"


class ScramClient:
    """Client side of SCRAM-SHA-256 (RFC 5802/7677) without channel binding."""

    def __init__(self, password: str) -> None:
        self.password = password.encode()
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.client_first_bare = f"n=,r={self.nonce}"
        self.server_signature = b""

    def client_first(self) -> bytes:
        return ("n,," + self.client_first_bare).encode()

    def client_final(self, server_first: bytes) -> bytes:
        text = server_first.decode()
        attrs = dict(part.split("=", 1) for part in text.split(","))
        if not attrs["r"].startswith(self.nonce):
            raise UpstreamError("SCRAM server nonce does not extend the client nonce")
        salt = base64.b64decode(attrs["s"])
        salted = hashlib.pbkdf2_hmac("sha256", self.password, salt, int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={attrs['r']}"
        auth_message = f"{self.client_first_bare},{text},{without_proof}".encode()
        signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        self.server_signature = hmac.new(server_key, auth_message, hashlib.sha256).digest()
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify_server_final(self, server_final: bytes) -> None:
        text = server_final.decode()
        if not text.startswith("v=") or not hmac.compare_digest(
            base64.b64decode(text[2:]), self.server_signature
        ):
            raise UpstreamError("SCRAM server signature mismatch")


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def quote_ident(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


async def simple_query(conn: UpstreamConnection, sql: str) -> list[list[str | None]]:
    """Run one simple query on a side connection; return rows as text."""
    conn.writer.write(codec.query(sql))
    rows: list[list[str | None]] = []
    error: dict[str, str] | None = None
    while True:
        kind, payload = await read_message(conn.reader)
        if kind == DATA_ROW:
            rows.append([None if v is None else v.decode() for v in codec.parse_data_row(payload)])
        elif kind == ERROR_RESPONSE:
            error = codec.parse_error_fields(payload)
        elif kind == READY_FOR_QUERY:
            break
    if error is not None:
        raise UpstreamError(error.get("M", "side query failed"), error)
    return rows


async def describe_statement(conn: UpstreamConnection, sql: str) -> list[codec.FieldDescription]:
    """The RowDescription of ``sql`` as the unnamed statement of a side connection (Parse,
    Describe, Sync: nothing runs); [] when it returns no rows."""
    conn.writer.write(
        codec.message(PARSE, codec.cstring("") + codec.cstring(sql) + b"\0\0")
        + codec.describe(TARGET_STATEMENT, "")
        + codec.SYNC
    )
    fields: list[codec.FieldDescription] = []
    error: dict[str, str] | None = None
    while True:
        kind, payload = await read_message(conn.reader)
        if kind == ROW_DESCRIPTION:
            fields = codec.parse_row_description(payload)
        elif kind == ERROR_RESPONSE:
            error = codec.parse_error_fields(payload)
        elif kind == READY_FOR_QUERY:
            break
    if error is not None:
        raise UpstreamError(error.get("M", "describe failed"), error)
    return fields


CANCEL_ACK_SECONDS = 5.0


async def send_cancel(config: UpstreamConfig, pid: int, secret: int) -> None:
    """Send a CancelRequest and wait, as libpq's PQcancel does, for the server to close the
    connection: by then it has signalled the backend, so the client's cancel returns only
    after it took effect upstream and cannot land on the client's next statement."""
    reader, writer = await open_stream(config)
    try:
        writer.write(codec.cancel_request(pid, secret))
        await writer.drain()
        with contextlib.suppress(TimeoutError, OSError):
            async with asyncio.timeout(CANCEL_ACK_SECONDS):
                while await reader.read(256):
                    pass
    finally:
        writer.close()
