"""Authentication on both sides of the agent.

Client side, by ``--client-auth``:

* ``scram`` (the default): ``mysql_native_password`` against the token verifiers the
  control plane keeps (``agent.logins``): the client sends SHA1(token) XOR
  SHA1(nonce + SHA1(SHA1(token))), the agent recovers SHA1(token) with each of the
  identity's verifiers SHA1(SHA1(token)) and compares.  The token never crosses the network
  and the agent never holds it.  A client that offers another plugin is switched to it
  (AuthSwitchRequest), except ``mysql_clear_password``, which follows the cleartext rule,
  and ``caching_sha2_password`` over TLS (MySQL 9 clients may lack the native plugin),
  which sends the token inside TLS as in ``password`` mode.
* ``password``: the token itself, read with ``caching_sha2_password`` full authentication
  (what MySQL 8+ clients use by default) or ``mysql_clear_password``, and checked with the
  control plane.  Only over TLS.

Cleartext (either plugin) is accepted only over TLS, or when the operator allowed it
explicitly: ``--allow-insecure-listen``, or ``--mysql-cleartext-loopback`` for loopback
peers (local tests and sidecars).

Upstream side: the datasource's credentials with ``mysql_native_password`` (MariaDB,
MySQL 5.7) or ``caching_sha2_password`` (MySQL 8: fast path, or full authentication over
TLS / with the server's RSA key).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import os
import ssl
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from agent.controlplane import ControlPlaneUnavailable
from agent.logins import Logins, LoginVerifiers, TokenVerifierInfo
from agent.mysql import packets as p
from agent.starttls import start_tls_keeping_early_bytes
from agent.upstream import UpstreamConfig

CACHING_SHA2 = "caching_sha2_password"
CLEAR = "mysql_clear_password"
NATIVE = "mysql_native_password"
# caching_sha2_password's AuthMoreData: the server has no cached hash (full auth), or has.
_PERFORM_FULL_AUTH = bytes((p.AUTH_MORE_DATA, 0x04))
_FAST_AUTH_OK = bytes((p.AUTH_MORE_DATA, 0x03))
_REQUEST_PUBLIC_KEY = b"\x02"
# Collations whose character set reads every ASCII byte as ASCII (see vocabulary.SAFE_CHARSETS):
# utf8mb4, utf8mb3, latin1, ascii, binary.
SAFE_COLLATIONS = frozenset(
    {45, 46, *range(224, 248), 255, 33, 83, *range(192, 216), 223, 5, 8, 15, 31, 47, 48, 49, 94}
    | {11, 65, 63}
)
_NOT_IN_CLEAR = (
    "the Warden agent takes a token as a cleartext password only over TLS (it would cross "
    "the network in clear): connect with TLS, or let the client use mysql_native_password"
)


class AuthRefused(Exception):
    """The client's authentication cannot be accepted; the message goes to the client
    in an ERR packet with sequence id ``seq``."""

    def __init__(self, message: str, seq: int) -> None:
        super().__init__(message)
        self.seq = seq


@dataclass
class ClientLogin:
    handshake: p.ClientHandshake
    seq: int  # the sequence id of the agent's next packet (its final OK or ERR)
    tls: bool
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    token: str | None = None  # sent as a password (TLS only): the control plane checks it
    # Challenge-response: the identity's verifiers and the one the scramble matched (None:
    # no token matched; the login is reported and refused).
    verifiers: LoginVerifiers | None = None
    matched: TokenVerifierInfo | None = None


@dataclass(frozen=True)
class ClientAuthPolicy:
    mode: str  # "scram" (challenge-response against verifiers) or "password"
    allow_insecure: bool  # cleartext without TLS from anyone (--allow-insecure-listen)
    cleartext_loopback: bool  # cleartext without TLS from loopback peers


def new_nonce() -> bytes:
    """20 bytes without NUL (the handshake carries it NUL-terminated)."""
    return bytes(1 + b % 127 for b in os.urandom(20))


def native_match(
    verifiers: LoginVerifiers, nonce: bytes, scramble: bytes
) -> TokenVerifierInfo | None:
    """The token whose SHA1(SHA1(token)) verifies this mysql_native_password scramble."""
    if len(scramble) != 20:
        return None
    for token in verifiers.tokens:
        stored = token.mysql_native
        if stored is None:
            continue
        mask = hashlib.sha1(nonce[:20] + stored).digest()
        stage1 = bytes(a ^ b for a, b in zip(scramble, mask, strict=True))
        if hmac.compare_digest(hashlib.sha1(stage1).digest(), stored):
            return token
    return None


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

    def refuse(self, message: str) -> AuthRefused:
        return AuthRefused(message, self.seq)


async def accept_client(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    handshake: p.ServerHandshake,
    ssl_context: ssl.SSLContext | None,
    policy: ClientAuthPolicy,
    logins: Logins,
) -> ClientLogin:
    """Run the client's side of the login up to the point where the agent knows which
    token the client proved (or the token itself, over TLS); the caller reports or checks
    it and sends OK or ERR (sequence id ``seq``)."""
    talk = _Conversation(reader, writer)
    await talk.send(handshake.encode())
    response = p.ClientHandshake.parse(await talk.receive())
    tls = False
    if response.capabilities & p.CLIENT_SSL:
        if ssl_context is None:
            raise talk.refuse("TLS was requested but the agent has no certificate")
        await start_tls_keeping_early_bytes(reader, writer, ssl_context)
        tls = True
        response = p.ClientHandshake.parse(await talk.receive())
    if response.capabilities & p.CLIENT_COMPRESS:
        raise talk.refuse("compression is not supported by the Warden agent")
    cleartext_ok = (
        tls
        or policy.allow_insecure
        or (policy.cleartext_loopback and is_loopback(writer.get_extra_info("peername")))
    )

    def login(**found: object) -> ClientLogin:
        return ClientLogin(response, talk.seq, tls, reader, writer, **found)  # type: ignore[arg-type]

    if response.plugin == CLEAR:
        if not cleartext_ok:
            raise talk.refuse(_NOT_IN_CLEAR)
        return login(token=response.auth_response.rstrip(b"\x00").decode())
    # MySQL 9 clients may lack mysql_native_password; over TLS they send the token instead.
    if policy.mode == "scram" and not (tls and response.plugin == CACHING_SHA2):
        scramble = response.auth_response
        if response.plugin != NATIVE:
            await talk.send(p.auth_switch_request(NATIVE, handshake.nonce))
            scramble = await talk.receive()
        try:
            verifiers = await logins.verifiers(response.user)
        except ControlPlaneUnavailable as exc:
            raise talk.refuse(
                "Warden: the control plane is unreachable and the token is not cached"
            ) from exc
        return login(
            verifiers=verifiers, matched=native_match(verifiers, handshake.nonce, scramble)
        )
    if not cleartext_ok:
        raise talk.refuse(_NOT_IN_CLEAR)
    if response.plugin != CACHING_SHA2:
        await talk.send(p.auth_switch_request(CACHING_SHA2, handshake.nonce))
        await talk.receive()  # the client's scramble: useless, the agent needs the token
    await talk.send(_PERFORM_FULL_AUTH)
    answer = await talk.receive()
    return login(token=answer.rstrip(b"\x00").decode(errors="replace"))


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
        if p.is_ok(answer):
            return UpstreamLink(reader, writer, server, caps)
        if p.is_err(answer):
            error = p.ServerError.parse(answer)
            raise p.ProtocolError(f"the database refused the login: {error.message}")
        if p.is_auth_switch_request(answer):
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
