"""The native data path (agent/fastpath/): it must give exactly what the Python path
gives (rows, masks, audit events, metrics), and hand a round trip back to Python whenever
something unexpected arrives (an error, a new result shape, a pipelined client)."""

from __future__ import annotations

import json
import logging
import random
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from agent import _fastpath
from agent.audit import encode_batch, encode_batch_python, expand_batch
from agent.extension import native_path_available
from agent.metrics import NATIVE_BUCKETS, NATIVE_HANDBACKS, NATIVE_SLOTS, NATIVE_STATEMENTS
from agent.postgres import codec
from tests.agent.conftest import MASKING_KEY, PG_HOST, PG_PORT, email_grant
from tests.agent.wire import WireClient, bind, execute, parse, rows


def test_the_native_path_is_built() -> None:
    assert native_path_available(), (
        "agent/fastpath/ is not built: run scripts/bootstrap.sh "
        "(or .venv/bin/python setup.py build_ext --inplace)"
    )


@pytest.fixture
def agent(agent_factory: Any) -> Any:
    """These tests are of the native path itself: on, whatever WARDEN_AGENT_NATIVE says."""
    return agent_factory(native=True)


def _stats(agent: Any) -> Any:
    return agent.agent.metrics.statements


def _workload(agent: Any) -> list[Any]:
    """The same statements in simple, extended and prepared mode, masked and not."""
    seen: list[Any] = []
    with agent.connect("alice") as conn:
        simple = psycopg.ClientCursor(conn)
        for i in range(1, 13):
            seen.append(
                simple.execute(f"SELECT id, name, email FROM customers WHERE id = {i}").fetchall()
            )
            seen.append(
                simple.execute(f"SELECT count(*) FROM orders WHERE customer_id < {i}").fetchall()
            )
            seen.append(
                conn.execute(
                    "SELECT id, email, phone FROM customers WHERE id = %s", (i,)
                ).fetchall()
            )
            seen.append(
                conn.execute("SELECT id, name FROM customers WHERE id = %s", (i,)).fetchall()
            )
            seen.append(
                conn.execute(
                    "SELECT email, score FROM customers WHERE id = %s", (i,), prepare=True
                ).fetchall()
            )
            seen.append(
                conn.execute(
                    "SELECT name FROM customers WHERE id = %s", (i,), prepare=True
                ).fetchall()
            )
    return seen


def _events(control_plane: Any, since: set[str]) -> Counter[tuple[Any, ...]]:
    return Counter(
        (
            e["identity"],
            e["statement"],
            e["decision"],
            e["rows"],
            tuple(e["masked_columns"]),
            e.get("error", False),
        )
        for event_id, e in control_plane.events.items()
        if event_id not in since
    )


def test_native_and_python_paths_give_the_same_rows_audit_and_metrics(
    agent_factory: Any, control_plane: Any
) -> None:
    results = {}
    for native in (True, False):
        before = set(control_plane.events)
        agent = agent_factory(native=native)
        rows_seen = _workload(agent)
        agent.flush_audit()
        stats = _stats(agent)
        results[native] = (
            rows_seen,
            _events(control_plane, before),
            dict(stats.by_decision),
            sum(stats.bucket_counts),
            stats.native_statements,
        )
        agent.stop()
    native_rows, native_events, native_decisions, native_observed, native_count = results[True]
    python_rows, python_events, python_decisions, python_observed, python_count = results[False]
    assert native_rows == python_rows
    assert any("****@example.com" in str(r) for r in native_rows)
    assert native_events == python_events and sum(native_events.values()) == 72
    assert native_decisions == python_decisions
    assert native_observed == python_observed == 72
    # Each statement's first run or two go through Python (deciding, learning its shape).
    assert python_count == 0 and native_count >= 72 - 6 * 3


def test_an_error_in_a_native_round_trip_is_handed_back_and_audited(
    agent: Any, control_plane: Any
) -> None:
    before = set(control_plane.events)
    with agent.connect("root") as conn:
        simple = psycopg.ClientCursor(conn)
        for divisor_offset in (1, 3, 4, 5):  # same template: decided once, then native
            simple.execute(f"SELECT 10 / (id - {divisor_offset}) FROM customers WHERE id = 2")
            conn.execute("SELECT 10 / (id - %s) FROM customers WHERE id = 2", (divisor_offset,))
        native_before = _stats(agent).native_statements
        handbacks = _stats(agent).native_handbacks
        with pytest.raises(psycopg.errors.DivisionByZero):
            simple.execute("SELECT 10 / (id - 2) FROM customers WHERE id = 2")
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 10 / (id - %s) FROM customers WHERE id = 2", (2,))
        assert _stats(agent).native_handbacks == handbacks + 2
        # The session goes on, natively again.
        assert simple.execute("SELECT 10 / (id - 7) FROM customers WHERE id = 2").fetchone() == (
            -2,
        )
        assert conn.execute(
            "SELECT 10 / (id - %s) FROM customers WHERE id = 2", (7,)
        ).fetchone() == (-2,)
        assert _stats(agent).native_statements == native_before + 2
    agent.flush_audit()
    errors = [e for i, e in control_plane.events.items() if i not in before and e.get("error")]
    assert len(errors) == 2 and {e["rows"] for e in errors} == {None}


def test_a_changed_result_shape_is_learned_again_and_stays_masked(
    agent: Any, control_plane: Any, make_bundle: Any, pg_database: str, wait: Any
) -> None:
    admin = psycopg.connect(
        host=PG_HOST, port=PG_PORT, user="postgres", dbname=pg_database, autocommit=True
    )
    admin.execute("DROP TABLE IF EXISTS native_shape")
    admin.execute("CREATE TABLE native_shape (id int, note text, email text)")
    admin.execute("INSERT INTO native_shape VALUES (1, 'n', 'ada.1@example.com')")
    bundle = make_bundle("v2")
    bundle["columns"].append(
        {
            "schema": "public",
            "table": "native_shape",
            "column": "email",
            "tags": ["PII.Email"],
            "sensitivity": "confidential",
        }
    )
    control_plane.set_bundle(bundle)
    wait(lambda: agent.agent.store.current.version == "v2")
    try:
        with agent.connect("alice") as conn:
            simple = psycopg.ClientCursor(conn)
            for _ in range(4):
                assert conn.execute(
                    "SELECT * FROM native_shape WHERE id = %s", (1,)
                ).fetchone() == (1, "n", "****@example.com")
                assert simple.execute("SELECT * FROM native_shape WHERE id = 1").fetchone() == (
                    1,
                    "n",
                    "****@example.com",
                )
            handbacks = _stats(agent).native_handbacks
            # email moves to where note was: masks learned for the old shape must not apply.
            admin.execute("ALTER TABLE native_shape DROP COLUMN note")
            for _ in range(3):
                assert conn.execute(
                    "SELECT * FROM native_shape WHERE id = %s", (1,)
                ).fetchone() == (1, "****@example.com")
                assert simple.execute("SELECT * FROM native_shape WHERE id = 1").fetchone() == (
                    1,
                    "****@example.com",
                )
            assert _stats(agent).native_handbacks >= handbacks + 1
    finally:
        admin.execute("DROP TABLE IF EXISTS native_shape")
        admin.close()


def test_a_client_sending_ahead_takes_the_round_trip_back_to_python(agent: Any) -> None:
    client = WireClient(agent.port, "alice")
    slow = "SELECT pg_sleep(0.3), email FROM customers WHERE id = 1"
    for _ in range(3):  # decided, shape learned, then native
        client.send(parse("", slow), bind("", ""), execute(""), codec.SYNC)
        assert rows(client.until(b"Z"))[0][1] == b"****@example.com"
    handbacks = _stats(agent).native_handbacks
    client.send(parse("", slow), bind("", ""), execute(""), codec.SYNC)
    time.sleep(0.05)  # the upstream is still sleeping: the native round trip is in flight
    client.send(
        parse("", "SELECT email FROM customers WHERE id = 2"), bind("", ""), execute(""), codec.SYNC
    )
    first, second = client.until(b"Z"), client.until(b"Z")
    assert [k for k, _ in first] == [b"1", b"2", b"D", b"C", b"Z"]
    assert rows(first)[0][1] == b"****@example.com" and rows(second)[0][0] == b"****@example.com"
    assert _stats(agent).native_handbacks == handbacks + 1
    client.send(codec.query(slow))
    simple = client.until(b"Z")
    client.send(codec.query(slow))
    time.sleep(0.05)
    client.send(codec.query("SELECT email FROM customers WHERE id = 3"))
    first, second = client.until(b"Z"), client.until(b"Z")
    assert rows(simple)[0][1] == rows(first)[0][1] == b"****@example.com"
    assert rows(second)[0][0] == b"****@example.com"
    assert _stats(agent).native_handbacks == handbacks + 2
    client.close()


def test_a_policy_change_reaches_statements_prepared_before_it(
    agent_on_both_paths: Any, control_plane: Any, make_bundle: Any, wait: Any
) -> None:
    agent = agent_on_both_paths
    with agent.connect("alice") as conn:
        simple = psycopg.ClientCursor(conn)

        def emails() -> set[str]:
            return {
                simple.execute("SELECT email FROM customers WHERE id = 1").fetchone()[0],
                conn.execute("SELECT email FROM customers WHERE id = %s", (1,)).fetchone()[0],
                conn.execute(
                    "SELECT email FROM customers WHERE id = %s", (1,), prepare=True
                ).fetchone()[0],
            }

        for _ in range(3):
            assert emails() == {"****@example.com"}
        granted = make_bundle("v2")
        granted["grants"] = [email_grant(7)]
        control_plane.set_bundle(granted)
        wait(lambda: agent.agent.store.current.version == "v2")
        assert len(emails()) == 1 and not emails().pop().startswith("*")
        control_plane.set_bundle(make_bundle("v3"))  # the grant is gone again
        wait(lambda: agent.agent.store.current.version == "v3")
        for _ in range(3):
            assert emails() == {"****@example.com"}


def test_native_audit_batches_expand_to_the_python_encoders_events() -> None:
    fragments = [json.dumps({"identity": n, "statement": "SELECT 1"})[1:-1] for n in "abc"]
    generator = random.Random(7)
    queued = [
        (
            fragments[i % 3],
            time.time() + generator.random() * 1000,
            None if i % 7 == 0 else generator.randrange(10**12),
            generator.random() * 10 ** generator.randint(-5, 5),
            i % 5 == 0,
            generator.randrange(10**12),
        )
        for i in range(3000)
    ]
    native = expand_batch(json.loads(encode_batch("0" * 24, 41, queued)))
    python = expand_batch(json.loads(encode_batch_python("0" * 24, 41, queued)))
    assert len(native) == len(python) == 3000
    for ours, theirs in zip(native, python, strict=True):
        moment = datetime.fromisoformat(ours.pop("time"))
        assert abs(moment - datetime.fromisoformat(theirs.pop("time"))) <= timedelta(microseconds=1)
        assert ours == theirs
    assert {event["bytes"] for event in native} == {q[5] for q in queued}
    odd = [(fragments[0], float("nan"), 2**70, 0.5, False, 0)]
    with pytest.raises((ValueError, OverflowError)):
        _fastpath.encode_events(odd, 0)
    # Values the native encoder refuses still make a batch (the Python one), none are lost.
    assert encode_batch("0" * 24, 0, odd) == encode_batch_python("0" * 24, 0, odd)


def test_native_masking_gives_what_masking_py_gives() -> None:
    from types import SimpleNamespace

    from agent import _fastpath, masking
    from agent.postgres.session import Session

    key = b"test-key"
    stub = SimpleNamespace(agent=SimpleNamespace(config=SimpleNamespace(masking_key=key)))
    generator = random.Random(11)
    # Non-ASCII digits and letters: isdecimal / isalnum as Python's str sees them.
    arabic_digits = "".join(chr(0x660 + d) for d in range(10))
    alphabet = [*"aZ07- @_.:T", "\u00e9", "\u00df", arabic_digits[3], "\uff15", "\U0001f600"]
    alphabet += ["\u00b2", "\u216b", "\u0301"]
    fixed = [
        b"",
        b"@",
        b"a@",
        b"@b",
        b"ada.1@example.com",
        b"x@y@z",
        b"2024-05-06",
        b"2024-05-06 12:00:00+00",
        b"2024-05-06T12:00",
        b"12345-01-31",
        b"999-01-01",
        f"{arabic_digits[1:5]}-{arabic_digits[0]}5-06".encode(),
        b"4111 1111-1111 1111",
        b"\xff\xfeab12\xc3",
    ]
    values = fixed + [
        "".join(generator.choice(alphabet) for _ in range(generator.randrange(12))).encode()
        for _ in range(300)
    ]
    methods = [*masking.METHODS, "bogus"]
    checked = 0
    for value in values:
        for _ in range(6):
            specs = [
                (
                    generator.choice(methods),
                    generator.choice([None, 0, 2, 4, -1, 40]),
                    generator.choice([25, 1043, 1042, 23, 1082, 1114, 1184, 0]),
                    generator.random() < 0.1,
                )
                for _ in range(2)
            ]
            other = generator.choice(values)
            row = codec.data_row([value, None, other, b"kept"])[5:]
            row_mask = [(0, specs[0]), (1, specs[0]), (2, specs[1])]
            native = _fastpath.mask_row(row, row_mask, key)
            python = Session._mask_row(stub, row, row_mask)  # type: ignore[arg-type]
            assert native == python, (value, specs)
            # The bulk form: a run of rows, with a message of another kind after it.
            run = python[:0].join([codec.data_row([value, other])] * 2) + b"C\0\0\0\5x"
            masked_run, end, rows = _fastpath.mask_rows(b"xx" + run, 2, row_mask, key)
            expected = [Session._mask_row(stub, codec.data_row([value, other])[5:], row_mask)]
            assert (masked_run, end, rows) == (expected[0] * 2, len(run) - 4, 2), (value, specs)
            checked += 1
    assert checked == len(values) * 6
    with pytest.raises(ValueError, match="malformed DataRow"):
        _fastpath.mask_row(b"\x00\x02\x00\x00\x00\x09ab", [(0, ("redact", None, 25, False))], key)
    # Unmasked rows pass as they are: only where the run ends.
    assert _fastpath.mask_rows(codec.data_row([b"a"]) * 3, 0, None, key) == (None, 36, 3)


def test_native_hash_tokens_match_masking_py_across_sha256_block_boundaries() -> None:
    """The C HMAC pads its own blocks: every value length around one and two blocks (55,
    56, 64, 119, 120…), multi-byte text, and keys shorter, as long as and longer than a
    block give masking.hash_token's token."""
    from agent import masking

    generator = random.Random(22)
    keys = [b"", b"k", MASKING_KEY, b"b" * 64, b"c" * 65, bytes(range(200))]
    checked = 0
    for length in [*range(0, 140), 1000, 4097]:
        text = "".join(generator.choice("ab9@. ëü日") for _ in range(length))
        for key in keys:
            raw = text.encode()
            row = codec.data_row([raw])[5:]
            masked = _fastpath.mask_row(row, [(0, ("hash", None, 25, False))], key)
            assert masked[11:] == masking.hash_token(text, key).encode(), (length, key)
            checked += 1
    assert checked == 142 * len(keys)


def test_a_parse_ticket_is_not_used_for_a_bind_of_another_statement(
    agent_on_both_paths: Any,
) -> None:
    client = WireClient(agent_on_both_paths.port, "alice")
    by_name = "SELECT name, email FROM customers WHERE id = 1"
    by_email = "SELECT email, name FROM customers WHERE id = 1"
    client.send(parse("b", by_email), bind("", "b"), execute(""), codec.SYNC)
    assert rows(client.until(b"Z")) == [[b"****@example.com", b"Grace Hopper"]]
    for _ in range(3):  # both shapes learned, the unnamed Parse has a ticket
        client.send(parse("", by_name), bind("", ""), execute(""), codec.SYNC)
        assert rows(client.until(b"Z")) == [[b"Grace Hopper", b"****@example.com"]]
    # Parse the unnamed statement, but run "b": b's masks, not the Parse's.
    for _ in range(2):
        client.send(parse("", by_name), bind("", "b"), execute(""), codec.SYNC)
        assert rows(client.until(b"Z")) == [[b"****@example.com", b"Grace Hopper"]]
    client.close()


def test_ddl_through_the_agent_makes_cached_round_trips_decide_again(
    agent_on_both_paths: Any, pg_database: str
) -> None:
    agent = agent_on_both_paths
    admin = psycopg.connect(
        host=PG_HOST, port=PG_PORT, user="postgres", dbname=pg_database, autocommit=True
    )
    admin.execute("DROP VIEW IF EXISTS native_names")
    # The view filters itself: a filter on a view column would count as one on every column
    # the view reads, the e-mail included, once it reads one.
    admin.execute("CREATE VIEW native_names AS SELECT id, name AS x FROM customers WHERE id = 1")
    try:
        with agent.connect("alice") as conn, agent.connect("root") as root:
            simple = psycopg.ClientCursor(conn)

            def read() -> set[str]:
                return {
                    simple.execute("SELECT x FROM native_names WHERE 1 = 1").fetchone()[0],
                    conn.execute("SELECT x FROM native_names WHERE 1 = %s", (1,)).fetchone()[0],
                }

            for _ in range(4):
                assert read() == {"Grace Hopper"}
            # Same result shape, now over the email column: the view's masks must follow.
            root.execute(
                "CREATE OR REPLACE VIEW native_names AS SELECT id, email AS x FROM customers "
                "WHERE id = 1"
            )
            for _ in range(3):
                assert read() == {"****"}
    finally:
        admin.execute("DROP VIEW IF EXISTS native_names")
        admin.close()


def test_a_named_parse_the_server_refuses_leaves_the_old_statement(
    agent_on_both_paths: Any,
) -> None:
    client = WireClient(agent_on_both_paths.port, "alice")
    client.send(parse("s", "SELECT email FROM customers WHERE id = 1"), codec.SYNC)
    client.until(b"Z")
    client.send(parse("s", "SELECT name FROM customers WHERE id = 1"), codec.SYNC)
    refused = client.until(b"Z")
    assert refused[0][0] == b"E" and b"42P05" in refused[0][1]  # already exists
    # Skipped after an error: a Parse behind the failing one changes nothing either.
    client.send(
        parse("s", "SELECT name FROM customers WHERE id = 1"),
        parse("t", "SELECT name FROM customers WHERE id = 1"),
        codec.SYNC,
    )
    client.until(b"Z")
    client.send(bind("", "s"), execute(""), codec.SYNC)
    assert rows(client.until(b"Z")) == [[b"****@example.com"]]
    client.send(bind("", "t"), execute(""), codec.SYNC)
    assert client.until(b"Z")[0][0] == b"E"  # "t" exists neither on the server nor here
    client.close()


def test_statement_names_that_differ_only_in_invalid_bytes_stay_apart() -> None:
    first = codec.parse_parse(b"\xfe\x00SELECT 1\x00\x00\x00")[0]
    second = codec.parse_parse(b"\xff\x00SELECT 1\x00\x00\x00")[0]
    assert first != second
    assert codec.describe(b"S", first) == codec.message(b"D", b"S\xfe\x00")


def test_an_invalid_message_length_ends_only_that_session(agent_on_both_paths: Any) -> None:
    agent = agent_on_both_paths
    client = WireClient(agent.port, "alice")
    client.send(b"x\xff\xff\xff\xff")
    kind, payload = client.read()
    assert kind == b"E" and b"08P01" in payload and b"invalid message length" in payload
    other = WireClient(agent.port, "alice")
    other.send(codec.query("SELECT 1"))
    assert rows(other.until(b"Z")) == [[b"1"]]
    other.close()


def test_an_uninitialized_fast_path_raises_instead_of_crashing() -> None:
    fast = _fastpath.FastPath.__new__(_fastpath.FastPath)
    for call in (fast.forget, lambda: fast.client(b"Q"), lambda: fast.q_tickets):
        with pytest.raises(RuntimeError, match="not initialized"):
            call()


def test_an_extension_built_for_another_bridge_abi_is_not_used(caplog: Any) -> None:
    from types import SimpleNamespace

    from agent import extension

    assert extension.load_extension() is _fastpath  # this build speaks this agent's ABI
    assert _fastpath.ABI_VERSION == extension.ABI_VERSION
    with caplog.at_level(logging.WARNING, logger="agent.native"):
        assert extension.load_extension(extension.ABI_VERSION + 1) is None
    assert "bridge ABI" in caplog.text and "pure-Python path" in caplog.text
    # The extension checks the bridge too, before reading anything else of it.
    with pytest.raises(RuntimeError, match="bridge ABI"):
        _fastpath.FastPath(SimpleNamespace(abi_version=extension.ABI_VERSION + 1))


def _bridge_stub(**fields: Any) -> Any:
    """A namespace with every field the extension reads of a Bridge (none of them used)."""
    from collections import deque
    from types import SimpleNamespace

    from agent.metrics import StatementStats
    from agent.postgres.native import Bridge

    stats = StatementStats()
    stub = SimpleNamespace(
        abi_version=Bridge.abi_version,
        batch_size=Bridge.batch_size,
        latency_buckets=Bridge.latency_buckets,
        native_counts=stats.native,
        native_seconds=stats.native_seconds,
        native_layout=(0, 1, NATIVE_BUCKETS, NATIVE_STATEMENTS, NATIVE_HANDBACKS),
        expect=deque(),
        audit_queue=[],
        statements={},
        portals={},
        origin_masks={},
        audit_fragments={},
        audit_journal=None,
        upstream_fd=-1,
        client_fd=-1,
    )
    for name in [
        "session",
        "agent",
        "client_relay",
        "backend_relay",
        "upstream_write",
        "client_write",
        "hand_back_simple",
        "hand_back_extended",
        "audit_wakeup",
        "client_python",
        "backend_python",
        "client_rest",
        "backend_rest",
        "client_failed",
        "backend_failed",
        "mask_value",
        "masking_key",
    ]:
        setattr(stub, name, None)
    for name, value in fields.items():
        setattr(stub, name, value)
    return stub


def test_a_bridge_whose_counters_do_not_fit_is_refused() -> None:
    from array import array

    _fastpath.FastPath(_bridge_stub())  # the stub itself is accepted
    layout = (0, 1, NATIVE_BUCKETS, NATIVE_STATEMENTS, NATIVE_SLOTS)  # hand-backs past the end
    with pytest.raises(ValueError, match="counter layout"):
        _fastpath.FastPath(_bridge_stub(native_layout=layout))
    layout = (0, 1, NATIVE_SLOTS - 3, NATIVE_STATEMENTS, NATIVE_HANDBACKS)  # buckets too
    with pytest.raises(ValueError, match="counter layout"):
        _fastpath.FastPath(_bridge_stub(native_layout=layout))
    with pytest.raises(TypeError, match="native_counts"):
        _fastpath.FastPath(_bridge_stub(native_counts=array("d", [0.0] * NATIVE_SLOTS)))
    with pytest.raises(TypeError, match="native_seconds"):
        _fastpath.FastPath(_bridge_stub(native_seconds=array("q", [0])))


def test_native_counters_are_the_stats_python_reads(agent_factory: Any) -> None:
    agent = agent_factory(native=True)
    stats = _stats(agent)
    with agent.connect("alice") as conn:
        for i in range(1, 6):
            conn.execute("SELECT id, email FROM customers WHERE id = %s", (i,)).fetchall()
            conn.execute("SELECT id, name FROM customers WHERE id = %s", (i,)).fetchall()
        with pytest.raises(BufferError):  # held by the session's extension: never moved
            stats.native.append(0)
    assert stats.native_statements >= 6  # the first runs of each are Python's
    assert stats.by_decision["mask"] == 5 and stats.by_decision["allow"] == 5
    assert sum(stats.bucket_counts) == 10 and stats.seconds_total > 0


def test_a_bridge_of_another_abi_keeps_sessions_on_the_python_path(
    agent_factory: Any, monkeypatch: Any, caplog: Any
) -> None:
    from agent.postgres.native import Bridge

    monkeypatch.setattr(Bridge, "abi_version", Bridge.abi_version + 1)
    agent = agent_factory(native=True)
    with caplog.at_level(logging.WARNING, logger="agent.native"), agent.connect("alice") as conn:
        seen = [
            conn.execute("SELECT id, email FROM customers WHERE id = %s", (1,)).fetchall()
            for _ in range(4)
        ]
    assert all(rows == [(1, "****@example.com")] for rows in seen), seen
    assert _stats(agent).native_statements == 0
    assert "native data path not used" in caplog.text


def test_writes_and_transaction_control_run_natively_with_the_same_refusals(
    agent: Any, control_plane: Any, admin: Any
) -> None:
    """pgbench's TPC-B shape (BEGIN, UPDATE with a negative delta, SELECT, INSERT,
    SAVEPOINT, COMMIT) runs on the native path once decided; writes that a guardrail or an
    inference rule refuses are refused every time, never replayed natively."""
    start = admin.execute("SELECT amount FROM orders WHERE id = 1").fetchone()[0]
    before = set(control_plane.events)
    with agent.connect("alice") as conn:
        conn.autocommit = True  # the client's own BEGIN/COMMIT
        simple = psycopg.ClientCursor(conn)
        for n in range(1, 9):
            if n == 5:  # decided, templates made: every statement from here on is native
                native_before = _stats(agent).native_statements
            simple.execute("BEGIN")
            simple.execute(f"UPDATE orders SET amount = amount + -{n} WHERE id = 1")
            simple.execute("SELECT amount FROM orders WHERE id = 1")
            simple.execute(f"INSERT INTO scratch (id) VALUES ({n})")
            simple.execute("SAVEPOINT s1")
            simple.execute("ROLLBACK TO SAVEPOINT s1")
            simple.execute("COMMIT")
        assert _stats(agent).native_statements - native_before == 7 * 4
        for _ in range(3):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="guardrail"):
                simple.execute("DELETE FROM scratch")
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="email"):
                simple.execute(
                    "UPDATE scratch SET v = 'x' WHERE id IN "
                    "(SELECT id FROM customers WHERE email LIKE 'a%')"
                )
    assert admin.execute("SELECT amount FROM orders WHERE id = 1").fetchone()[0] == start - 36
    assert admin.execute("SELECT count(*) FROM scratch WHERE id <= 8").fetchone()[0] >= 8
    # the refused statements can run unrestricted: the refusals are the agent's
    admin.execute("BEGIN")
    admin.execute(
        "UPDATE scratch SET v = 'x' WHERE id IN (SELECT id FROM customers WHERE email LIKE 'a%')"
    )
    admin.execute("DELETE FROM scratch")
    admin.execute("ROLLBACK")
    agent.flush_audit()
    events = _events(control_plane, before)
    kinds = Counter(
        statement.split()[0] for (_, statement, *_), n in events.items() for _ in range(n)
    )
    assert kinds["BEGIN"] == kinds["COMMIT"] == kinds["SAVEPOINT"] == 8
    assert kinds["UPDATE"] == 8 + 3 and kinds["INSERT"] == 8 and kinds["DELETE"] == 3
    denied = [e for e, n in events.items() if e[2] == "deny"]
    assert sum(events[e] for e in denied) == 6


@pytest.mark.parametrize("prepare", [False, True])
def test_a_decision_that_lapses_in_place_is_not_replayed_natively(
    agent: Any, prepare: bool
) -> None:
    """The native path reads a decision's valid_until (a slot) on every round trip: a
    cached decision whose validity ends in place is decided again by Python first."""
    sql = "SELECT name FROM customers WHERE id = %s"
    with agent.connect("alice") as conn:
        for i in range(1, 4):  # decided (and, prepared, Described), then native
            conn.execute(sql, (i,), prepare=prepare).fetchall()
        native = _stats(agent).native_statements
        assert conn.execute(sql, (4,), prepare=prepare).fetchall()
        assert _stats(agent).native_statements == native + 1
        for decision in list(agent.agent.decisions.values()):
            decision.valid_until = 0.0
        assert conn.execute(sql, (5,), prepare=prepare).fetchall()
        assert _stats(agent).native_statements == native + 1  # Python decided it again
        for i in range(6, 9):  # its new decision (learned again like the first): native
            assert conn.execute(sql, (i,), prepare=prepare).fetchall()
        assert _stats(agent).native_statements > native + 1


def _session_stats(running: Any) -> dict[str, int]:
    """The native path's stats of the one session open on a running agent."""
    (relay,) = running.agent.results.values()
    return dict(relay.session.fast.stats)


def _repeat_masked_reads(conn: psycopg.Connection[Any]) -> list[Any]:
    return [
        conn.execute("SELECT id, email FROM customers WHERE id = %s", (i % 3 + 1,)).fetchall()
        for i in range(12)
    ]


def test_native_writes_go_on_plain_sockets_themselves(agent_factory: Any) -> None:
    agent = agent_factory(native=True)
    with agent.connect("alice") as conn:
        seen = _repeat_masked_reads(conn)
        stats = _session_stats(agent)
    assert seen[-1] == [(3, "****@example.com")], seen
    assert stats["client"] >= 6, stats  # native round trips
    assert stats["sent_upstream"] >= 6 and stats["sent_client"] >= 6, stats


def test_native_writes_to_a_tls_client_go_through_its_transport(
    agent_factory: Any, tmp_path: Path
) -> None:
    """The socket under a TLS transport carries ciphertext: the native path never writes it."""
    from agent.testing import self_signed_certificate

    cert, key = self_signed_certificate(tmp_path)
    agent = agent_factory(native=True, tls_cert=cert, tls_key=key)
    dsn = agent.dsn("alice").replace("sslmode=disable", "sslmode=require")
    with psycopg.connect(dsn) as conn:
        assert conn.pgconn.ssl_in_use
        seen = _repeat_masked_reads(conn)
        stats = _session_stats(agent)
    assert seen[-1] == [(3, "****@example.com")], seen
    assert stats["client"] >= 6, stats  # native round trips, over TLS
    assert stats["sent_client"] == 0 and stats["queued_client"] == 0, stats
    assert stats["sent_upstream"] >= 6, stats  # the upstream connection is plain TCP
    # ... which the native path also reads itself; the TLS transport reads its own socket
    assert stats["read_client"] == 0 and stats["read_upstream"] >= 6, stats


def test_a_text_differing_from_a_ticket_only_in_an_identifiers_digit_is_decided_again(
    agent: Any, control_plane: Any
) -> None:
    """A Query ticket is found by the text with digits read as 0 and checks only the pieces
    around the constants that hold a digit: a number changed runs natively, an alias (or any
    identifier) whose digit changed is decided again and audited as itself."""
    before = set(control_plane.events)
    with agent.connect("alice") as conn:
        simple = psycopg.ClientCursor(conn)
        for n in (1, 2):  # decided, then the template's ticket made
            assert simple.execute(f"SELECT {n} AS a1").fetchall() == [(n,)]
        native_before = _stats(agent).native_statements
        assert simple.execute("SELECT 3 AS a1").fetchall() == [(3,)]
        assert _stats(agent).native_statements == native_before + 1
        cursor = simple.execute("SELECT 4 AS a2")
        assert cursor.fetchall() == [(4,)] and cursor.description[0].name == "a2"
        assert _stats(agent).native_statements == native_before + 1
    agent.flush_audit()
    statements = Counter(
        statement
        for (_, statement, *_), n in _events(control_plane, before).items()
        for _ in range(n)
    )
    assert statements["SELECT $1 AS a1"] == 3 and statements["SELECT $1 AS a2"] == 1
