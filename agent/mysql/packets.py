"""MySQL client/server protocol: packet framing and the packets the agent builds or reads.

A packet is a 3-byte little-endian payload length, a 1-byte sequence id and the payload.
A payload of 16 MiB - 1 bytes or more travels as several packets, each full one followed by
the next (the last one shorter, possibly empty); ``read_payload`` joins them and
``frame`` splits them again.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass

MAX_PACKET = 0xFFFFFF

# Capability flags (protocol documentation: "Capabilities Flags").
CLIENT_LONG_PASSWORD = 1
CLIENT_FOUND_ROWS = 2
CLIENT_LONG_FLAG = 4
CLIENT_CONNECT_WITH_DB = 8
CLIENT_NO_SCHEMA = 16
CLIENT_COMPRESS = 32
CLIENT_ODBC = 64
CLIENT_LOCAL_FILES = 128
CLIENT_IGNORE_SPACE = 256
CLIENT_PROTOCOL_41 = 512
CLIENT_INTERACTIVE = 1024
CLIENT_SSL = 2048
CLIENT_TRANSACTIONS = 8192
CLIENT_SECURE_CONNECTION = 32768
CLIENT_MULTI_STATEMENTS = 1 << 16
CLIENT_MULTI_RESULTS = 1 << 17
CLIENT_PS_MULTI_RESULTS = 1 << 18
CLIENT_PLUGIN_AUTH = 1 << 19
CLIENT_CONNECT_ATTRS = 1 << 20
CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA = 1 << 21
CLIENT_SESSION_TRACK = 1 << 23
CLIENT_DEPRECATE_EOF = 1 << 24

# What the agent offers clients.  Not offered, so never in effect: compression,
# LOCAL INFILE (the server could ask the client for any file), IGNORE_SPACE (changes how
# function names are read), session tracking and DEPRECATE_EOF (kept out for one result
# format), and MariaDB's extended capabilities (bit 0 set: MySQL semantics).
AGENT_CAPABILITIES = (
    CLIENT_LONG_PASSWORD
    | CLIENT_FOUND_ROWS
    | CLIENT_LONG_FLAG
    | CLIENT_CONNECT_WITH_DB
    | CLIENT_NO_SCHEMA
    | CLIENT_ODBC
    | CLIENT_PROTOCOL_41
    | CLIENT_INTERACTIVE
    | CLIENT_TRANSACTIONS
    | CLIENT_SECURE_CONNECTION
    | CLIENT_MULTI_STATEMENTS
    | CLIENT_MULTI_RESULTS
    | CLIENT_PS_MULTI_RESULTS
    | CLIENT_PLUGIN_AUTH
    | CLIENT_CONNECT_ATTRS
    | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
)

SERVER_STATUS_AUTOCOMMIT = 0x0002
SERVER_MORE_RESULTS_EXISTS = 0x0008

# The first byte of a payload, which says what a server's packet is.  One byte means
# different things in different phases: 0xFE ends a result set but switches the plugin
# during a login, 0xFB asks for a LOCAL INFILE instead of a result's column count.
OK_HEADER = 0x00  # OK packet; also COM_STMT_PREPARE_OK's status
ERR_HEADER = 0xFF
EOF_HEADER = 0xFE  # only in a payload shorter than 9 bytes (a longer one is a row)
LOCAL_INFILE_HEADER = 0xFB
HANDSHAKE_V10 = 0x0A  # the Initial Handshake Packet's protocol version
AUTH_SWITCH_REQUEST = 0xFE  # during a login
AUTH_MORE_DATA = 0x01  # during a login: the plugin's own exchange

# Commands.
COM_QUIT = 0x01
COM_INIT_DB = 0x02
COM_QUERY = 0x03
COM_FIELD_LIST = 0x04
COM_STATISTICS = 0x09
COM_PROCESS_KILL = 0x0C
COM_PING = 0x0E
COM_CHANGE_USER = 0x11
COM_STMT_PREPARE = 0x16
COM_STMT_EXECUTE = 0x17
COM_STMT_SEND_LONG_DATA = 0x18
COM_STMT_CLOSE = 0x19
COM_STMT_RESET = 0x1A
COM_SET_OPTION = 0x1B
COM_STMT_FETCH = 0x1C
COM_RESET_CONNECTION = 0x1F

UTF8MB4_GENERAL_CI = 45


class ProtocolError(Exception):
    """The peer sent something that is not the MySQL protocol the agent speaks."""


# ---------------------------------------------------------------- framing

_HEADER_AT = struct.Struct("<I").unpack_from  # a packet header as one little-endian integer


async def read_payload(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """(sequence id of the last packet, joined payload)."""
    parts: list[bytes] = []
    while True:
        header = await reader.readexactly(4)
        length = header[0] | header[1] << 8 | header[2] << 16
        parts.append(await reader.readexactly(length) if length else b"")
        if length < MAX_PACKET:
            return header[3], parts[0] if len(parts) == 1 else b"".join(parts)


class PacketBuffer:
    """Payloads from the bytes a relay reads (``feed``), taken without a coroutine when
    they are buffered whole (``take``) or awaited (``payload``).  ``seq`` is the sequence
    id of the last packet taken (of a split payload: its last part).  A wide packet's
    chunks are joined once, when all have come."""

    # Slots: the native path (agent/mysql/native.py) reads buffer, pos and _parts straight
    # from the instance every round trip.
    __slots__ = ("_needed", "_parts", "_parts_size", "_waiter", "buffer", "eof", "pos", "seq")

    def __init__(self) -> None:
        self.buffer = b""
        self.pos = 0
        self.seq = 0
        self.eof = False
        self._parts: list[bytes] = []
        self._parts_size = 0
        self._needed = 0
        self._waiter: asyncio.Future[None] | None = None

    def feed(self, data: bytes) -> None:
        if self._parts:  # the rest of a wide packet
            self._parts.append(data)
            self._parts_size += len(data)
            if self._parts_size < self._needed:
                return
            data = b"".join(self._parts)
            self._parts, self._parts_size = [], 0
        buffer, pos = self.buffer, self.pos
        if pos < len(buffer):
            data = buffer[pos:] + data
        self.buffer, self.pos = data, 0
        # Most reads start with a whole packet shorter than the limit: nothing to collect.
        if len(data) >= 4:
            length = _HEADER_AT(data, 0)[0] & MAX_PACKET
            if len(data) < 4 + length or length == MAX_PACKET:
                self._collect_wide(data)
        if self._waiter is not None:
            self._wake()

    def _collect_wide(self, data: bytes) -> None:
        """Start collecting a wide packet's chunks when the first packet not buffered whole
        (past a split payload's full parts) is one."""
        head = 0
        while len(data) - head >= 4:
            length = data[head] | data[head + 1] << 8 | data[head + 2] << 16
            end = head + 4 + length
            if end > len(data):
                if length > 1 << 18:  # collect its chunks, join them once
                    self._parts, self._parts_size, self._needed = [data], len(data), end
                    self.buffer = b""
                break
            if length < MAX_PACKET:
                break
            head = end

    def feed_eof(self) -> None:
        self.eof = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def size(self) -> int:
        """Bytes buffered and not taken."""
        return len(self.buffer) - self.pos + self._parts_size

    def ready(self) -> bytes | None:
        """The next payload when it is already buffered whole in one packet, else None:
        most packets of a result arrive in one read."""
        buffer, pos = self.buffer, self.pos
        if len(buffer) - pos < 4:
            return None
        header = _HEADER_AT(buffer, pos)[0]  # length (3 bytes), sequence id
        length = header & MAX_PACKET
        end = pos + 4 + length
        if end > len(buffer) or length == MAX_PACKET:
            return None
        self.pos = end
        self.seq = header >> 24
        return buffer[pos + 4 : end]

    def take(self) -> bytes | None:
        """The next payload, joined when split, if all of it is buffered; else None."""
        payload = self.ready()
        if payload is not None:
            return payload
        buffer, pos = self.buffer, self.pos
        parts: list[bytes] = []
        while len(buffer) - pos >= 4:
            length = buffer[pos] | buffer[pos + 1] << 8 | buffer[pos + 2] << 16
            end = pos + 4 + length
            if end > len(buffer):
                break
            parts.append(buffer[pos + 4 : end])
            if length < MAX_PACKET:
                self.pos, self.seq = end, buffer[pos + 3]
                return b"".join(parts)
            pos = end
        return None

    def verbatim_rows(self, seq: int) -> tuple[bytes, int]:
        """The buffered row packets from sequence id ``seq`` on, as they arrived, and how
        many: whole packets, numbered on from ``seq``, that are not the result's end (an
        EOF or ERR packet) nor part of a split payload.  Relaying them needs no reframing."""
        buffer, start = self.buffer, self.pos
        pos, size, count = start, len(buffer), 0
        err, eof = ERR_HEADER, EOF_HEADER  # locals: no global lookup per row
        while size - pos >= 5:
            length = buffer[pos] | buffer[pos + 1] << 8 | buffer[pos + 2] << 16
            end = pos + 4 + length
            head = buffer[pos + 4]
            if (
                end > size
                or not 0 < length < MAX_PACKET
                or buffer[pos + 3] != (seq + count) & 0xFF
                or head == err
                or (head == eof and length < 9)
            ):
                break
            pos = end
            count += 1
        self.pos = pos
        return buffer[start:pos], count

    async def payload(self) -> bytes:
        """The next payload, waiting for the relay to feed it; IncompleteReadError when
        the peer ended first."""
        while True:
            payload = self.take()
            if payload is not None:
                return payload
            if self.eof:
                raise asyncio.IncompleteReadError(self.buffer[self.pos :], None)
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None


_HEADER = struct.Struct("<I").pack  # length (3 bytes) and sequence id, little-endian


def frame(payload: bytes, seq: int) -> tuple[bytes, int]:
    """Packets carrying ``payload`` from sequence id ``seq``, and the next sequence id."""
    size = len(payload)
    if size < MAX_PACKET:
        return _HEADER(size | (seq & 0xFF) << 24) + payload, seq + 1
    out = []
    for start in range(0, len(payload) + 1, MAX_PACKET):
        chunk = payload[start : start + MAX_PACKET]
        out.append(len(chunk).to_bytes(3, "little") + bytes((seq & 0xFF,)) + chunk)
        seq += 1
    return b"".join(out), seq


# ---------------------------------------------------------------- length-encoded values


def lenenc_int(value: int) -> bytes:
    if value < 251:
        return bytes((value,))
    if value < 1 << 16:
        return b"\xfc" + value.to_bytes(2, "little")
    if value < 1 << 24:
        return b"\xfd" + value.to_bytes(3, "little")
    return b"\xfe" + value.to_bytes(8, "little")


def read_lenenc_int(data: bytes, pos: int) -> tuple[int | None, int]:
    """(value, next position); None is the NULL marker 0xFB of a text row."""
    first = data[pos]
    if first < 0xFB:
        return first, pos + 1
    if first == 0xFB:
        return None, pos + 1
    if first == 0xFC:
        return int.from_bytes(data[pos + 1 : pos + 3], "little"), pos + 3
    if first == 0xFD:
        return int.from_bytes(data[pos + 1 : pos + 4], "little"), pos + 4
    return int.from_bytes(data[pos + 1 : pos + 9], "little"), pos + 9


def lenenc_str(value: bytes) -> bytes:
    return lenenc_int(len(value)) + value


def read_lenenc_str(data: bytes, pos: int) -> tuple[bytes | None, int]:
    length, pos = read_lenenc_int(data, pos)
    if length is None:
        return None, pos
    return data[pos : pos + length], pos + length


def read_nul_str(data: bytes, pos: int) -> tuple[bytes, int]:
    end = data.index(b"\x00", pos)
    return data[pos:end], end + 1


# ---------------------------------------------------------------- generic packets


def ok_packet(status: int = SERVER_STATUS_AUTOCOMMIT, affected: int = 0) -> bytes:
    head = bytes((OK_HEADER,))
    return head + lenenc_int(affected) + lenenc_int(0) + struct.pack("<HH", status, 0)


def err_packet(code: int, sqlstate: str, message: str) -> bytes:
    head = struct.pack("<BH", ERR_HEADER, code)
    return head + b"#" + sqlstate.encode()[:5] + message.encode()


def eof_packet(status: int = SERVER_STATUS_AUTOCOMMIT) -> bytes:
    return struct.pack("<BHH", EOF_HEADER, 0, status)


def auth_switch_request(plugin: str, nonce: bytes) -> bytes:
    return bytes((AUTH_SWITCH_REQUEST,)) + plugin.encode() + b"\x00" + nonce + b"\x00"


def is_ok(payload: bytes) -> bool:
    return bool(payload) and payload[0] == OK_HEADER


def is_eof(payload: bytes) -> bool:
    return 0 < len(payload) < 9 and payload[0] == EOF_HEADER


def is_err(payload: bytes) -> bool:
    return bool(payload) and payload[0] == ERR_HEADER


def is_local_infile_request(payload: bytes) -> bool:
    return bool(payload) and payload[0] == LOCAL_INFILE_HEADER


def is_auth_switch_request(payload: bytes) -> bool:
    """During a login only: elsewhere the same byte is an EOF packet's."""
    return bool(payload) and payload[0] == AUTH_SWITCH_REQUEST


def status_of(payload: bytes) -> int:
    """Server status flags of an OK or EOF packet."""
    if payload and payload[0] == EOF_HEADER:
        return int.from_bytes(payload[3:5], "little")
    _, pos = read_lenenc_int(payload, 1)
    _, pos = read_lenenc_int(payload, pos)
    return int.from_bytes(payload[pos : pos + 2], "little")


@dataclass(frozen=True)
class ServerError:
    code: int
    sqlstate: str
    message: str

    @classmethod
    def parse(cls, payload: bytes) -> ServerError:
        code = int.from_bytes(payload[1:3], "little")
        if payload[3:4] == b"#":
            return cls(code, payload[4:9].decode(), payload[9:].decode(errors="replace"))
        return cls(code, "HY000", payload[3:].decode(errors="replace"))


# ---------------------------------------------------------------- handshake


@dataclass
class ServerHandshake:
    """Initial Handshake Packet (protocol version 10)."""

    server_version: str
    connection_id: int
    nonce: bytes
    capabilities: int
    charset: int
    status: int
    plugin: str

    def encode(self) -> bytes:
        caps = self.capabilities
        return b"".join(
            (
                bytes((HANDSHAKE_V10,)),
                self.server_version.encode() + b"\x00",
                struct.pack("<I", self.connection_id),
                self.nonce[:8],
                b"\x00",
                struct.pack("<H", caps & 0xFFFF),
                bytes((self.charset,)),
                struct.pack("<H", self.status),
                struct.pack("<H", caps >> 16),
                bytes((len(self.nonce) + 1,)),
                b"\x00" * 10,
                self.nonce[8:] + b"\x00",
                self.plugin.encode() + b"\x00",
            )
        )

    @classmethod
    def parse(cls, payload: bytes) -> ServerHandshake:
        if is_err(payload):
            error = ServerError.parse(payload)
            raise ProtocolError(f"the database refused the connection: {error.message}")
        if not payload or payload[0] != HANDSHAKE_V10:
            raise ProtocolError(f"unsupported handshake protocol {payload[:1]!r}")
        version, pos = read_nul_str(payload, 1)
        connection_id = struct.unpack_from("<I", payload, pos)[0]
        pos += 4
        nonce = payload[pos : pos + 8]
        pos += 9
        caps = struct.unpack_from("<H", payload, pos)[0]
        charset = payload[pos + 2]
        status = struct.unpack_from("<H", payload, pos + 3)[0]
        caps |= struct.unpack_from("<H", payload, pos + 5)[0] << 16
        nonce_length = payload[pos + 7]
        pos += 18
        rest = max(13, nonce_length - 8)
        nonce += payload[pos : pos + rest].rstrip(b"\x00")
        pos += rest
        plugin = ""
        if caps & CLIENT_PLUGIN_AUTH and pos < len(payload):
            plugin = payload[pos:].split(b"\x00", 1)[0].decode()
        return cls(version.decode(), connection_id, nonce, caps, charset, status, plugin)


@dataclass
class ClientHandshake:
    """Handshake Response (protocol 4.1), or its SSL Request prefix."""

    capabilities: int
    max_packet: int
    charset: int
    user: str = ""
    auth_response: bytes = b""
    database: str | None = None
    plugin: str = ""
    attributes: bytes = b""

    @classmethod
    def parse(cls, payload: bytes) -> ClientHandshake:
        if len(payload) < 32:
            raise ProtocolError("handshake response too short")
        caps, max_packet, charset = struct.unpack_from("<IIB", payload, 0)
        if not caps & CLIENT_PROTOCOL_41:
            raise ProtocolError("clients older than protocol 4.1 are not supported")
        response = cls(caps, max_packet, charset)
        if len(payload) == 32:  # SSL Request
            return response
        user, pos = read_nul_str(payload, 32)
        response.user = user.decode()
        if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA:
            auth, pos = read_lenenc_str(payload, pos)
            response.auth_response = auth or b""
        else:
            length = payload[pos]
            response.auth_response = payload[pos + 1 : pos + 1 + length]
            pos += 1 + length
        if caps & CLIENT_CONNECT_WITH_DB and pos < len(payload):
            database, pos = read_nul_str(payload, pos)
            response.database = database.decode() or None
        if caps & CLIENT_PLUGIN_AUTH and pos < len(payload):
            plugin, pos = read_nul_str(payload, pos)
            response.plugin = plugin.decode()
        if caps & CLIENT_CONNECT_ATTRS and pos < len(payload):
            response.attributes = payload[pos:]
        return response

    def encode(self) -> bytes:
        caps = self.capabilities
        parts = [
            struct.pack("<IIB", caps, self.max_packet, self.charset),
            b"\x00" * 23,
        ]
        if self.user or self.auth_response or self.plugin:
            parts.append(self.user.encode() + b"\x00")
            if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA:
                parts.append(lenenc_str(self.auth_response))
            else:
                parts.append(bytes((len(self.auth_response),)) + self.auth_response)
            if caps & CLIENT_CONNECT_WITH_DB:
                parts.append((self.database or "").encode() + b"\x00")
            if caps & CLIENT_PLUGIN_AUTH:
                parts.append(self.plugin.encode() + b"\x00")
            if caps & CLIENT_CONNECT_ATTRS:
                parts.append(self.attributes or b"\x00")
        return b"".join(parts)
