"""Authentication on both sides of the agent.

Client side: the agent needs the caller's Warden token itself (the control plane checks
it), so it asks for the password in a form it can read without ever taking it in clear
over plain TCP:

* ``caching_sha2_password`` full authentication (what MySQL 8 clients use by default, and
  MariaDB Connector/C ships as a plugin): over TLS the client sends the password, without
  TLS it asks for the agent's RSA public key and sends the password encrypted with it
  (RSA-OAEP, XOR-ed with the nonce);
* ``mysql_clear_password`` only over TLS, or on a loopback connection when the operator
  allowed it explicitly (``--mysql-cleartext-loopback``, for local tests and sidecars).

A client that offers anything else is switched to ``caching_sha2_password``.

Upstream side: the datasource's credentials with ``mysql_native_password`` (MariaDB,
MySQL 5.7) or ``caching_sha2_password`` (MySQL 8: fast path, or full authentication over
TLS / with the server's RSA key).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import os
import ssl
from dataclasses import dataclass
from functools import cache

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from agent.mysql import packets as p
from agent.upstream import UpstreamConfig

log = logging.getLogger("agent.mysql.auth")

CACHING_SHA2 = "caching_sha2_password"
CLEAR = "mysql_clear_password"
NATIVE = "mysql_native_password"
_PERFORM_FULL_AUTH = b"\x01\x04"
_FAST_AUTH_OK = b"\x01\x03"
_REQUEST_PUBLIC_KEY = b"\x02"
# Collations whose character set reads every ASCII byte as ASCII (see vocabulary.SAFE_CHARSETS):
# utf8mb4, utf8mb3, latin1, ascii, binary.
SAFE_COLLATIONS = frozenset(
    {45, 46, *range(224, 248), 255, 33, 83, *range(192, 216), 223, 5, 8, 15, 31, 47, 48, 49, 94}
    | {11, 65, 63}
)


class AuthRefused(Exception):
    """The client's authentication cannot be accepted; the message goes to the client."""


@dataclass
class ClientLogin:
    handshake: p.ClientHandshake
    token: str
    seq: int  # the sequence id of the agent's next packet (its final OK or ERR)
    tls: bool
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


def new_nonce() -> bytes:
    """20 bytes without NUL (the handshake carries it NUL-terminated)."""
    return bytes(1 + b % 127 for b in os.urandom(20))


@cache
def rsa_key() -> rsa.RSAPrivateKey:
    """The agent's RSA key for caching_sha2_password without TLS (one per process)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _public_pem() -> bytes:
    return (
        rsa_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)


def _xor(data: bytes, nonce: bytes) -> bytes:
    return bytes(b ^ nonce[i % len(nonce)] for i, b in enumerate(data))


def is_loopback(peer: object) -> bool:
    if not isinstance(peer, tuple) or not peer:
        return False
    try:
        return ipaddress.ip_address(peer[0]).is_loopback
    except ValueError:
        return False


class _Conversation:
    """One client's authentication exchange (sequence ids continue across packets)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.seq = 0

    async def send(self, payload: bytes) -> None:
        data, self.seq = p.frame(payload, self.seq)
        self.writer.write(data)
        await self.writer.drain()

    async def receive(self) -> bytes:
        seq, payload = await p.read_payload(self.reader)
        self.seq = seq + 1
        return payload


async def accept_client(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    handshake: p.ServerHandshake,
    ssl_context: ssl.SSLContext | None,
    cleartext_loopback: bool,
) -> ClientLogin:
    """Run the client's side of the login up to the point where the agent knows the
    token; the caller checks it and sends OK or ERR (sequence id ``seq``)."""
    talk = _Conversation(reader, writer)
    await talk.send(handshake.encode())
    response = p.ClientHandshake.parse(await talk.receive())
    tls = False
    if response.capabilities & p.CLIENT_SSL:
        if ssl_context is None:
            raise AuthRefused("TLS was requested but the agent has no certificate")
        await writer.start_tls(ssl_context)
        tls = True
        response = p.ClientHandshake.parse(await talk.receive())
    if response.capabilities & p.CLIENT_COMPRESS:
        raise AuthRefused("compression is not supported by the Warden agent")
    loopback_ok = cleartext_loopback and is_loopback(writer.get_extra_info("peername"))
    if response.plugin == CLEAR:
        if not (tls or loopback_ok):
            raise AuthRefused(
                "mysql_clear_password would send the token in clear over plain TCP; "
                "connect with TLS or use caching_sha2_password"
            )
        token = response.auth_response.rstrip(b"\x00").decode()
        return ClientLogin(response, token, talk.seq, tls, reader, writer)
    if response.plugin != CACHING_SHA2:
        await talk.send(b"\xfe" + CACHING_SHA2.encode() + b"\x00" + handshake.nonce + b"\x00")
        await talk.receive()  # the client's scramble: useless, the agent needs the token
    await talk.send(_PERFORM_FULL_AUTH)
    answer = await talk.receive()
    if tls or (loopback_ok and answer != _REQUEST_PUBLIC_KEY and len(answer) != 256):
        return ClientLogin(response, answer.rstrip(b"\x00").decode(), talk.seq, tls, reader, writer)
    if answer == _REQUEST_PUBLIC_KEY:
        await talk.send(b"\x01" + _public_pem())
        answer = await talk.receive()
    log.debug("caching_sha2 full auth answer: %d bytes", len(answer))
    try:
        plain = rsa_key().decrypt(answer, _OAEP)
    except ValueError as exc:
        raise AuthRefused(
            "caching_sha2_password without TLS needs the RSA exchange; the token was not "
            "accepted in clear over plain TCP (connect with TLS)"
        ) from exc
    token = _xor(plain, handshake.nonce).rstrip(b"\x00").decode()
    return ClientLogin(response, token, talk.seq, tls, reader, writer)


# ---------------------------------------------------------------- upstream


def native_scramble(password: str, nonce: bytes) -> bytes:
    if not password:
        return b""
    stage1 = hashlib.sha1(password.encode()).digest()
    stage2 = hashlib.sha1(stage1).digest()
    return bytes(
        a ^ b for a, b in zip(stage1, hashlib.sha1(nonce[:20] + stage2).digest(), strict=True)
    )


def sha2_scramble(password: str, nonce: bytes) -> bytes:
    if not password:
        return b""
    stage1 = hashlib.sha256(password.encode()).digest()
    stage2 = hashlib.sha256(hashlib.sha256(stage1).digest() + nonce[:20]).digest()
    return bytes(a ^ b for a, b in zip(stage1, stage2, strict=True))


def _scramble(plugin: str, password: str, nonce: bytes) -> bytes:
    if plugin == NATIVE:
        return native_scramble(password, nonce)
    if plugin == CACHING_SHA2:
        return sha2_scramble(password, nonce)
    raise p.ProtocolError(f"the database asks for the unsupported auth plugin {plugin!r}")


@dataclass
class UpstreamLink:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    handshake: p.ServerHandshake
    capabilities: int


async def connect_upstream(
    config: UpstreamConfig,
    *,
    capabilities: int,
    charset: int,
    database: str | None,
) -> UpstreamLink:
    """Log in to the database with the datasource's credentials (``config``)."""
    reader, writer = await asyncio.open_connection(config.host, config.port, limit=1 << 20)
    try:
        return await _login(reader, writer, config, capabilities, charset, database)
    except BaseException:
        writer.close()
        raise


async def _login(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    config: UpstreamConfig,
    capabilities: int,
    charset: int,
    database: str | None,
) -> UpstreamLink:
    talk = _Conversation(reader, writer)
    server = p.ServerHandshake.parse(await talk.receive())
    caps = (capabilities & p.AGENT_CAPABILITIES & server.capabilities) | (
        p.CLIENT_PROTOCOL_41 | p.CLIENT_SECURE_CONNECTION | p.CLIENT_PLUGIN_AUTH
    )
    caps &= ~p.CLIENT_CONNECT_ATTRS
    caps = caps | p.CLIENT_CONNECT_WITH_DB if database else caps & ~p.CLIENT_CONNECT_WITH_DB
    tls = False
    context = config.ssl_context
    if context is not None and server.capabilities & p.CLIENT_SSL:
        caps |= p.CLIENT_SSL
        await talk.send(p.ClientHandshake(caps, 1 << 24, charset).encode())
        hostname = config.host if context.check_hostname else None
        await writer.start_tls(context, server_hostname=hostname)
        tls = True
    elif config.sslmode not in ("disable", "prefer"):
        raise p.ProtocolError(f"the database does not offer TLS (sslmode {config.sslmode})")
    plugin = server.plugin or NATIVE
    nonce = server.nonce
    response = p.ClientHandshake(
        caps,
        1 << 24,
        charset,
        user=config.user,
        auth_response=_scramble(plugin, config.password, nonce),
        database=database,
        plugin=plugin,
    )
    await talk.send(response.encode())
    while True:
        answer = await talk.receive()
        if answer[:1] == b"\x00":
            return UpstreamLink(reader, writer, server, caps)
        if answer[:1] == b"\xff":
            error = p.ServerError.parse(answer)
            raise p.ProtocolError(f"the database refused the login: {error.message}")
        if answer[:1] == b"\xfe":  # AuthSwitchRequest
            name, pos = p.read_nul_str(answer, 1)
            plugin, nonce = name.decode(), answer[pos:].rstrip(b"\x00")
            await talk.send(_scramble(plugin, config.password, nonce))
        elif answer == _FAST_AUTH_OK:
            continue
        elif answer == _PERFORM_FULL_AUTH:
            await talk.send(await _full_sha2(talk, config.password, nonce, tls))
        else:
            raise p.ProtocolError(f"unexpected packet during the database login: {answer[:8]!r}")


async def _full_sha2(talk: _Conversation, password: str, nonce: bytes, tls: bool) -> bytes:
    """caching_sha2_password full authentication as a client: clear over TLS, else RSA."""
    if tls:
        return password.encode() + b"\x00"
    await talk.send(_REQUEST_PUBLIC_KEY)
    pem = (await talk.receive())[1:]
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, rsa.RSAPublicKey):
        raise p.ProtocolError("the database's public key is not an RSA key")
    return key.encrypt(_xor(password.encode() + b"\x00", nonce[:20]), _OAEP)
