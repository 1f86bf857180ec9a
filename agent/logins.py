"""Client logins in which the token never reaches the agent (nor crosses the network).

For every live personal access token the control plane keeps verifiers, computed when the
token was created: SCRAM-SHA-256's salt, iteration count, StoredKey and ServerKey, and
mysql_native_password's SHA1(SHA1(token)).  The agent fetches an identity's verifiers
(``GET /api/v1/agent/verifiers``), runs the protocol's challenge-response against each of
the identity's tokens (all of them share the identity's salt, so one SCRAM exchange tries
them all), and reports the outcome (``POST /api/v1/agent/logins``): the control plane
audits it, marks the token used and answers whether it still accepts the token.

Both answers are cached for ``FRESH_SECONDS`` like cleartext token checks
(``Agent.authenticate``); during a control-plane outage verifiers fetched within
``stale_seconds`` still log people in, so an outage does not lock everybody out at once.
"""

from __future__ import annotations

import time

from agent.controlplane import AuthResult, ControlPlaneClient, ControlPlaneUnavailable
from warden_client.operations import LoginVerifiers, TokenVerifierInfo

__all__ = ["FRESH_SECONDS", "LoginVerifiers", "Logins", "TokenVerifierInfo"]

FRESH_SECONDS = 30.0
_MAX_CACHED = 10_000  # identities; a flood of made-up names cannot grow the cache forever
UNKNOWN_TOKEN = "unknown or revoked access token"


class Logins:
    """The agent's side of challenge-response logins: verifiers in, outcomes out."""

    def __init__(self, cp: ControlPlaneClient, datasource: str, *, stale_seconds: float) -> None:
        self.cp = cp
        self.datasource = datasource
        self.stale_seconds = stale_seconds
        self._verifiers: dict[str, tuple[LoginVerifiers, float]] = {}
        self._accepted: dict[tuple[str, int], tuple[AuthResult, float]] = {}

    def forget(self) -> None:
        """Drop every cached answer (the next login asks the control plane again)."""
        self._verifiers.clear()
        self._accepted.clear()

    async def verifiers(self, identity: str) -> LoginVerifiers:
        """The identity's verifiers; ControlPlaneUnavailable when they are neither fresh
        nor fetchable and no copy younger than ``stale_seconds`` is cached."""
        cached = self._verifiers.get(identity)
        now = time.monotonic()
        if cached is not None and now - cached[1] < FRESH_SECONDS:
            return cached[0]
        try:
            fetched = await self.cp.login_verifiers(self.datasource, identity)
        except ControlPlaneUnavailable:
            if cached is not None and now - cached[1] < self.stale_seconds:
                return cached[0]
            raise
        if len(self._verifiers) >= _MAX_CACHED:
            self._verifiers.clear()
        self._verifiers[identity] = (fetched, now)
        return fetched

    async def record(
        self,
        verifiers: LoginVerifiers,
        token: TokenVerifierInfo | None,
        *,
        mechanism: str,
        source_address: str = "",
        application: str = "",
    ) -> AuthResult:
        """Report the login (``token`` None: the client's proof matched none) and return
        whether it is accepted, with the identity's kind and groups."""
        identity = verifiers.identity
        now = time.monotonic()
        key = (identity, token.id if token is not None else 0)
        cached = self._accepted.get(key) if token is not None else None
        if cached is not None and now - cached[1] < FRESH_SECONDS:
            return cached[0]
        try:
            result = await self.cp.login_record(
                self.datasource,
                identity,
                token.id if token is not None else None,
                mechanism=mechanism,
                source_address=source_address,
                application=application,
            )
        except ControlPlaneUnavailable:
            if token is None:
                return AuthResult(False, identity, detail=UNKNOWN_TOKEN)
            # The proof matched verifiers no older than stale_seconds (``verifiers``).
            return AuthResult(True, identity, verifiers.kind, verifiers.groups)
        if result.ok and token is not None:
            if len(self._accepted) >= _MAX_CACHED:
                self._accepted.clear()
            self._accepted[key] = (result, now)
        elif token is not None:  # revoked since the verifiers were fetched
            self._verifiers.pop(identity, None)
        return result
