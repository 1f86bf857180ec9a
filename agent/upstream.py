"""Where and how the agent reaches the upstream database: address, credentials and TLS
verification, as libpq's sslmode spells it (the same options for every protocol)."""

from __future__ import annotations

import functools
import ssl
from dataclasses import dataclass

# libpq's modes; "allow" (plaintext first, TLS only if refused) is not offered.
SSL_MODES = ("disable", "prefer", "require", "verify-ca", "verify-full")


@dataclass(frozen=True)
class UpstreamConfig:
    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    password: str = ""
    database: str = "postgres"
    # As libpq: prefer TLS when the server offers it; require/verify-* refuse plaintext.
    sslmode: str = "prefer"
    sslrootcert: str | None = None  # CA bundle for verify-ca/verify-full (else system CAs)
    sslcert: str | None = None  # client certificate, for servers that ask for one
    sslkey: str | None = None

    def __post_init__(self) -> None:
        if self.sslmode not in SSL_MODES:
            raise ValueError(
                f"unknown upstream sslmode {self.sslmode!r}; use one of {', '.join(SSL_MODES)}"
            )
        if self.sslmode == "verify-ca" and not self.sslrootcert:
            # Without a name check, any certificate from any public CA would pass.
            raise ValueError(
                "upstream sslmode verify-ca needs the CA that signs the server's certificate "
                "(--upstream-sslrootcert); verify-full alone trusts the system CA store"
            )

    @functools.cached_property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for this mode (built once), or None for ``disable``."""
        if self.sslmode == "disable":
            return None
        verify = self.sslmode in ("verify-ca", "verify-full") or (
            # libpq: require with a root certificate given verifies the chain like verify-ca
            self.sslmode == "require" and self.sslrootcert is not None
        )
        context = ssl.create_default_context(cafile=self.sslrootcert)
        context.check_hostname = self.sslmode == "verify-full"
        if not verify:
            context.verify_mode = ssl.CERT_NONE
        if self.sslcert:
            context.load_cert_chain(self.sslcert, self.sslkey)
        return context
