"""Red-team probes of the agent at the wire-protocol level.

Every test asserts the secure / correct behaviour: a failing test is a finding.
"""

from __future__ import annotations

import secrets
import socket
import struct
import time
from typing import Any

import psycopg
import pytest

from agent.postgres import codec
from tests.agent.conftest import email_grant
from tests.agent.wire import (
    CARD,
    EMAIL,
    SSN,
    WireClient,
    assert_no_leak,
    bind,
    close,
    execute,
    kinds,
    parse,
    rows,
    run,
    values,
    wire_probe,
)
from tests.agent.wire import secret_in as _secret_in


@pytest.fixture
def agent(agent_on_both_paths: Any) -> Any:
    return agent_on_both_paths


def refused_at_startup(port: int, params: dict[str, str]) -> bytes:
    """Send a startup packet with these parameters; the FATAL ErrorResponse that answers it."""
    client = WireClient(port, "alice", login=False)
    client.send(codec.startup_message({"user": "alice", "database": "shop", **params}))
    kind, payload = client.read()
    client.sock.close()
    assert kind == b"E", (kind, payload)
    assert b"SFATAL\x00" in payload and b"C0A000\x00" in payload, payload
    return payload


def assert_refused_or_masked(messages: list[tuple[bytes, bytes]]) -> None:
    """A statement the agent cannot vouch for is refused; otherwise its rows are masked."""
    assert_no_secret(messages)
    if not rows(messages):
        assert b"E" in kinds(messages), messages
    else:
        assert any(b"****" in (value or b"") for row in rows(messages) for value in row)


def assert_no_secret(messages: list[tuple[bytes, bytes]]) -> None:
    for row in rows(messages):
        for value in row:
            if value is None:
                continue
            assert b"-45-" not in value, f"ssn leaked: {value!r}"
            assert not value.startswith(b"4111-1111-1111"), f"card leaked: {value!r}"
            if b"@example.com" in value:
                assert value.startswith(b"****@"), f"email leaked: {value!r}"


def alive(agent: Any) -> None:
    """The agent still serves a fresh session correctly."""
    client = WireClient(agent.port, "alice")
    client.send(codec.query("SELECT email FROM customers WHERE id = 1"))
    messages = client.until(b"Z")
    assert rows(messages) == [[b"****@example.com"]]
    client.close()


# ------------------------------------------------------------------ lexer differentials


def test_standard_conforming_strings_off_cannot_smuggle_a_denied_column(agent: Any) -> None:
    """With standard_conforming_strings=off the server reads backslash-quote as an escaped
    quote; the agent's parser (always 'on') must not be fooled into seeing a string literal
    where the server sees a column reference."""
    client = WireClient(agent.port, "alice")
    client.send(codec.query("SET standard_conforming_strings = off"))
    client.until(b"Z")
    smuggled = "SELECT 'a\\' AS x, ' , ssn, card, email FROM customers WHERE id = 1 -- '"
    client.send(parse("", smuggled), bind("", ""), execute(""), codec.SYNC)
    messages = client.until(b"Z")
    assert_no_secret(messages)
    client.close()


def test_standard_conforming_strings_off_as_startup_parameter_is_refused(agent: Any) -> None:
    """The agent lexes with standard_conforming_strings on: a client asking otherwise (as a
    parameter or inside options) is refused before it logs in."""
    assert b"standard_conforming_strings" in refused_at_startup(
        agent.port, {"standard_conforming_strings": "off"}
    )
    assert b"options" in refused_at_startup(
        agent.port, {"options": "--standard-conforming-strings=off"}
    )


def test_standard_conforming_strings_off_cannot_smuggle_a_blocked_guardrail(agent: Any) -> None:
    """The 'no destructive statements' guardrail (drop) must hold whatever the lexer mode."""
    client = WireClient(agent.port, "alice")
    client.send(codec.query("CREATE TEMP TABLE rt_victim (id int)"))
    assert kinds(client.until(b"Z"))[0] == b"C"
    client.send(codec.query("SET standard_conforming_strings = off"))
    client.until(b"Z")
    client.send(codec.query("SELECT 'a\\' AS x, ' ; DROP TABLE rt_victim; -- '"))
    client.until(b"Z")
    client.send(codec.query("SELECT count(*) FROM pg_class WHERE relname = 'rt_victim'"))
    assert rows(client.until(b"Z")) == [[b"1"]], "DROP TABLE ran past the guardrail"
    client.close()


# ------------------------------------------------------------------ response-queue desync


def test_sync_sent_during_copy_in_does_not_shift_the_response_queue(agent: Any) -> None:
    """The server ignores Sync (and Flush) while in COPY FROM STDIN; the agent must not
    expect a ReadyForQuery for it, or later results are matched to the wrong statement."""
    client = WireClient(agent.port, "alice")
    client.send(codec.query("COPY scratch (id, v) FROM STDIN"))
    assert kinds(client.until(b"G"))[-1] == b"G"
    client.send(codec.SYNC, codec.message(b"d", b"7001\tx\n"), codec.message(b"c"))
    assert kinds(client.until(b"Z"))[:1] == [b"C"]
    client.send(codec.query("SELECT upper(email) AS e, email FROM customers WHERE id = 1"))
    first = client.until(b"Z")
    assert_no_secret(first)
    client.send(codec.query("SELECT upper(email) AS e, email FROM customers WHERE id = 2"))
    second = client.until(b"Z")
    assert_no_secret(second)
    client.send(codec.query("DELETE FROM scratch WHERE id = 7001"))
    client.until(b"Z")
    client.close()


def test_query_or_parse_sent_during_copy_in_ends_the_session_cleanly(agent: Any) -> None:
    """A Query or Parse during COPY FROM STDIN is a FATAL protocol violation on the server;
    the agent ends that session and keeps serving others."""
    for message in (codec.query("SELECT 1"), parse("", "SELECT 1") + codec.SYNC):
        client = WireClient(agent.port, "alice")
        client.send(codec.query("COPY scratch (id, v) FROM STDIN"))
        assert kinds(client.until(b"G"))[-1] == b"G"
        client.send(message)
        got: list[tuple[bytes, bytes]] = []
        with pytest.raises(AssertionError, match="connection closed"):
            while True:
                got.append(client.read())
        assert got and got[-1][0] == b"E"
        assert codec.parse_error_fields(got[-1][1])["S"] == "FATAL"
        client.sock.close()
    alive(agent)


def test_close_skipped_after_error_in_savepoint_does_not_unmask_the_portal(
    agent: Any, pg_database: str
) -> None:
    """Close of a portal that the server skips (an earlier error in the same batch) must
    not make the agent forget the portal's masks: after ROLLBACK TO SAVEPOINT the portal
    still exists on the server."""

    def sequence(client: WireClient) -> list[tuple[bytes, bytes]]:
        client.send(codec.query("BEGIN"))
        client.until(b"Z")
        client.send(
            parse("s1", "SELECT id, email, upper(email) AS e FROM customers ORDER BY id"),
            bind("p1", "s1"),
            codec.SYNC,
        )
        assert kinds(client.until(b"Z")) == [b"1", b"2", b"Z"]
        client.send(codec.query("SAVEPOINT a"))
        client.until(b"Z")
        client.send(
            parse("", "SELECT 1 / 0"), bind("", ""), execute(""), close(b"P", "p1"), codec.SYNC
        )
        assert b"E" in kinds(client.until(b"Z"))
        client.send(codec.query("ROLLBACK TO SAVEPOINT a"))
        client.until(b"Z")
        client.send(execute("p1", 3), codec.SYNC)
        messages = client.until(b"Z")
        client.send(codec.query("ROLLBACK"))
        client.until(b"Z")
        return messages

    assert_no_secret(wire_probe(agent, sequence, direct=pg_database))


def test_failed_unnamed_bind_in_savepoint_does_not_unmask_the_old_unnamed_portal(
    agent: Any,
) -> None:
    """A Bind of the unnamed portal that fails before the server replaces it (wrong number
    of parameters) leaves the old unnamed portal in place."""
    client = WireClient(agent.port, "alice")
    client.send(codec.query("BEGIN"))
    client.until(b"Z")
    client.send(
        parse("s1", "SELECT id, email, upper(email) AS e FROM customers ORDER BY id"),
        bind("", "s1"),
        parse("s2", "SELECT $1::int"),
        # SAVEPOINT through a named portal: a simple Query would replace the unnamed portal
        parse("sp", "SAVEPOINT a"),
        bind("spp", "sp"),
        execute("spp"),
        codec.SYNC,
    )
    client.until(b"Z")
    client.send(bind("", "s2"), codec.SYNC)  # no parameter for $1: refused by the server
    assert b"E" in kinds(client.until(b"Z"))
    client.send(
        parse("rb", "ROLLBACK TO SAVEPOINT a"), bind("rbp", "rb"), execute("rbp"), codec.SYNC
    )
    client.until(b"Z")
    client.send(execute("", 3), codec.SYNC)
    messages = client.until(b"Z")
    # The server still has the old portal; the agent no longer knows which one: refused.
    assert_refused_or_masked(messages)
    client.send(codec.query("ROLLBACK"))
    client.until(b"Z")
    client.close()


# ------------------------------------------------------------------ startup family


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return True
    except TimeoutError:
        return False
    except OSError:
        return True


def test_truncated_cancel_request_closes_the_connection(agent: Any) -> None:
    """A CancelRequest whose length (8) leaves out the key: the agent must close the
    connection (as it does for any other cancel), not leave it hanging."""
    with socket.create_connection(("127.0.0.1", agent.port), timeout=5) as sock:
        sock.sendall(struct.pack("!ii", 8, codec.CANCEL_REQUEST))
        assert _closed_within(sock, 3), "connection left open after a malformed CancelRequest"
    alive(agent)


def test_negative_password_length_closes_the_connection(agent: Any) -> None:
    with socket.create_connection(("127.0.0.1", agent.port), timeout=5) as sock:
        sock.sendall(codec.startup_message({"user": "alice", "database": "shop"}))
        assert sock.recv(9)[:1] == b"R"
        sock.sendall(b"p" + struct.pack("!i", 2))  # length below 4
        assert _closed_within(sock, 3), "connection left open after an invalid length"
    alive(agent)


def test_oversized_password_message_is_refused_before_it_is_buffered(agent: Any) -> None:
    """An unauthenticated client announcing a 2 GB password message: PostgreSQL refuses
    authentication packets over 64 kB at once; the agent must not wait for (and buffer)
    the whole thing."""
    with socket.create_connection(("127.0.0.1", agent.port), timeout=5) as sock:
        sock.sendall(codec.startup_message({"user": "alice", "database": "shop"}))
        assert sock.recv(9)[:1] == b"R"
        sock.sendall(b"p" + struct.pack("!i", 0x7FFFFFF0) + b"x" * 200_000)
        assert _closed_within(sock, 3), "agent keeps buffering an unauthenticated 2 GB message"
    alive(agent)


def test_startup_without_authentication_times_out_or_is_bounded(agent: Any) -> None:
    """Many half-open, never-authenticating connections must not exhaust the agent:
    after they are opened a real client still logs in."""
    socks = []
    try:
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", agent.port), timeout=5)
            s.sendall(struct.pack("!i", 9000))  # announces a startup packet, never sends it
            socks.append(s)
        alive(agent)
    finally:
        for s in socks:
            s.close()


def test_repeated_ssl_and_gssenc_requests_then_login(agent: Any) -> None:
    with socket.create_connection(("127.0.0.1", agent.port), timeout=5) as sock:
        for code in (codec.SSL_REQUEST, codec.SSL_REQUEST, codec.GSSENC_REQUEST):
            sock.sendall(struct.pack("!ii", 8, code))
            assert sock.recv(1) == b"N"
        sock.sendall(codec.startup_message({"user": "alice", "database": "shop"}))
        assert sock.recv(9)[:1] == b"R"


def test_unsupported_protocol_version_and_replication_are_refused(agent: Any) -> None:
    with socket.create_connection(("127.0.0.1", agent.port), timeout=5) as sock:
        body = struct.pack("!i", (2 << 16)) + b"user\x00alice\x00\x00"
        sock.sendall(struct.pack("!i", len(body) + 4) + body)
        data = sock.recv(4096)
        assert data[:1] == b"E" and b"0A000" in data
    for value in ("database", "true", "1"):
        with socket.create_connection(("127.0.0.1", agent.port), timeout=5) as sock:
            sock.sendall(
                codec.startup_message({"user": "alice", "database": "shop", "replication": value})
            )
            data = sock.recv(4096)
            assert data[:1] == b"E" and b"28000" in data


def test_cancel_request_with_guessed_key_does_not_cancel_another_session(agent: Any) -> None:
    victim = WireClient(agent.port, "root")
    key = next(p for k, p in victim.startup if k == b"K")
    pid, secret = struct.unpack("!ii", key)
    victim.send(codec.query("SELECT pg_sleep(1.5)"))
    time.sleep(0.3)
    for guess in ((pid, secret ^ 1), (pid + 1, secret), (0, 0)):
        with socket.create_connection(("127.0.0.1", agent.port), timeout=5) as sock:
            sock.sendall(codec.cancel_request(*guess))
            _closed_within(sock, 2)
    messages = victim.until(b"Z")
    assert b"E" not in kinds(messages)
    victim.close()


def test_startup_user_is_not_forwarded_and_token_binds_identity(agent: Any) -> None:
    """Alice's token with user=root must fail; alice's own login with an upstream-looking
    parameter (options -c role / session_authorization) must not change who the agent
    thinks she is."""
    impostor = WireClient(agent.port, "root", login=False)
    impostor.send(codec.startup_message({"user": "root", "database": "shop"}))
    [(kind, error)] = impostor.login("root", "wdn_alice")
    assert kind == b"E" and b"28P01" in error
    impostor.close()
    client = WireClient(agent.port, "alice", {"options": "-c application_name=root"})
    client.send(codec.query("SELECT email FROM customers WHERE id = 1"))
    assert rows(client.until(b"Z")) == [[b"****@example.com"]]
    client.close()


def test_client_encoding_gbk_is_refused_at_startup(agent: Any) -> None:
    """The agent decodes SQL as UTF-8; with client_encoding GBK the server would read the
    bytes of U+4E01 followed by a backslash (E4 B8 81 5C) as two GBK characters, so the
    backslash that escapes a quote for the agent would be gone for the server."""
    assert b"UTF8 only" in refused_at_startup(agent.port, {"client_encoding": "GBK"})
    assert b"options" in refused_at_startup(agent.port, {"options": "-c client_encoding=SJIS"})


def test_client_encoding_utf8_spelled_any_way_logs_in(agent: Any) -> None:
    for spelling in ("UTF8", "utf-8", "unicode"):
        client = WireClient(agent.port, "alice", {"client_encoding": spelling})
        assert (b"S", b"client_encoding\x00UTF8\x00") in client.startup
        client.close()


def test_client_encoding_set_later_cannot_bypass_a_guardrail(agent: Any) -> None:
    client = WireClient(agent.port, "alice")
    client.send(codec.query("CREATE TEMP TABLE rt_victim2 (id int)"))
    client.until(b"Z")
    client.send(codec.query("SET client_encoding = 'GBK'"))
    client.until(b"Z")
    client.send(codec.query("SELECT E'\u4e01\\' ; DROP TABLE rt_victim2; -- '"))
    client.until(b"Z")
    client.send(codec.query("SELECT count(*) FROM pg_class WHERE relname = 'rt_victim2'"))
    assert rows(client.until(b"Z")) == [[b"1"]], "DROP TABLE ran past the guardrail"
    client.close()


# ------------------------------------------------------------------ name resolution


def test_temp_view_shadowing_a_bundle_table_does_not_unmask(agent: Any) -> None:
    """pg_temp comes first in the search_path for relations: a temporary view named like
    a bundle table shadows it.  The agent reads ``customers`` as the session's view too."""

    def sequence(client: WireClient) -> list[tuple[bytes, bytes]]:
        client.send(
            codec.query(
                "CREATE TEMP VIEW customers AS SELECT c.id, c.email AS name FROM public.customers c"
            )
        )
        assert b"E" not in kinds(client.until(b"Z"))  # made (masked as derived output)
        client.send(codec.query("SELECT upper(name) AS n FROM customers WHERE id = 1"))
        simple = client.until(b"Z")
        client.send(
            parse("", "SELECT name FROM customers WHERE id = 1"),
            bind("", ""),
            execute(""),
            codec.SYNC,
        )
        return simple + client.until(b"Z")

    messages = wire_probe(agent, sequence)
    simple = messages[: kinds(messages).index(b"Z") + 1]
    extended = messages[len(simple) :]
    leaked_simple = [v for v in values(simple) if b"@example.com" in v.lower()]
    leaked_extended = [v for v in values(extended) if v.endswith(b"@example.com")]
    leaked_extended = [v for v in leaked_extended if not v.startswith(b"****")]
    assert not (leaked_simple or leaked_extended), (
        f"simple protocol leaked {leaked_simple!r}, extended leaked {leaked_extended!r}"
    )


def test_search_path_changed_by_set_config_does_not_unmask(agent: Any) -> None:
    """search_path changed behind the agent's back (set_config in a SELECT) while a
    schema-qualified view of masked data exists elsewhere."""

    def sequence(client: WireClient) -> list[tuple[bytes, bytes]]:
        client.send(codec.query("SELECT set_config('search_path', 'archive, public', false)"))
        client.until(b"Z")
        client.send(
            parse("", "SELECT email FROM customers WHERE id = 1"),
            bind("", ""),
            execute(""),
            codec.SYNC,
        )
        return client.until(b"Z")

    assert_no_secret(wire_probe(agent, sequence))


# ------------------------------------------------------------------ framing and formats


def _send_in_pieces(client: WireClient, data: bytes, cuts: list[int]) -> None:
    client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    last = 0
    for cut in [*cuts, len(data)]:
        if cut > last:
            client.sock.sendall(data[last:cut])
            time.sleep(0.01)
            last = cut


def test_extended_round_trip_split_at_every_header_boundary_stays_masked(agent: Any) -> None:
    client = WireClient(agent.port, "alice")
    batch = b"".join(
        [
            parse("", "SELECT id, email, upper(card) AS c FROM customers WHERE id = $1"),
            bind("", "", (b"1",)),
            codec.describe(b"P", ""),
            execute(""),
            codec.SYNC,
        ]
    )
    # First once in one write (native tickets), then with cuts inside every header.
    client.send(batch)
    first = client.until(b"Z")
    assert rows(first) == [[b"1", b"****@example.com", b"****"]]
    pos, cuts = 0, []
    while pos < len(batch):
        cuts += [pos + 1, pos + 3]  # inside the type byte / length field
        pos += 1 + struct.unpack("!i", batch[pos + 1 : pos + 5])[0]
    for _ in range(3):
        _send_in_pieces(client, batch, cuts)
        got = client.until(b"Z")
        assert rows(got) == [[b"1", b"****@example.com", b"****"]], got
    client.close()


def test_simple_query_byte_by_byte_stays_masked(agent: Any) -> None:
    message = codec.query("SELECT email, upper(email) FROM customers WHERE id = 1")

    def sequence(client: WireClient) -> list[tuple[bytes, bytes]]:
        client.send(message)
        messages = client.until(b"Z")
        _send_in_pieces(client, message + message, list(range(1, 2 * len(message))))
        return messages + client.until(b"Z") + client.until(b"Z")

    assert rows(wire_probe(agent, sequence)) == [[b"****@example.com", b"****"]] * 3


@pytest.mark.parametrize(
    "formats",
    [(1,), (0, 1, 1, 0), (1, 0, 0, 1), (0,)],
    ids=["all-binary", "mixed", "mixed2", "all-text"],
)
def test_result_format_codes_do_not_unmask(agent: Any, formats: tuple[int, ...]) -> None:
    client = WireClient(agent.port, "alice")
    sql = "SELECT id, email, card, birth_date FROM customers WHERE id = 1"
    for _ in range(2):  # second time from caches / native
        client.send(parse("", sql), bind("", "", (), formats), execute(""), codec.SYNC)
        messages = client.until(b"Z")
        (row,) = rows(messages)
        assert row[1] in (None, b"****@example.com")
        assert row[2] in (None, b"XXXX-XXXX-XXXX-1001")
        assert row[3] in (None, b"1961-01-01") and row[3] != b"\x00\x00\x00\x00"
        if len(formats) > 1 and formats[3] == 1:
            assert row[3] is None
    client.close()


def test_wrong_number_of_result_formats_is_an_error_not_a_leak(agent: Any) -> None:
    client = WireClient(agent.port, "alice")
    client.send(
        parse("", "SELECT id, email, card FROM customers WHERE id = 1"),
        bind("", "", (), (0, 0)),
        execute(""),
        codec.SYNC,
    )
    messages = client.until(b"Z")
    assert b"E" in kinds(messages) and not rows(messages)
    client.send(codec.query("SELECT 1"))
    assert rows(client.until(b"Z")) == [[b"1"]]
    client.close()


def test_reparse_unnamed_between_bind_and_execute_keeps_old_portal_masks(agent: Any) -> None:
    """Parse masked -> Bind '' -> Parse '' harmless (replaces the unnamed *statement*, not
    the portal) -> Execute '': rows are the masked statement's."""

    def sequence(client: WireClient) -> list[tuple[bytes, bytes]]:
        messages = []
        for _ in range(2):  # the second time from caches / native tickets
            client.send(
                parse("", "SELECT id, email, upper(email) AS e FROM customers WHERE id = 1"),
                bind("", ""),
                parse("", "SELECT 1 AS a, 2 AS b, 3 AS c"),
                execute(""),
                codec.SYNC,
            )
            messages += client.until(b"Z")
        return messages

    assert rows(wire_probe(agent, sequence)) == [[b"1", b"****@example.com", b"****"]] * 2


def test_named_statement_reparse_fails_and_keeps_the_masked_one(
    agent: Any, pg_database: str
) -> None:
    def sequence(client: WireClient) -> list[tuple[bytes, bytes]]:
        client.send(
            parse("s1", "SELECT id, name, upper(email) FROM customers WHERE id = 1"), codec.SYNC
        )
        client.until(b"Z")
        client.send(
            parse("s1", "SELECT 1 AS id, 'x' AS name, 'y' AS e"),  # 42P05 on the server
            codec.SYNC,
            bind("p", "s1"),
            execute("p"),
            codec.SYNC,
        )
        assert b"E" in kinds(client.until(b"Z"))
        return client.until(b"Z")

    assert_refused_or_masked(wire_probe(agent, sequence, direct=pg_database))


def test_execute_with_row_limit_on_unnamed_portal_then_resume(agent: Any) -> None:
    def sequence(client: WireClient) -> list[tuple[bytes, bytes]]:
        client.send(
            parse("", "SELECT id, email, upper(email) FROM customers ORDER BY id"),
            bind("", ""),
            execute("", 1),
            execute("", 1),
            execute("", 0),
            codec.SYNC,
        )
        messages = client.until(b"Z")
        assert kinds(messages).count(b"s") == 2
        client.send(codec.query("SELECT count(*) FROM customers"))  # other probes add rows
        assert len(rows(messages)) == int(rows(client.until(b"Z"))[0][0] or b"0")
        return messages

    got = rows(wire_probe(agent, sequence))
    assert all(r[1] == b"****@example.com" and r[2] == b"****" for r in got)


def test_multi_statement_query_masks_derived_columns_of_later_statements(agent: Any) -> None:
    def sequence(client: WireClient) -> list[tuple[bytes, bytes]]:
        client.send(
            codec.query(
                "SELECT name, 1 FROM customers WHERE id = 1; "
                "SELECT upper(email), lower(card), phone FROM customers WHERE id = 1; "
                "SELECT 'x', name || email FROM customers WHERE id = 2"
            )
        )
        return client.until(b"Z")

    got = rows(wire_probe(agent, sequence))
    assert got[1][0] == b"****" and got[1][1] == b"****"
    assert got[2][1] == b"****"


def test_flush_instead_of_sync_keeps_masks(agent: Any) -> None:
    def sequence(client: WireClient) -> list[tuple[bytes, bytes]]:
        messages = []
        for customer in (1, 2):
            client.send(
                parse("", f"SELECT email, upper(email) FROM customers WHERE id = {customer}"),
                bind("", ""),
                execute(""),
                codec.FLUSH,
            )
            messages += client.until(b"C")
        client.send(codec.SYNC)
        client.until(b"Z")
        return messages

    first, second = rows(wire_probe(agent, sequence))
    assert first == [b"****@example.com", b"****"]
    assert second[1] == b"****"


def test_terminate_mid_pipeline_does_not_run_later_messages(agent: Any, pg_database: str) -> None:
    client = WireClient(agent.port, "root")
    client.send(
        codec.query("SELECT 1"),
        codec.TERMINATE,
        codec.query("INSERT INTO scratch VALUES (9901, 'after-X')"),
    )
    time.sleep(0.5)
    client.sock.close()
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname=pg_database) as admin:
        count = admin.execute("SELECT count(*) FROM scratch WHERE id = 9901").fetchone()[0]
    assert count == 0


def test_terminate_while_discarding_closes_the_session(agent: Any) -> None:
    """After a refused Parse the agent skips to Sync; a Terminate in that stretch must
    still end the session (a server honours it)."""
    client = WireClient(agent.port, "alice")
    client.send(parse("", "SELECT ssn FROM customers"), bind("", ""), codec.TERMINATE)
    assert _closed_within(client.sock, 3), "Terminate swallowed while discarding"
    client.sock.close()


def test_named_portal_rebind_fails_and_keeps_the_masked_one(agent: Any) -> None:
    """In a transaction block a named portal outlives Sync; a second Bind of the same
    name is refused by the server (42P03), so a later Execute runs the first portal."""
    client = WireClient(agent.port, "alice")
    client.send(codec.query("BEGIN"))
    client.until(b"Z")
    client.send(
        parse("s1", "SELECT id, name, upper(email) AS e FROM customers ORDER BY id"),
        parse("s2", "SELECT 1 AS id, 'x' AS name, 'y' AS e"),
        bind("p", "s1"),
        codec.SYNC,
    )
    client.until(b"Z")
    client.send(bind("p", "s2"), codec.SYNC, execute("p", 2), codec.SYNC)
    first = client.until(b"Z")
    assert b"E" in kinds(first)
    client.send(codec.query("ROLLBACK"))  # the error aborted the transaction
    client.until(b"Z")
    client.close()
    # Without an error in between: savepoint so the failed Bind does not abort the block.
    client = WireClient(agent.port, "alice")
    client.send(codec.query("BEGIN"))
    client.until(b"Z")
    client.send(
        parse("s1", "SELECT id, name, upper(email) AS e FROM customers ORDER BY id"),
        parse("s2", "SELECT 1 AS id, 'x' AS name, 'y' AS e"),
        bind("p", "s1"),
        codec.SYNC,
    )
    client.until(b"Z")
    client.send(codec.query("SAVEPOINT a"))
    client.until(b"Z")
    client.send(
        bind("p", "s2"),
        codec.SYNC,
        codec.query("ROLLBACK TO SAVEPOINT a"),
        execute("p", 2),
        codec.SYNC,
    )
    client.until(b"Z")
    client.until(b"Z")
    third = client.until(b"Z")
    assert_refused_or_masked(third)
    client.send(codec.query("ROLLBACK"))
    client.until(b"Z")
    client.close()


def test_named_statement_reparse_pipelined_with_a_bare_masked_column(
    agent: Any, pg_database: str
) -> None:
    """Same race with a bare masked column (card, 'partial' for everyone): Parse s1 with
    it, Sync; then Parse s1 again with a harmless text (refused by the server, 42P05),
    Sync, and Bind/Execute s1 in the same write: the server runs the first s1."""

    def sequence(client: WireClient) -> list[tuple[bytes, bytes]]:
        client.send(parse("s1", "SELECT id, card FROM customers WHERE id = 1"), codec.SYNC)
        client.until(b"Z")
        client.send(
            parse("s1", "SELECT 1 AS id, 'x' AS card"),
            codec.SYNC,
            bind("", "s1"),
            execute(""),
            codec.SYNC,
        )
        client.until(b"Z")
        return client.until(b"Z")

    assert_no_secret(wire_probe(agent, sequence, direct=pg_database, secret=CARD))


def test_a_name_deallocated_in_sql_can_be_parsed_again_in_one_pipeline(agent: Any) -> None:
    """DEALLOCATE shares the protocol's namespace: the agent forgets the name with it, so a
    new Parse of that name is no rebind the server might refuse."""
    client = WireClient(agent.port, "alice")
    client.send(parse("s1", "SELECT id, email FROM customers WHERE id = 1"), codec.SYNC)
    client.until(b"Z")
    client.send(codec.query("DEALLOCATE s1"))
    client.until(b"Z")
    client.send(
        parse("s1", "SELECT 7 AS id, 'x' AS e"),
        codec.SYNC,
        bind("p", "s1"),
        execute("p"),
        codec.SYNC,
    )
    client.until(b"Z")
    assert rows(client.until(b"Z")) == [[b"7", b"x"]]
    client.close()


# ----------------------------------------------------------------------------------------
# Lexical differentials between pglast (PostgreSQL 18 grammar) and the PG15 server
# ----------------------------------------------------------------------------------------


def test_client_encoding_sjis_backslash_smuggling(agent: Any) -> None:
    """In SJIS, 0x95 0x5C is one character; pglast decodes the text as UTF-8 (replacing
    0x95) and so would see ``\\'`` as an escaped quote inside E'...' while the server sees
    the string end there.  The agent pins client_encoding to UTF8, so the SET is refused."""
    with agent.connect("alice") as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="pinned to UTF8"):
            conn.execute("SET client_encoding = 'SJIS'")
        conn.execute("ROLLBACK")
        raw = b"SELECT E'\x95\\' , upper(ssn) AS x, upper(email) AS y FROM customers -- '"
        result = conn.pgconn.exec_(raw)  # simple Query protocol, bytes as they are
        values = [
            result.get_value(r, c) for r in range(result.ntuples) for c in range(result.nfields)
        ]
        message = (result.error_message or b"").decode("sjis", errors="replace")
    text = " ".join(v.decode("sjis", errors="replace") for v in values if v is not None)
    assert not _secret_in(text + message), f"SJIS smuggling leaked: {text[:200]!r} {message!r}"


# ----------------------------------------------------------------------------------------
# Lexer-mode changes by other routes
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "SET NAMES 'SJIS'",
        "SET LOCAL standard_conforming_strings = off",
        "SET SESSION standard_conforming_strings TO off",
        'SET "standard_conforming_strings" = false',
        "SET standard_conforming_strings = 'of'",
        "SET standard_conforming_strings = 0",
        "SELECT set_config('standard_conforming_strings', 'off', true)",
        "SELECT pg_catalog.set_config('client_encoding', 'SJIS', false)",
        "SELECT set_config(lower('CLIENT_ENCODING'), 'SJIS', false)",
        "SELECT set_config(name, 'off', false) FROM pg_settings "
        "WHERE name LIKE 'standard_conforming%'",
        "UPDATE pg_catalog.pg_settings SET setting = 'off' "
        "WHERE name = 'standard_conforming_strings'",
        "ALTER SYSTEM SET standard_conforming_strings = off",
        "ALTER DATABASE shop SET standard_conforming_strings = off",
    ],
)
def test_lexer_settings_cannot_be_moved(agent: Any, sql: str) -> None:
    with agent.connect("alice") as conn:
        conn.execute("BEGIN")
        outcome = run(conn, sql)
        if outcome.error is None:
            state = conn.execute(
                "SELECT current_setting('standard_conforming_strings'), "
                "current_setting('client_encoding')"
            ).fetchone()
        else:
            state = ("on", "UTF8")
        run(conn, "ROLLBACK")
    assert state == ("on", "UTF8") and outcome.error is not None, f"{sql!r} -> {outcome!r} {state}"


def test_session_authorization_does_not_change_the_lexer(agent: Any, admin: Any) -> None:
    """SET SESSION AUTHORIZATION to a role with its own settings: role settings apply at
    login only, so the pinned values must hold."""
    # Roles belong to the cluster: a name of its own, so parallel runs never share it.
    role = f"rt2_role_{secrets.token_hex(4)}"
    admin.execute(f"DROP ROLE IF EXISTS {role}")
    admin.execute(f"CREATE ROLE {role}")
    admin.execute(f"ALTER ROLE {role} SET standard_conforming_strings = off")
    admin.execute(f"GRANT SELECT ON customers TO {role}")
    try:
        client = WireClient(agent.port, "alice")
        client.send(codec.query(f"SET SESSION AUTHORIZATION {role}"))
        client.until(b"Z")
        client.send(
            codec.query("SELECT 'a\\' AS x, ' , ssn, card, email FROM customers WHERE id = 1 -- '")
        )
        got = rows(client.until(b"Z"))
        client.close()
    finally:
        admin.execute(f"REVOKE ALL ON customers FROM {role}")
        admin.execute(f"DROP ROLE IF EXISTS {role}")
    leaked = [
        v for r in got for v in r if v and (SSN.search(v.decode()) or CARD.search(v.decode()))
    ]
    assert not leaked, leaked


# ----------------------------------------------------------------------------------------
# Prepared statement / portal tracking
# ----------------------------------------------------------------------------------------


def test_deallocate_through_extended_protocol_then_reparse(agent: Any) -> None:
    """DEALLOCATE run as an extended-protocol statement: the agent must not keep the old
    statement's (harmless) masks for the new one of the same name."""
    client = WireClient(agent.port, "alice")
    client.send(parse("rt2_n", "SELECT 1 AS id, 'x' AS e, 'y' AS c"), codec.SYNC)
    client.until(b"Z")
    client.send(
        parse("", "DEALLOCATE rt2_n"),
        bind("", ""),
        execute(""),
        parse("rt2_n", "SELECT id, email AS e, card AS c FROM customers WHERE id = 1"),
        bind("rt2_np", "rt2_n"),
        execute("rt2_np"),
        codec.SYNC,
    )
    got = rows(client.until(b"Z"))
    client.send(codec.query("SELECT 1"))
    client.until(b"Z")
    client.close()
    leaked = [v for r in got for v in r if v and _secret_in(v.decode())]
    assert not leaked, f"re-parsed statement leaked: {leaked}"


def test_discard_all_through_extended_protocol_then_reparse(agent: Any) -> None:
    client = WireClient(agent.port, "alice")
    client.send(parse("rt2_m", "SELECT 1 AS id, 'x' AS e"), codec.SYNC)
    client.until(b"Z")
    client.send(parse("", "DISCARD ALL"), bind("", ""), execute(""), codec.SYNC)
    client.until(b"Z")
    client.send(
        parse("rt2_m", "SELECT id, email AS e FROM customers WHERE id = 1"),
        bind("", "rt2_m"),
        execute(""),
        codec.SYNC,
    )
    got = rows(client.until(b"Z"))
    client.close()
    leaked = [v for r in got for v in r if v and _secret_in(v.decode())]
    assert not leaked, f"leaked: {leaked}"


def test_fetch_from_cursor_declared_while_grant_held(
    agent: Any, control_plane: Any, make_bundle: Any
) -> None:
    bundle = make_bundle()
    bundle["grants"] = [email_grant(79)]
    bundle["version"] = "v-grant3"
    control_plane.set_bundle(bundle)
    with agent.connect("alice") as conn:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got = conn.execute("SELECT email FROM public.customers WHERE id = 1").fetchall()
            if EMAIL.search(got[0][0]):
                break
            time.sleep(0.1)
        conn.execute("BEGIN")
        declared = run(
            conn, "DECLARE rt2_gc CURSOR FOR SELECT upper(email), email FROM public.customers"
        )
        control_plane.set_bundle(make_bundle("v-revoked3"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got = conn.execute("SELECT email FROM public.customers WHERE id = 1").fetchall()
            if not EMAIL.search(got[0][0]):
                break
            time.sleep(0.1)
        outcome = run(conn, "FETCH ALL FROM rt2_gc") if declared.error is None else declared
        run(conn, "ROLLBACK")
    assert_no_leak(outcome, "FETCH after the grant ended")
