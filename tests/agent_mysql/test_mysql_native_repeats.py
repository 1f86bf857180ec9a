"""A repeated COM_QUERY on the native path (agent/mysql/native.py, agent/fastpath/
mysql_session.c) against the pure-Python path: the same workload on an agent of each
sends the client the same bytes and ships the same audit events, and the native agent
really ran its repeats in C (its sessions' stats), handing back to Python what C does not
finish (a result split over several reads)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.agent_mysql.conftest import MySqlAgentRunner, session_of

# The e-mail column is masked (email) for analysts such as bob, the card column (partial)
# for everyone: a repeat's rows masked in C.
WORKLOAD = [
    *(f"SELECT id, name, score FROM customers WHERE id = {i}" for i in (1, 2, 3, 2, 1, 7)),
    *(f"SELECT id, email, card FROM customers WHERE id = {i}" for i in (4, 5, 4, 6)),
    *("SELECT id, name FROM customers WHERE id = 999" for _ in range(3)),  # no rows
    *("SELECT id, card FROM customers WHERE id <= 5 ORDER BY id" for _ in range(3)),
    # Rows of ~700 kB: the answer comes in several reads, so C hands it back to Python.
    *("SELECT id, REPEAT(name, 70000) FROM customers WHERE id <= 3 ORDER BY id" for _ in range(3)),
]
_VARYING = ("id", "time", "duration_ms")  # an event's id, when and how long: not compared


class _Recorder:
    """pymysql's socket file, recording every byte the agent sent the client."""

    def __init__(self, file: Any) -> None:
        self.file, self.data = file, bytearray()

    def read(self, size: int) -> bytes:
        data: bytes = self.file.read(size)
        self.data += data
        return data

    def close(self) -> None:
        self.file.close()


def _run(agent: MySqlAgentRunner, control_plane: Any, user: str) -> tuple[bytes, list[Any]]:
    """The bytes the client read after login and the audit events of the workload."""
    before = set(control_plane.events)
    conn = agent.connect(user)
    recorder = conn._rfile = _Recorder(conn._rfile)
    with conn.cursor() as cursor:
        for sql in WORKLOAD:
            cursor.execute(sql)
            cursor.fetchall()
    conn.close()
    agent.flush_audit()
    events = [
        {k: v for k, v in event.items() if k not in _VARYING}
        for key, event in control_plane.events.items()
        if key not in before and event["identity"] == user
    ]
    return bytes(recorder.data), events


@pytest.mark.parametrize("user", ["alice", "bob"])
def test_a_repeat_in_c_sends_the_same_bytes_and_audits_the_same_events_as_python(
    agent_factory: Any, control_plane: Any, root: Any, wait: Any, user: str
) -> None:
    with root.cursor() as direct:
        direct.execute("SELECT card FROM customers WHERE id = 4")
        assert direct.fetchone()[0] == "4111-1111-1111-1004"  # the control: the secret is there
    native = agent_factory(native=True)
    python = agent_factory(native=False)
    native_bytes, native_events = _run(native, control_plane, user)
    wait(lambda: not native.agent.connections)  # its session ended: its stats are added
    python_bytes, python_events = _run(python, control_plane, user)
    # masked in C too
    assert b"4111-1111-1111-1004" not in native_bytes and b"XXXX-XXXX-XXXX-1004" in native_bytes
    assert native_bytes == python_bytes
    assert len(native_events) >= len(WORKLOAD)  # and what pymysql sends after login
    assert native_events == python_events
    statements = native.agent.metrics.statements, python.agent.metrics.statements
    assert statements[0].by_decision == statements[1].by_decision  # counted alike in C
    assert sum(statements[0].bucket_counts) == sum(statements[1].bucket_counts)
    stats = native.agent.native_stats
    # Every repeat of a whole result ran in C (a text's first two runs are Python's: decided,
    # then remembered as a repeat); the big rows' repeat was handed back.
    assert stats["upstream"] == 8, stats
    assert stats["handed_back"] == 1, stats
    assert stats["client"] == stats["upstream"] + stats["handed_back"]
    assert not python.agent.native_stats  # the pure-Python agent never had a native path


def test_a_repeat_in_c_is_decided_again_once_the_bundle_changes(
    agent_factory: Any, control_plane: Any, mysql_database: str, wait: Any
) -> None:
    """The generation check of the C repeat: a new bundle that denies the column refuses the
    text C ran a moment ago."""
    from tests.agent_mysql.conftest import deny_column, mysql_bundle

    agent = agent_factory(native=True)
    sql = "SELECT id, score FROM customers WHERE id = 3"
    with agent.connect("alice") as conn, conn.cursor() as cursor:
        for _ in range(3):
            cursor.execute(sql)
            assert cursor.fetchall() == ((3, 30),)
        bundle = mysql_bundle(mysql_database, version="v2")
        column = {"schema": mysql_database, "table": "customers", "column": "score"}
        deny_column(bundle, column, 97, "nobody reads scores")
        generation = agent.agent.generation
        control_plane.set_bundle(bundle)
        wait(lambda: agent.agent.generation != generation)
        import pymysql

        with pytest.raises(pymysql.err.MySQLError) as refused:
            cursor.execute(sql)
        assert refused.value.args[0] == 1142
    wait(lambda: not agent.agent.connections)
    assert agent.agent.native_stats["upstream"] >= 1  # the repeats before ran in C


def test_a_repeat_in_c_is_decided_again_once_its_decision_expires(
    agent_factory: Any, wait: Any
) -> None:
    """The expiry check of the C repeat: an expired decision sends the text back to Python,
    which decides it again (and the C path takes over once it is remembered again)."""
    agent = agent_factory(native=True)
    sql = "SELECT id, name FROM customers WHERE id = {}"
    with agent.connect("alice") as conn, conn.cursor() as cursor:
        for id_ in (1, 2, 3, 4):  # decided, remembered, then two repeats in C
            cursor.execute(sql.format(id_))
            assert cursor.fetchall()[0][0] == id_
        session_path = session_of(agent).native_path
        assert session_path.stats["upstream"] == 2
        for decision in list(agent.agent.decisions.values()):
            decision.valid_until = 0.0  # expired
        cursor.execute(sql.format(5))
        assert cursor.fetchall()[0][0] == 5
        assert session_path.stats["client"] == 2  # not taken in C: decided again in Python
        for id_ in (6, 7, 8):  # remembered under the new decision, then repeats in C again
            cursor.execute(sql.format(id_))
            assert cursor.fetchall()[0][0] == id_
        assert session_path.stats["upstream"] >= 3


@pytest.mark.parametrize("one_write", [False, True], ids=["several-writes", "one-write"])
def test_commands_pipelined_behind_a_repeat_run_in_order(
    agent_factory: Any, one_write: bool
) -> None:
    """A client that sends its next commands before a repeat's answer (in writes of their
    own: those that come while C waits for the answer are buffered by Python and run once it
    went out; or in one write with the repeat: all in Python) gets every answer, in order."""
    agent = agent_factory(native=True)
    sql = "SELECT id, name FROM customers WHERE id = {}"
    with agent.connect("alice") as conn, conn.cursor() as cursor:
        for id_ in (1, 2):  # decided, then remembered: the next ones are repeats
            cursor.execute(sql.format(id_))
            cursor.fetchall()
        packets = [
            len(b"\x03" + sql.format(i).encode()).to_bytes(3, "little")
            + b"\x00\x03"
            + sql.format(i).encode()
            for i in (3, 4, 5)
        ]
        if one_write:
            conn._sock.sendall(b"".join(packets))
        else:
            for packet in packets:  # the first may run in C, the others come while it waits
                conn._sock.sendall(packet)
        answers = []
        for _ in packets:
            conn._next_seq_id = 1  # each answer numbered from 1 (pymysql checks)
            conn._read_query_result()
            answers.append(conn._result.rows[0][0])
        assert answers == [3, 4, 5]
        cursor.execute(sql.format(6))  # the session goes on
        assert cursor.fetchall()[0][0] == 6
        path = session_of(agent).native_path
    # In C: the last one; with several writes also each of 3, 4, 5 that the agent read on
    # its own while the session was idle (how reads interleave with answers is the
    # machine's: any number of them), none that came in one chunk with another.
    assert path.stats["client"] in ((1,) if one_write else (1, 2, 3, 4)), path.stats
