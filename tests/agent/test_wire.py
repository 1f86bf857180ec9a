"""Raw wire-protocol conversations (what drivers like JDBC do that psycopg does not):
named portals with row limits, Close, Flush, and denial inside a pipelined batch."""

from __future__ import annotations

import struct
import threading
import time
from typing import Any

import pytest

from agent.postgres import codec
from tests.agent.wire import WireClient, bind, close, execute, parse, rows


@pytest.fixture
def agent(agent_on_both_paths: Any) -> Any:
    """Every test here runs on the native data path and on the pure-Python one."""
    return agent_on_both_paths


def test_named_portal_with_row_limit_stays_masked_across_suspensions(agent: Any) -> None:
    client = WireClient(agent.port, "alice")
    client.send(
        parse("s1", "SELECT id, email, upper(email) FROM customers ORDER BY id"),
        bind("p1", "s1"),
        execute("p1", 2),
        execute("p1", 3),
        close(b"P", "p1"),
        close(b"S", "s1"),
        codec.SYNC,
    )
    messages = client.until(b"Z")
    kinds = [k for k, _ in messages]
    assert kinds == [b"1", b"2", b"D", b"D", b"s", b"D", b"D", b"D", b"s", b"3", b"3", b"Z"]
    for row in rows(messages):
        assert row[1] == b"****@example.com" and row[2] == b"****"
    client.close()


def test_describe_and_flush_before_sync(agent: Any) -> None:
    client = WireClient(agent.port, "alice")
    client.send(
        parse("", "SELECT name, email FROM customers WHERE id = 1"),
        codec.describe(b"S", ""),
        codec.FLUSH,
    )
    kinds = [k for k, _ in client.until(b"T")]
    assert kinds == [b"1", b"t", b"T"]
    client.send(bind("", ""), execute(""), codec.SYNC)
    messages = client.until(b"Z")
    assert rows(messages)[0][1] == b"****@example.com"
    client.close()


def test_denied_statement_in_a_pipeline_errors_in_order_and_skips_to_sync(agent: Any) -> None:
    client = WireClient(agent.port, "alice")
    client.send(
        parse("", "SELECT 1"),
        bind("", ""),
        execute(""),
        parse("", "SELECT ssn FROM customers"),
        bind("", ""),
        execute(""),
        codec.SYNC,
        parse("", "SELECT 2"),
        bind("", ""),
        execute(""),
        codec.SYNC,
    )
    first = client.until(b"Z")
    assert [k for k, _ in first] == [b"1", b"2", b"D", b"C", b"E", b"Z"]
    error = codec.parse_error_fields(first[4][1])
    assert error["C"] == "42501" and "ssn" in error["M"]
    second = client.until(b"Z")
    assert rows(second) == [[b"2"]]
    client.close()


def test_simple_query_denial_keeps_transaction_status(agent: Any) -> None:
    client = WireClient(agent.port, "root")
    client.send(codec.query("BEGIN"))
    assert client.until(b"Z")[-1][1] == b"T"
    client.send(codec.query("TRUNCATE scratch"))
    messages = client.until(b"Z")
    assert messages[0][0] == b"E" and codec.parse_error_fields(messages[0][1])["C"] == "42501"
    client.send(codec.query("ROLLBACK"))
    assert client.until(b"Z")[-1][1] == b"I"
    client.close()


def test_fast_path_function_calls_are_refused(agent: Any) -> None:
    client = WireClient(agent.port, "root")
    call = codec.message(b"F", struct.pack("!i", 2650) + b"\x00\x00" + b"\x00\x00" + b"\x00\x00")
    client.send(call)
    messages = client.until(b"Z")
    assert messages[0][0] == b"E" and "fast-path" in codec.parse_error_fields(messages[0][1])["M"]
    client.close()


def test_megabytes_arriving_while_a_decision_is_pending_are_relayed_in_order(agent: Any) -> None:
    client = WireClient(agent.port, "alice")
    # The first statement is new to the agent (its decision needs the slow path); 4 MB of
    # further statements arrive while it is pending and must be buffered, then run in order.
    first = codec.query("SELECT email FROM customers WHERE id = 1 /* back-pressure */")
    big = [codec.query(f"SELECT length('{'x' * (100_000 + i)}') AS n") for i in range(40)]
    sender = threading.Thread(target=client.send, args=(first, *big))
    sender.start()
    results = [client.until(b"Z") for _ in range(41)]
    sender.join(10)
    assert rows(results[0]) == [[b"****@example.com"]]
    assert [rows(r) for r in results[1:]] == [[[str(100_000 + i).encode()]] for i in range(40)]
    client.close()


def test_a_client_that_stops_reading_pauses_the_upstream_and_loses_nothing(agent: Any) -> None:
    client = WireClient(agent.port, "alice")
    client.send(
        codec.query(
            "SELECT c.email, repeat('y', 2000) AS pad FROM customers c, generate_series(1, 400)"
        )
    )
    time.sleep(1.0)  # megabytes of rows pile up: the agent must pause, not buffer them all
    messages = client.until(b"Z")
    data_rows = rows(messages)
    tag = codec.command_tag(next(p for k, p in messages if k == b"C"))
    assert tag == f"SELECT {len(data_rows)}" and len(data_rows) >= 400
    assert all(row[0] == b"****@example.com" for row in data_rows)
    client.close()


def test_masked_portal_run_in_later_round_trips_of_a_transaction_stays_masked(agent: Any) -> None:
    # In a transaction block a portal outlives Sync: its Execute is then the first message
    # the server answers, with nothing before it to arm the row masks.
    client = WireClient(agent.port, "alice")
    client.send(codec.query("BEGIN"))
    client.until(b"Z")
    client.send(parse("s1", "SELECT id, email FROM customers ORDER BY id"), bind("p1", "s1"))
    client.send(codec.SYNC)
    assert [k for k, _ in client.until(b"Z")] == [b"1", b"2", b"Z"]
    emails = []
    for _ in range(2):  # the second Execute resumes the suspended portal
        client.send(execute("p1", 2), codec.SYNC)
        messages = client.until(b"Z")
        assert [k for k, _ in messages] == [b"D", b"D", b"s", b"Z"]
        emails += [row[1] for row in rows(messages)]
    assert emails == [b"****@example.com"] * 4
    client.send(codec.query("COMMIT"))
    client.until(b"Z")
    client.close()
