"""Client logins checked with the control plane: mostly ones in which the token never
reaches the agent (nor crosses the network), and tokens sent as cleartext passwords.

For every live personal access token the control plane keeps verifiers, computed when the
token was created: SCRAM-SHA-256's salt, iteration count, StoredKey and ServerKey, and
mysql_native_password's SHA1(SHA1(token)).  The agent fetches an identity's verifiers
(``GET /api/v1/agent/verifiers``), runs the protocol's challenge-response against each of
the identity's tokens (all of them share the identity's salt, so one SCRAM exchange tries
them all), and reports the outcome (``POST /api/v1/agent/logins``): the control plane
audits it, marks the token used and answers whether it still accepts the token.

A login the control plane audited as accepted (``auth.agent_login``) whose session then
never starts (the client goes away, the upstream refuses, the login times out) is followed
up (``abandoned``: ``POST /api/v1/agent/logins/abandoned``, audited as
``auth.agent_login_abandoned``): the trail keeps the proof of the token, which happened,
and says no session came of it.  The accepted login is reported before the session exists
because the control plane's answer (is the token still live?) decides whether it may.  That
answer carries the sequence of the login's audit event (``login_sequence``) and the
follow-up names it back, so it lands on exactly that login, not on another login of the
same token (another address, another worker) in flight at the same time.  A token sent as a
cleartext password (``check_password``, ``POST /api/v1/agent/authenticate``) is followed
up the same way.  A follow-up the control plane could not take (unreachable, or a 5xx) is
sent again every ``RETRY_SECONDS`` (``follow_up_later``) while the control plane still
matches it to its login (``FOLLOW_UP_SECONDS`` after the login); one it refuses (4xx: the
login is not one it can follow up) is logged and dropped.  The waiting ones are also kept in
the agent's state directory (``waiting_path``, rewritten whenever they change), so an agent
that stops or is killed during the outage sends them from its next start, while the control
plane can still match them (their age is wall-clock time across the restart).

Every answer is cached for ``FRESH_SECONDS`` (a cached answer wrote no login to follow
up); during a control-plane outage verifiers fetched, or a password accepted, within
``stale_seconds`` still log people in, so an outage does not lock everybody out at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from agent.audit import SET_ASIDE_SUFFIX
from agent.controlplane import AuthResult, ControlPlaneClient, ControlPlaneUnavailable
from warden_client.operations import ApiError, LoginVerifiers, TokenVerifierInfo

__all__ = ["FRESH_SECONDS", "LoginVerifiers", "Logins", "ReportedLogin", "TokenVerifierInfo"]

log = logging.getLogger("agent.logins")
K = TypeVar("K")
V = TypeVar("V")

FRESH_SECONDS = 30.0
_MAX_CACHED = 10_000  # identities; a flood of made-up names cannot grow the cache forever
UNKNOWN_TOKEN = "unknown or revoked access token"
PASSWORD = "password"  # the mechanism the control plane audits a cleartext token check as
# The control plane matches a follow-up to its login for 10 minutes after the login
# (governance.services.agent_logins.FOLLOW_UP_WINDOW); retries stop a little before.
FOLLOW_UP_SECONDS = 9 * 60.0
RETRY_SECONDS = 5.0
_MAX_UNREPORTED = 1000  # follow-ups waiting for the control plane; the oldest go first


@dataclass(frozen=True, slots=True)
class ReportedLogin:
    """A login the control plane audited as accepted: a follow-up names it the same way,
    and by its audit event (``login_sequence``)."""

    identity: str
    token_id: int
    login_sequence: int
    mechanism: str
    source_address: str
    application: str
    accepted_at: float  # time.monotonic() of the control plane's answer
    accepted_wall: float  # and its time.time(), for an age across a restart


def _reported(
    result: AuthResult, identity: str, mechanism: str, source_address: str, application: str
) -> ReportedLogin | None:
    """The accepted login as the control plane audited it (None: refused, or its answer
    names no audit event, as an older control plane's does)."""
    if not result.ok or result.token_id is None or result.login_sequence is None:
        return None
    return ReportedLogin(
        identity,
        result.token_id,
        result.login_sequence,
        mechanism,
        source_address,
        application,
        time.monotonic(),
        time.time(),
    )


def _remember(cache: dict[K, tuple[V, float]], key: K, value: V, now: float) -> None:
    """Cache an answer; a full cache starts again (a flood of made-up names cannot grow it)."""
    if len(cache) >= _MAX_CACHED:
        cache.clear()
    cache[key] = (value, now)


class Logins:
    """The agent's side of client logins: verifiers in, challenge-response outcomes and
    cleartext tokens out, accepted logins whose session never started followed up."""

    def __init__(
        self,
        cp: ControlPlaneClient,
        datasource: str,
        *,
        stale_seconds: float,
        waiting_path: Path | None = None,
    ) -> None:
        self.cp = cp
        self.datasource = datasource
        self.stale_seconds = stale_seconds
        self._verifiers: dict[str, tuple[LoginVerifiers, float]] = {}
        self._accepted: dict[tuple[str, int], tuple[AuthResult, float]] = {}
        self._checked: dict[tuple[str, str], tuple[AuthResult, float]] = {}  # passwords
        # Follow-ups the control plane could not take yet, with their reasons; a copy in
        # waiting_path (None: in memory only).
        self.unreported: deque[tuple[ReportedLogin, str]] = deque(maxlen=_MAX_UNREPORTED)
        self.waiting_path = waiting_path

    def forget(self) -> None:
        """Drop every cached answer (the next login asks the control plane again)."""
        self._verifiers.clear()
        self._accepted.clear()
        self._checked.clear()

    async def check_password(
        self, identity: str, token: str, *, source_address: str = "", application: str = ""
    ) -> tuple[AuthResult, ReportedLogin | None]:
        """Check a token the client sent as a cleartext password; the answer, and the login
        as the control plane audited it when it accepted it (None as in ``record``).  A
        refusal is cached too, and an accepted answer still serves for ``stale_seconds``
        while the control plane is unreachable."""
        key = (identity, hashlib.sha256(token.encode()).hexdigest())
        cached = self._checked.get(key)
        now = time.monotonic()
        if cached is not None and now - cached[1] < FRESH_SECONDS:
            return cached[0], None
        try:
            result = await self.cp.authenticate(
                self.datasource,
                identity,
                token,
                source_address=source_address,
                application=application,
            )
        except ControlPlaneUnavailable:
            if cached is not None and cached[0].ok and now - cached[1] < self.stale_seconds:
                return cached[0], None
            raise
        _remember(self._checked, key, result, now)
        return result, _reported(result, identity, PASSWORD, source_address, application)

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
        _remember(self._verifiers, identity, fetched, now)
        return fetched

    async def record(
        self,
        verifiers: LoginVerifiers,
        token: TokenVerifierInfo | None,
        *,
        mechanism: str,
        source_address: str = "",
        application: str = "",
    ) -> tuple[AuthResult, ReportedLogin | None]:
        """Report the login (``token`` None: the client's proof matched none) and return
        whether it is accepted, with the identity's kind and groups, and the login as the
        control plane audited it when it did (None: refused, or answered from the cache or
        during an outage, so no accepted login is in the trail to follow up)."""
        identity = verifiers.identity
        now = time.monotonic()
        key = (identity, token.id if token is not None else 0)
        cached = self._accepted.get(key) if token is not None else None
        if cached is not None and now - cached[1] < FRESH_SECONDS:
            return cached[0], None
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
                return AuthResult(False, identity, detail=UNKNOWN_TOKEN), None
            # The proof matched verifiers no older than stale_seconds (``verifiers``).
            return AuthResult(True, identity, verifiers.kind, verifiers.groups), None
        if result.ok and token is not None:
            _remember(self._accepted, key, result, now)
            return result, _reported(result, identity, mechanism, source_address, application)
        if token is not None:  # revoked since the verifiers were fetched
            self._verifiers.pop(identity, None)
        return result, None

    async def abandoned(self, login: ReportedLogin, reason: str) -> None:
        """Follow up an accepted login whose session never started.  While the control plane
        cannot take it, it waits in ``unreported`` for ``follow_up_later``."""
        if not await self._follow_up(login, reason):
            self._wait(login, reason)
            self._save_waiting()

    async def follow_up_later(self) -> None:
        """Send the waiting follow-ups again, every ``RETRY_SECONDS``, until each is taken,
        refused, or too old for the control plane to match (then logged as lost)."""
        while True:
            await asyncio.sleep(RETRY_SECONDS)
            try:
                await self.retry_unreported()
            except Exception:  # a bug must not end the retries for the agent's lifetime
                log.exception("retrying login follow-ups failed")

    def forget_unreported(self) -> None:
        """The agent stops: what still waits stays in ``waiting_path`` for its next start
        (without one, or when it cannot be written, it is lost), each one logged."""
        kept = self._save_waiting()
        while self.unreported:
            login, reason = self.unreported.popleft()
            if kept:
                _log_follow_up(login, reason, f"waits in {self.waiting_path} for the next start")
            else:
                self._lost(login, reason, "the agent stopped first")

    def restore_waiting(self, former: list[Path]) -> int:
        """At start: the follow-ups a stopped or killed agent left in ``waiting_path`` (and
        former workers in ``former``, taken over) wait again, the control plane's window
        counted from their logins; those past it are logged as lost.  Returns how many
        wait."""
        now, wall = time.monotonic(), time.time()
        entries: list[tuple[ReportedLogin, str]] = []
        found: list[Path] = []
        own = [] if self.waiting_path is None else [self.waiting_path]
        for path in [*own, *former]:
            try:
                saved = json.loads(path.read_text(encoding="utf-8"))
                entries += [(_saved_login(item, now, wall), str(item["reason"])) for item in saved]
            except FileNotFoundError:
                continue
            except (OSError, ValueError, KeyError, TypeError) as exc:
                aside = path.with_name(f"{path.name}.{int(wall)}{SET_ASIDE_SUFFIX}")
                log.error(
                    "login follow-ups in %s are unreadable (%s): set aside as %s", path, exc, aside
                )
                with contextlib.suppress(OSError):
                    path.replace(aside)
                continue
            found.append(path)
        for login, reason in sorted(entries, key=lambda entry: entry[0].accepted_wall):
            if now - login.accepted_at > FOLLOW_UP_SECONDS:
                self._lost(login, reason, "the control plane's window passed meanwhile")
            else:
                self._wait(login, reason)
        if self._save_waiting():  # former workers' files go once their entries are in ours
            for path in found:
                if path != self.waiting_path:
                    path.unlink(missing_ok=True)
        return len(self.unreported)

    async def retry_unreported(self) -> None:
        """One round of ``follow_up_later``: the control plane stays unreachable for the
        rest as soon as one follow-up finds it so."""
        changed = False
        try:
            while self.unreported:
                login, reason = self.unreported[0]
                if time.monotonic() - login.accepted_at > FOLLOW_UP_SECONDS:
                    self.unreported.popleft()
                    changed = True
                    self._lost(login, reason, "the control plane was unreachable for too long")
                    continue
                if not await self._follow_up(login, reason):
                    return
                if self.unreported and self.unreported[0][0] is login:
                    self.unreported.popleft()
                    changed = True
        finally:
            # Another follow-up may have been added (and saved) meanwhile: what goes is
            # saved whatever the count.
            if changed:
                self._save_waiting()

    def _wait(self, login: ReportedLogin, reason: str) -> None:
        """Queue a follow-up for ``follow_up_later``; a full queue loses its oldest (logged)."""
        if len(self.unreported) == self.unreported.maxlen:
            self._lost(*self.unreported[0], "too many follow-ups waiting")
        self.unreported.append((login, reason))

    def _save_waiting(self) -> bool:
        """``unreported`` to ``waiting_path`` (a new file fsynced and put in place whole; none
        when nothing waits): whether it is there.  A failed write is logged, and the next
        change of the queue (or the agent's stop) writes it again."""
        path = self.waiting_path
        if path is None:
            return False
        try:
            if not self.unreported:
                path.unlink(missing_ok=True)
                return True
            saved = [
                {**dataclasses.asdict(login), "reason": reason} for login, reason in self.unreported
            ]
            partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            with open(fd, "w", encoding="utf-8") as out:
                json.dump(saved, out)
                out.flush()
                os.fsync(fd)  # rare (an outage), and a host crash must not leave it empty
            partial.replace(path)
        except OSError as exc:
            log.error("login follow-ups not saved to %s: %s", path, exc)
            return False
        return True

    async def _follow_up(self, login: ReportedLogin, reason: str) -> bool:
        """True when the control plane took the follow-up or refused it for good (4xx,
        logged); False when it could not be reached."""
        try:
            await self.cp.login_abandoned(
                self.datasource,
                login.identity,
                login.token_id,
                login.login_sequence,
                mechanism=login.mechanism,
                reason=reason,
                source_address=login.source_address,
                application=login.application,
            )
        except ControlPlaneUnavailable as exc:
            log.info(
                "login #%s follow-up waits for the control plane: %s", login.login_sequence, exc
            )
            return False
        except ApiError as exc:  # the control plane will never take it: say so, drop it
            self._lost(login, reason, f"refused: HTTP {exc.status} {exc.detail}")
        return True

    @staticmethod
    def _lost(login: ReportedLogin, reason: str, why: str) -> None:
        _log_follow_up(login, reason, f"not reported: {why}")


def _log_follow_up(login: ReportedLogin, reason: str, what: str) -> None:
    log.warning(
        "login #%s of %s (token %s) abandoned (%s): %s",
        login.login_sequence,
        login.identity,
        login.token_id,
        reason,
        what,
    )


def _saved_login(item: dict[str, Any], now: float, wall: float) -> ReportedLogin:
    """A follow-up as ``_save_waiting`` wrote it, its monotonic time counted from its wall
    time (the monotonic clock of another process means nothing here)."""
    accepted_wall = float(item["accepted_wall"])
    return ReportedLogin(
        identity=str(item["identity"]),
        token_id=int(item["token_id"]),
        login_sequence=int(item["login_sequence"]),
        mechanism=str(item["mechanism"]),
        source_address=str(item["source_address"]),
        application=str(item["application"]),
        accepted_at=now - max(wall - accepted_wall, 0.0),
        accepted_wall=accepted_wall,
    )
