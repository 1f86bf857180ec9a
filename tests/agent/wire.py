"""Shared helpers of the agent's red-team and utility suites.

- ``WireClient`` and message builders (``parse``, ``bind``, ``execute``, ``close``) for tests
  that speak to the agent message by message;
- ``CapturingRelay``: a TCP relay that keeps what clients send (what crosses the network);
- ``run`` / ``Outcome``: one statement through psycopg, rows or the error;
- the secrets of the test data (``EMAIL``, ``SSN``, ``CARD``, ``PHONE``, ``DOB``, ``NOTE``) and
  ``probe``: a leak probe that first reads the secret through an identity that sees the
  column unmasked, then must get no secret (or the expected refusal) through the restricted
  one, so a probe cannot pass because it was broken;
- ``assert_attack_controlled``: the same for attacks of several steps (store, then read
  back; declare, then fetch): the upstream role must get the secret out, alice must not
  through the agent, and alice's legitimate work keeps running
  (``assert_legitimate_work_runs``).
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from scramp import ScramClient

from agent.postgres import codec

EMAIL = re.compile(r"[a-z]+\.\d+@example\.com", re.IGNORECASE)
SSN = re.compile(r"\d{3}-45-\d{4}")
CARD = re.compile(r"4111-1111-1111-\d{4}")
PHONE = re.compile(r"\+1 \(555\) \d{4}-\d{4}")
DOB = re.compile(r"19\d\d-0\d-1\d")  # real birth dates have day 10-19; masked ones 01-01
NOTE = re.compile(r"\bnote \d+")  # customers."Secret Note"
SECRETS = (EMAIL, SSN, CARD, PHONE, DOB, NOTE)


class WireClient:
    def __init__(
        self,
        port: int,
        user: str,
        params: dict[str, str] | None = None,
        login: bool = True,
        database: str = "shop",
    ) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""
        if login:
            self.sock.sendall(
                codec.startup_message({"user": user, "database": database, **(params or {})})
            )
            self.startup = self.login(user, f"wdn_{user}")

    def login(self, user: str, token: str) -> list[tuple[bytes, bytes]]:
        """Answer the agent's authentication request (SCRAM-SHA-256 with scramp's client,
        or the token as a cleartext password); the messages up to ReadyForQuery."""
        kind, payload = self.read()
        assert kind == b"R", (kind, payload)
        if struct.unpack_from("!i", payload)[0] == codec.AUTH_OK:  # PostgreSQL itself, trust
            return self.until(b"Z")
        if struct.unpack_from("!i", payload)[0] == codec.AUTH_CLEARTEXT:
            self.sock.sendall(codec.password_message(token.encode() + b"\x00"))
            return self.until(b"Z")
        # libpq sends an empty SCRAM user name (PostgreSQL takes the startup packet's); scramp
        # insists on one, which the agent ignores as PostgreSQL does.
        scram = ScramClient(["SCRAM-SHA-256"], user, token)
        first = scram.get_client_first().encode()
        self.sock.sendall(codec.sasl_initial_response("SCRAM-SHA-256", first))
        kind, payload = self.read()
        assert kind == b"R", (kind, payload)
        scram.set_server_first(payload[4:].decode())
        self.sock.sendall(codec.password_message(scram.get_client_final().encode()))
        kind, payload = self.read()
        if kind == b"E":  # refused: the ErrorResponse alone
            return [(kind, payload)]
        scram.set_server_final(payload[4:].decode())  # the agent proves it knew the verifier
        return [(kind, payload), *self.until(b"Z")]

    def read(self) -> tuple[bytes, bytes]:
        while (
            len(self.buffer) < 5 or len(self.buffer) < 1 + struct.unpack("!i", self.buffer[1:5])[0]
        ):
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed"
            self.buffer += chunk
        length = struct.unpack("!i", self.buffer[1:5])[0]
        kind, payload = self.buffer[:1], self.buffer[5 : 1 + length]
        self.buffer = self.buffer[1 + length :]
        return kind, payload

    def until(self, stop: bytes) -> list[tuple[bytes, bytes]]:
        messages = []
        while True:
            kind, payload = self.read()
            messages.append((kind, payload))
            if kind == stop:
                return messages

    def send(self, *messages: bytes) -> None:
        self.sock.sendall(b"".join(messages))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(codec.TERMINATE)
        self.sock.close()


# ------------------------------------------------------------------ protocol messages


def parse(name: str, sql: str, types: tuple[int, ...] = ()) -> bytes:
    body = codec.cstring(name) + codec.cstring(sql) + struct.pack("!h", len(types))
    body += b"".join(struct.pack("!I", t) for t in types)
    return codec.message(b"P", body)


def bind(
    portal: str,
    statement: str,
    params: tuple[bytes | None, ...] = (),
    result_formats: tuple[int, ...] = (),
) -> bytes:
    body = codec.cstring(portal) + codec.cstring(statement) + b"\x00\x00"
    body += struct.pack("!h", len(params))
    for p in params:
        body += b"\xff\xff\xff\xff" if p is None else struct.pack("!i", len(p)) + p
    body += struct.pack("!h", len(result_formats))
    body += b"".join(struct.pack("!h", f) for f in result_formats)
    return codec.message(b"B", body)


def execute(portal: str, max_rows: int = 0) -> bytes:
    return codec.message(b"E", codec.cstring(portal) + struct.pack("!i", max_rows))


def close(kind: bytes, name: str) -> bytes:
    return codec.message(b"C", kind + codec.cstring(name))


def rows(messages: list[tuple[bytes, bytes]]) -> list[list[bytes | None]]:
    return [codec.parse_data_row(p) for k, p in messages if k == b"D"]


def values(messages: list[tuple[bytes, bytes]]) -> set[bytes]:
    return {v for row in rows(messages) for v in row if v is not None}


def kinds(messages: list[tuple[bytes, bytes]]) -> list[bytes]:
    return [k for k, _ in messages]


# ------------------------------------------------------------------ statements and secrets


def _texts(value: Any) -> list[str]:
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    out = [text]
    if len(text) % 2 == 0 and re.fullmatch(r"[0-9a-f]+", text or "x"):
        out.append(bytes.fromhex(text).decode(errors="replace"))
    return out


def secret_in(value: Any, patterns: tuple[re.Pattern[str], ...] = SECRETS) -> str | None:
    for text in _texts(value):
        for pattern in patterns:
            found = pattern.search(text)
            if found:
                return found.group(0)
    return None


def leaks(rows: Any, patterns: tuple[re.Pattern[str], ...] = SECRETS) -> list[str]:
    found = []
    for row in rows or ():
        for value in row if isinstance(row, tuple | list) else (row,):
            hit = secret_in(value, patterns)
            if hit:
                found.append(hit)
    return found


def error_text(exc: psycopg.Error) -> str:
    diag = exc.diag
    parts = [
        str(exc),
        diag.message_primary or "",
        diag.message_detail or "",
        diag.message_hint or "",
        diag.context or "",
        diag.internal_query or "",
    ]
    return "\n".join(parts)


class Outcome:
    def __init__(self, rows: list[Any] | None, error: psycopg.Error | None) -> None:
        self.rows = rows
        self.error = error

    @property
    def sqlstate(self) -> str | None:
        return None if self.error is None else self.error.sqlstate

    @property
    def refused_by_agent(self) -> bool:
        return self.error is not None and "Warden" in str(self.error)

    def leaked(self, patterns: tuple[re.Pattern[str], ...] = SECRETS) -> list[str]:
        found = leaks(self.rows, patterns)
        if self.error is not None:
            hit = secret_in(error_text(self.error), patterns)
            if hit:
                found.append(f"error text: {hit}")
        return found

    def __repr__(self) -> str:
        if self.error is not None:
            return f"<error {self.sqlstate}: {error_text(self.error)[:300]!r}>"
        return f"<rows {self.rows[:3] if self.rows else self.rows!r}>"


def run(conn: psycopg.Connection[Any], sql: str, **kwargs: Any) -> Outcome:
    try:
        cur = conn.execute(sql, **kwargs)
        rows = cur.fetchall() if cur.description else []
        while cur.nextset():
            if cur.description:
                rows += cur.fetchall()
        return Outcome(rows, None)
    except psycopg.Error as exc:
        return Outcome(None, exc)


def assert_no_leak(outcome: Outcome, sql: str) -> None:
    assert not outcome.leaked(), f"LEAK via {sql!r}: {outcome.leaked()[:3]} {outcome!r}"


def assert_refused(outcome: Outcome, sql: str, reason: str = "") -> None:
    """Refused by the agent with 42501 (and, given ``reason``, a message containing it)."""
    assert outcome.error is not None and outcome.sqlstate == "42501" and outcome.refused_by_agent, (
        f"NOT REFUSED by the agent: {sql!r} -> {outcome!r}"
    )
    assert reason.lower() in str(outcome.error).lower(), (
        f"refused for another reason than {reason!r}: {sql!r} -> {outcome!r}"
    )


def assert_reads_secret_unmasked(
    unmasked: psycopg.Connection[Any], sql: str, **kwargs: Any
) -> None:
    """The control half of a leak probe: through an identity that sees every column in clear
    (the upstream role itself), the statement runs and its answer carries a secret."""
    control = run(unmasked, sql, **kwargs)
    assert control.error is None, f"the probe does not run unmasked: {sql!r} -> {control!r}"
    assert control.leaked(), f"the probe reads no secret unmasked: {sql!r} {control!r}"


def assert_withheld(outcome: Outcome, sql: str, reason: str = "") -> None:
    """The restricted half: no secret, and an error only if it is the agent's 42501 (naming
    ``reason`` when given) or a server error whose text the agent withheld."""
    assert_no_leak(outcome, sql)
    if outcome.error is None:
        return
    message = str(outcome.error)
    withheld = "is withheld" in message and "Warden" in message
    refused = outcome.sqlstate == "42501" and outcome.refused_by_agent
    assert withheld or refused, f"failed for another reason: {sql!r} -> {outcome!r}"
    assert refused or not reason, f"expected a refusal naming {reason!r}: {sql!r} {outcome!r}"
    assert reason.lower() in message.lower(), f"refusal does not name {reason!r}: {outcome!r}"


def probe(
    unmasked: psycopg.Connection[Any],
    restricted: psycopg.Connection[Any],
    sql: str,
    *,
    secret: re.Pattern[str] | tuple[re.Pattern[str], ...] = SECRETS,
    reason: str | None = None,
    sqlstate: str = "42501",
    **kwargs: Any,
) -> Outcome:
    """A leak probe that cannot pass by accident.

    Through ``unmasked`` (an identity that sees the column in clear) the statement must run
    and its answer must carry the secret, so the probe really reads it.  Through
    ``restricted`` it must then either carry no secret, or, when ``reason`` is given, be
    refused with ``sqlstate`` and a message containing ``reason`` (never some other error).
    """
    patterns = secret if isinstance(secret, tuple) else (secret,)
    control = run(unmasked, sql, **kwargs)
    assert control.error is None, f"the probe does not run unmasked: {sql!r} -> {control!r}"
    assert control.leaked(patterns), f"the probe reads no secret unmasked: {sql!r} {control!r}"
    outcome = run(restricted, sql, **kwargs)
    assert not outcome.leaked(patterns), f"LEAK via {sql!r}: {outcome!r}"
    if reason is not None:
        assert outcome.error is not None and outcome.sqlstate == sqlstate, (
            f"expected {sqlstate} ({reason}) for {sql!r}, got {outcome!r}"
        )
        assert reason.lower() in str(outcome.error).lower(), (
            f"refused for another reason than {reason!r}: {sql!r} -> {outcome!r}"
        )
    else:
        assert outcome.error is None, f"expected rows without the secret: {sql!r} {outcome!r}"
    assert_legitimate_work_runs(restricted)
    return outcome


# A neighbouring query of the restricted identity (plain columns of the probed table): a
# probe that holds only because the identity can do nothing at all proves nothing.
LEGITIMATE_SQL = "SELECT id, name, score FROM public.customers WHERE id <= 3 ORDER BY id"


def assert_legitimate_work_runs(restricted: psycopg.Connection[Any]) -> None:
    outcome = run(restricted, LEGITIMATE_SQL)
    assert outcome.error is None and outcome.rows and len(outcome.rows) == 3, (
        f"legitimate work of the restricted identity broke: {outcome!r}"
    )


def _evidence_rows(evidence: Any) -> list[Any]:
    if isinstance(evidence, list):
        return evidence
    return [evidence]


Attack = Callable[[psycopg.Connection[Any]], Any]


def assert_reads_secret_unmasked_by(
    unrestricted: psycopg.Connection[Any],
    attack: Attack,
    secret: re.Pattern[str] | tuple[re.Pattern[str], ...] = SECRETS,
) -> None:
    """The control half of an attack: through ``unrestricted`` it runs and its evidence
    carries the secret."""
    patterns = secret if isinstance(secret, tuple) else (secret,)
    name = getattr(attack, "__name__", repr(attack))
    control = attack(unrestricted)
    assert leaks(_evidence_rows(control), patterns), (
        f"the attack {name} reads no secret unrestricted: {str(control)[:300]}"
    )


def assert_attack_controlled(
    unrestricted: psycopg.Connection[Any],
    agent: Any,
    attack: Attack,
    *,
    secret: re.Pattern[str] | tuple[re.Pattern[str], ...] = SECRETS,
    reason: str = "",
    refused: bool = False,
    user: str = "alice",
) -> None:
    """An attack of several steps that cannot pass by accident.

    ``attack(conn)`` runs its steps (raising ``psycopg.Error`` when one fails) and returns
    its evidence: the rows, text or bytes it got out.  Through ``unrestricted`` (a direct
    connection as the upstream role: root through the agent still has the SSN denied and
    the phone masked by rules for everyone) it must run and its evidence must
    carry the secret; through ``user`` it must either carry no secret or be refused by the
    agent (42501 naming ``reason``) or have the server's error text withheld (with
    ``refused``, or a ``reason``, only the agent's refusal will do); and the
    restricted identity's legitimate work keeps running on the same connection.
    """
    patterns = secret if isinstance(secret, tuple) else (secret,)
    name = getattr(attack, "__name__", repr(attack))
    assert_reads_secret_unmasked_by(unrestricted, attack, patterns)
    with agent.connect(user) as conn:
        try:
            evidence = attack(conn)
        except psycopg.Error as exc:
            outcome = Outcome(None, exc)
            assert_withheld(outcome, name, reason)
            assert outcome.refused_by_agent or not refused, f"not refused: {name} {outcome!r}"
        else:
            found = leaks(_evidence_rows(evidence), patterns)
            assert not found, f"LEAK via {name}: {found[:3]} {str(evidence)[:300]}"
            assert not refused, f"NOT REFUSED by the agent: {name} -> {str(evidence)[:300]}"
        assert_legitimate_work_runs(conn)


@contextlib.contextmanager
def rolled_back(conn: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """A transaction on ``conn`` that is rolled back whatever happens in it."""
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.execute("ROLLBACK")


class CapturingRelay:
    """A TCP relay in front of the agent that keeps every byte the clients send, as a
    network observer would see them (tests prove a token does or does not cross)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.sent = bytearray()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._start(self._accept)

    def _start(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._start(self._pump, client, upstream, True)
            self._start(self._pump, upstream, client, False)

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                if from_client:
                    with self._lock:
                        self.sent += chunk
                sink.sendall(chunk)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._listener.close()


def named_attack(attack: Attack, name: str) -> Attack:
    attack.__name__ = name
    return attack


def reads(sql: str, **kwargs: Any) -> Attack:
    """An attack of one statement: its rows (the error propagates)."""

    def attack(conn: psycopg.Connection[Any]) -> Any:
        cur = conn.execute(sql, **kwargs)
        return cur.fetchall() if cur.description else []

    return named_attack(attack, sql)


def copies(sql: str) -> Attack:
    """An attack by ``COPY ... TO STDOUT``: the bytes it sent (rolled back)."""

    def attack(conn: psycopg.Connection[Any]) -> Any:
        with rolled_back(conn), conn.cursor().copy(sql) as copy:
            return b"".join(bytes(chunk) for chunk in copy).decode(errors="replace")

    return named_attack(attack, sql)


def stores_then_reads(*statements: str, read: str) -> Attack:
    """An attack that stores a value somewhere (``statements``) and reads it back (``read``)
    in one transaction that is rolled back: the rows of ``read``."""

    def attack(conn: psycopg.Connection[Any]) -> Any:
        with rolled_back(conn):
            for statement in statements:
                conn.execute(statement)
            return conn.execute(read).fetchall()

    return named_attack(attack, " ; ".join((*statements, read)))


def error_of(*statements: str, transaction: bool = True, **kwargs: Any) -> Attack:
    """An attack by an error (or notice) text: runs ``statements`` (in a transaction that
    is rolled back, unless ``transaction`` is false) and returns the text of the first
    error and of every notice, or the last statement's rows when nothing failed (the
    agent's own refusal is raised)."""

    def attack(conn: psycopg.Connection[Any]) -> Any:
        notices: list[str] = []
        conn.add_notice_handler(
            lambda d: notices.append(
                " ".join(x or "" for x in (d.message_primary, d.message_detail))
            )
        )
        with rolled_back(conn) if transaction else contextlib.nullcontext(conn):
            try:
                rows: Any = []
                for statement in statements:
                    cur = conn.execute(statement, **kwargs)
                    rows = cur.fetchall() if cur.description else []
            except psycopg.Error as exc:
                if Outcome(None, exc).refused_by_agent:
                    raise  # the agent's refusal, not the server's error
                return [error_text(exc), *notices]
        return [*notices, *rows]

    return named_attack(attack, " ; ".join(statements))


WireSequence = Callable[[WireClient], list[tuple[bytes, bytes]]]


def wire_probe(
    agent: Any,
    sequence: WireSequence,
    *,
    direct: str | None = None,
    restricted: str = "alice",
    secret: re.Pattern[str] = EMAIL,
) -> list[tuple[bytes, bytes]]:
    """A message-level probe that cannot pass by accident: ``sequence`` (the messages it
    sends, returning those its assertions are about) runs first unrestricted: as root through
    the agent (root sees the e-mail in clear), or, given ``direct`` (the test database's
    name), on PostgreSQL itself as the upstream role (for sequences the agent refuses to
    everyone, or ``secret``s root sees masked too); there those messages' rows must carry
    the secret (an e-mail), so the sequence really reads it.  Then it runs on a session of
    ``restricted``, whose messages it returns."""
    controls = [WireClient(agent.port, "root")] if direct is None else []
    if direct is not None:
        controls.append(WireClient(5432, "postgres", database=direct))
    for client in controls:
        try:
            messages = sequence(client)
        finally:
            client.close()
        found = [v for v in values(messages) if secret.search(v.decode(errors="replace"))]
        assert found, f"the sequence reads no secret unrestricted: {messages!r:.300}"
    client = WireClient(agent.port, restricted)
    try:
        return sequence(client)
    finally:
        client.close()
