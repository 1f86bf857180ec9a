"""SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL's SASL authentication, with the agent
as the server: the client proves it holds a token, the agent checks the proof against the
token verifiers the control plane keeps (``agent.logins``), and the token never crosses the
network, TLS or not.

The primitives are the standard library's (hmac, hashlib); the verifiers are made by the
control plane with scramp (``governance.token_verifiers``), so the tests check one
implementation against another as well as against libpq.  scramp's own server cannot be
used here: it refuses the empty username (``n=,``) every PostgreSQL client sends, because
PostgreSQL takes the user from the startup packet.

An identity may hold several live tokens and the client does not say which one it uses:
the control plane gives all of an identity's tokens one salt and iteration count, so one
server-first message serves them all, and the client's proof is checked against each
token's StoredKey (a few HMACs each).  An unknown or inactive identity gets a stable
made-up salt and no verifiers, so the exchange looks the same whether or not it exists.

Over TLS the agent also offers SCRAM-SHA-256-PLUS with ``tls-server-end-point`` channel
binding (RFC 5929: a hash of the agent's certificate), which libpq uses by default
(``channel_binding=prefer``); a client that claims the server cannot bind (gs2 flag ``y``)
while it can is refused as a downgrade.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from agent.logins import LoginVerifiers, TokenVerifierInfo
from agent.postgres import codec

MECHANISM = "SCRAM-SHA-256"
MECHANISM_PLUS = "SCRAM-SHA-256-PLUS"
CHANNEL_BINDING = "tls-server-end-point"
_NO_MATCH = "unknown or revoked access token (the SCRAM proof matches none of its live tokens)"


class ScramRefused(Exception):
    """The exchange failed; ``sqlstate`` is 28P01 for a wrong proof, else 28000/08P01."""

    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def tls_server_end_point(cert_path: str) -> bytes:
    """RFC 5929's tls-server-end-point data for the agent's certificate (the first in the
    file): its DER hashed with the certificate's signature hash, SHA-256 for MD5/SHA-1."""
    with open(cert_path, "rb") as cert_file:
        cert = x509.load_pem_x509_certificate(cert_file.read())
    algorithm = cert.signature_hash_algorithm
    if algorithm is None or isinstance(algorithm, hashes.MD5 | hashes.SHA1):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(cert.public_bytes(Encoding.DER))
    return digest.finalize()


def sasl_offer(channel_binding: bytes | None) -> bytes:
    """AuthenticationSASL: the mechanisms offered, PLUS first when the channel can bind."""
    names = [MECHANISM_PLUS, MECHANISM] if channel_binding is not None else [MECHANISM]
    return codec.auth_request(codec.AUTH_SASL, b"".join(codec.cstring(n) for n in names) + b"\0")


def parse_initial_response(payload: bytes) -> tuple[str, str]:
    """SASLInitialResponse: (mechanism, client-first-message)."""
    end = payload.find(b"\0")
    if end < 0 or len(payload) < end + 5:
        raise ScramRefused("08P01", "malformed SASLInitialResponse")
    (length,) = struct.unpack_from("!i", payload, end + 1)
    data = payload[end + 5 :]
    if length != len(data):
        raise ScramRefused("08P01", "malformed SASLInitialResponse length")
    return payload[:end].decode(errors="replace"), _text(data)


def _text(data: bytes) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        raise ScramRefused("08P01", "SCRAM message is not UTF-8") from exc


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _attributes(message: str, what: str) -> list[tuple[str, str]]:
    pairs = []
    for part in message.split(","):
        if len(part) < 2 or part[1] != "=":
            raise ScramRefused("08P01", f"malformed SCRAM {what} message")
        pairs.append((part[0], part[2:]))
    return pairs


class ScramExchange:
    """One client's SCRAM exchange, tried against every verifier of its identity."""

    def __init__(self, verifiers: LoginVerifiers, channel_binding: bytes | None) -> None:
        self.verifiers = verifiers
        self.channel_binding = channel_binding
        self._gs2_header = ""
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""

    def server_first(self, mechanism: str, client_first: str) -> bytes:
        """The server-first message for the client-first one (RFC 5802 section 5.1)."""
        offered = (MECHANISM, MECHANISM_PLUS) if self.channel_binding else (MECHANISM,)
        if mechanism not in offered:
            raise ScramRefused("28000", f"SASL mechanism {mechanism!r} was not offered")
        flag, _, rest = client_first.partition(",")
        authzid, _, bare = rest.partition(",")
        if flag == "y" and self.channel_binding is not None:
            raise ScramRefused(
                "28000",
                "the client says the agent cannot bind the channel, but it can "
                "(SCRAM-SHA-256-PLUS was offered): refused as a downgrade",
            )
        binds = flag == f"p={CHANNEL_BINDING}"
        if flag not in ("n", "y") and not binds:
            raise ScramRefused("28000", f"unsupported SCRAM channel binding {flag!r}")
        if binds != (mechanism == MECHANISM_PLUS):
            raise ScramRefused("28000", f"{mechanism} with channel binding flag {flag!r}")
        attributes = _attributes(bare, "client-first")
        if authzid or len(attributes) < 2 or [k for k, _ in attributes[:2]] != ["n", "r"]:
            raise ScramRefused("08P01", "malformed SCRAM client-first message")
        client_nonce = attributes[1][1]
        if not client_nonce or not client_nonce.isprintable():
            raise ScramRefused("08P01", "malformed SCRAM client nonce")
        self._gs2_header = f"{flag},{authzid},"
        self._client_first_bare = bare
        self._nonce = client_nonce + base64.b64encode(os.urandom(18)).decode()
        verifiers = self.verifiers
        self._server_first = f"r={self._nonce},s={_b64(verifiers.salt)},i={verifiers.iterations}"
        return self._server_first.encode()

    def server_final(self, client_final: str) -> tuple[TokenVerifierInfo, bytes]:
        """The token whose verifier the proof matches and the server-final message."""
        without_proof, _, proof_part = client_final.rpartition(",")
        attributes = dict(_attributes(without_proof, "client-final"))
        if not proof_part.startswith("p=") or "c" not in attributes or "r" not in attributes:
            raise ScramRefused("08P01", "malformed SCRAM client-final message")
        expected = self._gs2_header.encode()
        if self._gs2_header.startswith("p="):
            expected += self.channel_binding or b""
        if not hmac.compare_digest(attributes["c"].encode(), _b64(expected).encode()):
            raise ScramRefused("28000", "SCRAM channel binding does not match this connection")
        if attributes["r"] != self._nonce:
            raise ScramRefused("08P01", "SCRAM nonce does not match")
        try:
            proof = base64.b64decode(proof_part[2:], validate=True)
        except ValueError as exc:
            raise ScramRefused("08P01", "malformed SCRAM proof") from exc
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        if len(proof) == hashlib.sha256().digest_size:
            for token in self.verifiers.tokens:
                signature = _hmac(token.scram_stored_key, auth_message)
                client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
                if hmac.compare_digest(hashlib.sha256(client_key).digest(), token.scram_stored_key):
                    server_signature = _hmac(token.scram_server_key, auth_message)
                    return token, f"v={_b64(server_signature)}".encode()
        raise ScramRefused("28P01", _NO_MATCH)
