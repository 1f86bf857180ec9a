"""PostgreSQL v3 wire protocol: framing, parsing and building of the messages the agent uses.

Only what the proxy needs is decoded; everything else is moved as opaque bytes.  Message
layout: one type byte, an Int32 length that counts itself, then the payload.  The startup
family (StartupMessage, SSLRequest, GSSENCRequest, CancelRequest) has no type byte.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from agent.postgres import messages

PROTOCOL_3_0 = 196608
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
# The one-byte answers to an SSLRequest (or a GSSENCRequest: N only, the agent has no GSS).
SSL_WILLING = b"S"
ENCRYPTION_UNWILLING = b"N"
# TLS's handshake record type: the first byte of a ClientHello sent without an SSLRequest
# (sslnegotiation=direct, PostgreSQL 17), never a startup packet's (its length's top byte).
TLS_HANDSHAKE = 0x16
# The ALPN protocol name PostgreSQL 17 registered; direct TLS must negotiate it.
ALPN_PROTOCOL = "postgresql"
CANCEL_REQUEST = 80877102

AUTH_OK = 0
AUTH_CLEARTEXT = 3
AUTH_MD5 = 5
AUTH_SASL = 10
AUTH_SASL_CONTINUE = 11
AUTH_SASL_FINAL = 12

_INT32 = struct.Struct("!i")
_INT16 = struct.Struct("!h")
_HEADER = struct.Struct("!ci")
_FIELD = struct.Struct("!IhIhih")


class ProtocolError(Exception):
    """The peer sent bytes that are not a valid protocol message."""


def message(kind: int | bytes, payload: bytes = b"") -> bytes:
    """A message of type ``kind``: a code of ``agent.postgres.messages`` (or its byte)."""
    if isinstance(kind, int):
        kind = bytes((kind,))
    return kind + _INT32.pack(len(payload) + 4) + payload


SYNC = message(messages.SYNC)
FLUSH = message(messages.FLUSH)
TERMINATE = message(messages.TERMINATE)


def cstring(text: str) -> bytes:
    # surrogateescape: names read by read_name go back out as the bytes they came as
    return text.encode(errors="surrogateescape") + b"\x00"


def read_cstring(payload: bytes, offset: int) -> tuple[str, int]:
    end = payload.index(b"\x00", offset)
    return payload[offset:end].decode(errors="replace"), end + 1


def read_name(payload: bytes, offset: int) -> tuple[str, int]:
    """A statement or portal name: distinct bytes stay distinct names (errors="replace"
    would make b"\xfe" and b"\xff" one name), and ``cstring`` gives the bytes back."""
    end = payload.index(b"\x00", offset)
    return payload[offset:end].decode(errors="surrogateescape"), end + 1


# ---------------------------------------------------------------- startup family


def parse_startup_params(payload: bytes) -> dict[str, str]:
    """Parameters of a StartupMessage; payload starts after the protocol version."""
    params: dict[str, str] = {}
    offset = 0
    while offset < len(payload) and payload[offset] != 0:
        key, offset = read_cstring(payload, offset)
        value, offset = read_cstring(payload, offset)
        params[key] = value
    return params


def startup_message(params: dict[str, str]) -> bytes:
    body = _INT32.pack(PROTOCOL_3_0)
    for key, value in params.items():
        body += cstring(key) + cstring(value)
    body += b"\x00"
    return _INT32.pack(len(body) + 4) + body


def ssl_request() -> bytes:
    return _INT32.pack(8) + _INT32.pack(SSL_REQUEST)


def cancel_request(pid: int, secret: int) -> bytes:
    return _INT32.pack(16) + _INT32.pack(CANCEL_REQUEST) + _INT32.pack(pid) + _INT32.pack(secret)


# ---------------------------------------------------------------- backend messages (built)


def auth_request(code: int, extra: bytes = b"") -> bytes:
    return message(messages.AUTHENTICATION, _INT32.pack(code) + extra)


def backend_key_data(pid: int, secret: int) -> bytes:
    return message(messages.BACKEND_KEY_DATA, _INT32.pack(pid) + _INT32.pack(secret))


def ready_for_query(status: bytes = messages.TX_IDLE) -> bytes:
    return message(messages.READY_FOR_QUERY, status)


def _fields(severity: str, code: str, text: str, detail: str | None, hint: str | None) -> bytes:
    body = b"S" + cstring(severity) + b"V" + cstring(severity) + b"C" + cstring(code)
    body += b"M" + cstring(text)
    if detail:
        body += b"D" + cstring(detail)
    if hint:
        body += b"H" + cstring(hint)
    return body + b"\x00"


def error_response(
    code: str,
    text: str,
    *,
    severity: str = "ERROR",
    detail: str | None = None,
    hint: str | None = None,
) -> bytes:
    return message(messages.ERROR_RESPONSE, _fields(severity, code, text, detail, hint))


def notice_response(
    text: str, *, code: str = "01000", detail: str | None = None, severity: str = "NOTICE"
) -> bytes:
    return message(messages.NOTICE_RESPONSE, _fields(severity, code, text, detail, None))


def parse_error_fields(payload: bytes) -> dict[str, str]:
    """ErrorResponse / NoticeResponse fields keyed by their one-letter code."""
    fields: dict[str, str] = {}
    offset = 0
    while offset < len(payload) and payload[offset] != 0:
        code = chr(payload[offset])
        value, offset = read_cstring(payload, offset + 1)
        fields[code] = value
    return fields


# ---------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class FieldDescription:
    name: str
    table_oid: int
    attnum: int
    type_oid: int
    type_size: int
    type_modifier: int
    format_code: int


def parse_row_description(payload: bytes) -> list[FieldDescription]:
    count = _INT16.unpack_from(payload, 0)[0]
    offset = 2
    fields: list[FieldDescription] = []
    for _ in range(count):
        name, offset = read_cstring(payload, offset)
        table_oid, attnum, type_oid, size, modifier, fmt = _FIELD.unpack_from(payload, offset)
        offset += _FIELD.size
        fields.append(FieldDescription(name, table_oid, attnum, type_oid, size, modifier, fmt))
    return fields


def parse_data_row(payload: bytes | memoryview) -> list[bytes | None]:
    count = _INT16.unpack_from(payload, 0)[0]
    offset = 2
    values: list[bytes | None] = []
    for _ in range(count):
        length = _INT32.unpack_from(payload, offset)[0]
        offset += 4
        if length < 0:
            values.append(None)
        else:
            values.append(bytes(payload[offset : offset + length]))
            offset += length
    return values


def data_row(values: list[bytes | None]) -> bytes:
    parts = [_INT16.pack(len(values))]
    for value in values:
        if value is None:
            parts.append(b"\xff\xff\xff\xff")
        else:
            parts.append(_INT32.pack(len(value)))
            parts.append(value)
    return message(messages.DATA_ROW, b"".join(parts))


def command_tag(payload: bytes) -> str:
    return payload.rstrip(b"\x00").decode(errors="replace")


def rows_from_tag(tag: str) -> int | None:
    """Row count of a CommandComplete tag ("SELECT 5", "INSERT 0 3", "COPY 10")."""
    last = tag.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else None


# ---------------------------------------------------------------- frontend messages


def query(sql: str) -> bytes:
    return message(messages.QUERY, cstring(sql))


def describe(target: bytes, name: str) -> bytes:
    """Describe ``name``: ``target`` is messages.TARGET_STATEMENT or TARGET_PORTAL."""
    return message(messages.DESCRIBE, target + cstring(name))


def password_message(secret: bytes) -> bytes:
    return message(messages.PASSWORD, secret)


def sasl_initial_response(mechanism: str, data: bytes) -> bytes:
    return message(messages.PASSWORD, cstring(mechanism) + _INT32.pack(len(data)) + data)


def parse_query(payload: bytes) -> str:
    return payload[: payload.index(b"\x00")].decode()


def parse_parse(payload: bytes) -> tuple[str, str]:
    """Parse message → (statement name, query text)."""
    name, offset = read_name(payload, 0)
    end = payload.index(b"\x00", offset)
    return name, payload[offset:end].decode()


def parse_bind(payload: bytes) -> tuple[str, str, tuple[int, ...]]:
    """Bind message → (portal, statement, result format codes)."""
    portal, offset = read_name(payload, 0)
    statement, offset = read_name(payload, offset)
    n_formats = _INT16.unpack_from(payload, offset)[0]
    offset += 2 + 2 * n_formats
    n_params = _INT16.unpack_from(payload, offset)[0]
    offset += 2
    for _ in range(n_params):
        length = _INT32.unpack_from(payload, offset)[0]
        offset += 4 + max(length, 0)
    n_results = _INT16.unpack_from(payload, offset)[0]
    offset += 2
    formats = struct.unpack_from(f"!{n_results}h", payload, offset) if n_results else ()
    return portal, statement, tuple(formats)


def parse_target(payload: bytes) -> tuple[bytes, str]:
    """Describe / Close message → (messages.TARGET_STATEMENT or TARGET_PORTAL, name)."""
    name, _ = read_name(payload, 1)
    return payload[:1], name


def parse_execute(payload: bytes) -> str:
    return read_name(payload, 0)[0]


def execute_row_limit(payload: bytes) -> int:
    """An Execute's maximum row count (0: no limit)."""
    return _INT32.unpack_from(payload, len(payload) - 4)[0] if len(payload) >= 5 else 0
