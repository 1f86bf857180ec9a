"""Test doubles: a logged-in session's relays driven without sockets (tests, benchmarks)."""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from agent.postgres.relay import Relay
from agent.postgres.session import Session
from agent.verdicts import Identity


class MemoryTransport:
    """A transport stand-in for ``detached_relays``: counts (and with ``keep``, keeps) the
    bytes written; flow control does nothing."""

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self.data = bytearray()
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)
        if self.keep:
            self.data += data

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 50000) if name == "peername" else default

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def set_write_buffer_limits(self, high: int | None = None) -> None: ...
    def is_closing(self) -> bool:
        return False


def detached_relays(
    agent: Any, identity: Identity, client: Any, upstream: Any, *, native: bool
) -> tuple[Relay, Relay]:
    """A logged-in session's two relays over the given transport-like objects, without
    sockets (benchmarks and tests drive ``data_received`` themselves).  Returns
    (client → upstream, upstream → client); ``relay.session`` is the Session."""
    session = Session(
        agent,
        asyncio.StreamReader(),
        cast(Any, SimpleNamespace(transport=client, get_extra_info=client.get_extra_info)),
    )
    session.identity = identity
    session.upstream = cast(Any, SimpleNamespace(reader=asyncio.StreamReader(), writer=None))
    done: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
    to_upstream, to_client = session._relay_pair(client, upstream, session.reader, done)
    if native:
        session.attach_fast_path(to_upstream, to_client)
    return to_upstream, to_client


def self_signed_certificate(
    directory: Path, common_name: str = "warden-agent-test"
) -> tuple[str, str]:
    """A throwaway EC certificate and key (PEM files in ``directory``) for TLS to the agent
    in tests and benchmarks: (certificate path, key path)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "agent.crt", directory / "agent.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)
