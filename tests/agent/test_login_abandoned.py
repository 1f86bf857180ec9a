"""A SCRAM login the control plane audited as accepted, whose session then never starts
(the upstream refuses, the client gives up and the login times out), is followed up as
abandoned (``POST agent/logins/abandoned``, audited as ``auth.agent_login_abandoned``): the
trail keeps the proof of the token and says no session came of it.  The follow-up names the
login by the ``login_sequence`` the control plane answered it with, so two logins of one
token are each followed up as themselves; a token sent as a cleartext
password is followed up the same way.  Real libpq clients (psycopg) through the agent."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from agent import logins as logins_module
from agent.controlplane import ControlPlaneClient, ControlPlaneUnavailable
from agent.postgres import session as session_module
from agent.upstream import UpstreamConfig
from agent.workers import orphan_follow_ups
from tests.agent.conftest import PG_HOST, wait_for


@pytest.fixture
def silent_upstream() -> Iterator[int]:
    """A port that accepts connections and never answers (an upstream that hangs)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_login_that_becomes_a_session_is_not_followed_up(agent: Any, control_plane: Any) -> None:
    with agent.connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert [login["token_id"] for login in control_plane.logins] == [1]
    assert control_plane.abandoned_logins == []


def test_a_login_whose_upstream_refuses_is_followed_up_as_abandoned(
    agent_factory: Any, control_plane: Any, pg_database: str
) -> None:
    upstream = UpstreamConfig(PG_HOST, _closed_port(), "postgres", "", pg_database)
    agent = agent_factory(upstream=upstream)
    with pytest.raises(psycopg.OperationalError, match="could not connect to the upstream"):
        psycopg.connect(agent.dsn("alice", application_name="report-job"))
    (login,) = control_plane.logins
    assert login["token_id"] == 1 and login["mechanism"] == "SCRAM-SHA-256"
    wait_for(lambda: len(control_plane.abandoned_logins) == 1)
    (abandoned,) = control_plane.abandoned_logins
    assert abandoned["reason"].startswith("warden agent could not connect to the upstream")
    for field in ("identity", "token_id", "mechanism", "source_address", "application"):
        assert abandoned[field] == login[field], field
    assert abandoned["application"] == "report-job"
    assert list(control_plane.accepted_logins) == [abandoned["login_sequence"]]


def test_a_password_login_whose_upstream_refuses_is_followed_up_as_abandoned(
    agent_factory: Any, control_plane: Any, pg_database: str
) -> None:
    upstream = UpstreamConfig(PG_HOST, _closed_port(), "postgres", "", pg_database)
    agent = agent_factory(upstream=upstream, client_auth="password", allow_insecure_listen=True)
    with pytest.raises(psycopg.OperationalError, match="could not connect to the upstream"):
        psycopg.connect(agent.dsn("alice", application_name="report-job"))
    assert control_plane.logins == []  # checked as a password (agent/authenticate)
    ((sequence, login),) = control_plane.accepted_logins.items()
    assert (login["source_address"], login["application"]) == ("127.0.0.1", "report-job")
    wait_for(lambda: len(control_plane.abandoned_logins) == 1)
    (abandoned,) = control_plane.abandoned_logins
    assert abandoned["login_sequence"] == sequence
    assert (abandoned["mechanism"], abandoned["token_id"]) == ("password", 1)
    assert (abandoned["source_address"], abandoned["application"]) == ("127.0.0.1", "report-job")
    assert abandoned["reason"].startswith("warden agent could not connect to the upstream")
    assert control_plane.refused_follow_ups == []


def test_a_login_the_client_gave_up_on_is_followed_up_when_it_times_out(
    agent_factory: Any,
    control_plane: Any,
    pg_database: str,
    silent_upstream: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(session_module, "AUTHENTICATION_TIMEOUT", 2.0)
    agent = agent_factory(
        upstream=UpstreamConfig(PG_HOST, silent_upstream, "postgres", "", pg_database)
    )
    with pytest.raises(psycopg.OperationalError):  # the proof went through, then nothing
        psycopg.connect(agent.dsn("alice", connect_timeout=1))
    assert [login["token_id"] for login in control_plane.logins] == [1]
    wait_for(lambda: len(control_plane.abandoned_logins) == 1, timeout=10)
    assert control_plane.abandoned_logins[0]["reason"] == "the login did not finish within 2 s"


@pytest.mark.parametrize("client_auth", ["scram", "password"])
def test_two_logins_of_one_token_are_each_followed_up_as_themselves(
    agent_factory: Any, control_plane: Any, pg_database: str, client_auth: str
) -> None:
    """Both logins reach the control plane (the cached answer is forgotten between them, as
    a second worker would not have it) and the upstream refuses both; each follow-up names
    its own login's sequence, and the control plane (which takes a sequence once) takes
    both."""
    upstream = UpstreamConfig(PG_HOST, _closed_port(), "postgres", "", pg_database)
    agent = agent_factory(upstream=upstream, client_auth=client_auth, allow_insecure_listen=True)
    for logged_in in (1, 2):
        with pytest.raises(psycopg.OperationalError, match="could not connect to the upstream"):
            psycopg.connect(agent.dsn("alice"))
        wait_for(lambda logged_in=logged_in: len(control_plane.abandoned_logins) == logged_in)
        agent.agent.forget_logins()
    followed = [abandoned["login_sequence"] for abandoned in control_plane.abandoned_logins]
    assert followed == list(control_plane.accepted_logins) and len(set(followed)) == 2
    assert control_plane.refused_follow_ups == []


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logins_module, "RETRY_SECONDS", 0.2)


def _refused_login(agent: Any) -> None:
    with pytest.raises(psycopg.OperationalError, match="could not connect to the upstream"):
        psycopg.connect(agent.dsn("alice"))


def _followed_up_once(control_plane: Any, login: dict[str, Any]) -> None:
    """``login`` (refused by its upstream) is followed up, once, as itself."""
    wait_for(lambda: len(control_plane.abandoned_logins) == 1)
    (abandoned,) = control_plane.abandoned_logins
    assert list(control_plane.accepted_logins) == [abandoned["login_sequence"]]
    for field in ("identity", "token_id", "mechanism", "source_address", "application"):
        assert abandoned[field] == login[field], field
    assert abandoned["reason"].startswith("warden agent could not connect to the upstream")


def test_a_follow_up_the_control_plane_could_not_take_is_sent_again_once_it_can(
    agent_factory: Any, control_plane: Any, pg_database: str, quick_retries: None
) -> None:
    upstream = UpstreamConfig(PG_HOST, _closed_port(), "postgres", "", pg_database)
    agent = agent_factory(upstream=upstream)
    control_plane.follow_ups_down = True  # the outage starts after the login's answer
    _refused_login(agent)
    (login,) = control_plane.logins
    wait_for(lambda: len(agent.agent.logins.unreported) == 1)
    time.sleep(0.6)  # retries meet the outage: still waiting, nothing reported
    assert control_plane.abandoned_logins == [] and len(agent.agent.logins.unreported) == 1
    control_plane.follow_ups_down = False
    _followed_up_once(control_plane, login)
    time.sleep(0.6)
    assert len(control_plane.abandoned_logins) == 1 and control_plane.refused_follow_ups == []
    assert not agent.agent.logins.unreported


def test_a_follow_up_the_control_plane_refuses_is_not_sent_again(
    agent_factory: Any, control_plane: Any, pg_database: str, quick_retries: None
) -> None:
    upstream = UpstreamConfig(PG_HOST, _closed_port(), "postgres", "", pg_database)
    agent = agent_factory(upstream=upstream)
    control_plane.accepted_logins.clear()  # the control plane no longer knows the login...
    original = control_plane.login_record

    def forgetting(body: dict[str, Any]) -> Any:
        answer = original(body)
        control_plane.accepted_logins.clear()  # ...as once its 10 minutes have passed
        return answer

    control_plane.login_record = forgetting
    _refused_login(agent)
    wait_for(lambda: len(control_plane.refused_follow_ups) == 1)
    time.sleep(0.6)
    assert len(control_plane.refused_follow_ups) == 1 and control_plane.abandoned_logins == []
    assert not agent.agent.logins.unreported


def test_a_follow_up_older_than_the_control_planes_window_is_dropped_and_logged(
    agent_factory: Any,
    control_plane: Any,
    pg_database: str,
    quick_retries: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    upstream = UpstreamConfig(PG_HOST, _closed_port(), "postgres", "", pg_database)
    agent = agent_factory(upstream=upstream)
    control_plane.follow_ups_down = True
    _refused_login(agent)
    wait_for(lambda: len(agent.agent.logins.unreported) == 1)
    monkeypatch.setattr(logins_module, "FOLLOW_UP_SECONDS", 0.0)
    with caplog.at_level(logging.WARNING, logger="agent.logins"):
        wait_for(lambda: not agent.agent.logins.unreported)
        control_plane.follow_ups_down = False
        time.sleep(0.6)
    assert control_plane.abandoned_logins == [] and control_plane.refused_follow_ups == []
    assert "not reported: the control plane was unreachable for too long" in caplog.text


def test_follow_ups_still_waiting_when_the_agent_stops_are_sent_from_its_next_start(
    agent_factory: Any,
    control_plane: Any,
    pg_database: str,
    quick_retries: None,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    upstream = UpstreamConfig(PG_HOST, _closed_port(), "postgres", "", pg_database)
    state = tmp_path / "kept"
    first = agent_factory(upstream=upstream, state_dir=state)
    control_plane.follow_ups_down = True
    _refused_login(first)
    (login,) = control_plane.logins
    wait_for(lambda: len(first.agent.logins.unreported) == 1)
    with caplog.at_level(logging.WARNING, logger="agent.logins"):
        first.stop()  # tried once more (the control plane is still down), then kept
    assert "waits in" in caplog.text and "for the next start" in caplog.text
    assert control_plane.abandoned_logins == []
    assert len(json.loads((state / "login-follow-ups.json").read_text())) == 1

    control_plane.follow_ups_down = False
    agent_factory(upstream=upstream, state_dir=state)
    _followed_up_once(control_plane, login)
    wait_for(lambda: not (state / "login-follow-ups.json").exists())
    time.sleep(0.6)  # retries go on: nothing is sent a second time
    assert len(control_plane.abandoned_logins) == 1 and control_plane.refused_follow_ups == []


def test_a_killed_agents_waiting_follow_up_is_sent_after_its_restart(
    agent_process_factory: Any, control_plane: Any, tmp_path: Path
) -> None:
    state = tmp_path / "killed"
    closed = ("--upstream-port", str(_closed_port()))
    process = agent_process_factory(*closed, state_dir=state)
    control_plane.follow_ups_down = True
    _refused_login(process)
    (login,) = control_plane.logins
    waiting = state / "login-follow-ups.json"
    wait_for(lambda: waiting.exists())
    process.process.send_signal(signal.SIGKILL)
    process.process.wait(timeout=10)
    assert control_plane.abandoned_logins == []  # it only ever waited

    control_plane.follow_ups_down = False
    restarted = agent_process_factory(*closed, state_dir=state)
    try:
        wait_for(lambda: len(control_plane.abandoned_logins) == 1, timeout=30)
    except AssertionError as exc:
        raise AssertionError(f"the restarted agent printed:\n{restarted.output()}") from exc
    _followed_up_once(control_plane, login)
    wait_for(lambda: not waiting.exists())
    assert control_plane.refused_follow_ups == []


def _saved(login_sequence: int, age: float, now: float | None = None) -> dict[str, Any]:
    return {
        "identity": "alice",
        "token_id": 1,
        "login_sequence": login_sequence,
        "mechanism": "SCRAM-SHA-256",
        "source_address": "127.0.0.1",
        "application": "psql",
        "accepted_at": 12.0,  # another process's monotonic clock: not read
        "accepted_wall": (time.time() if now is None else now) - age,
        "reason": "the client went away",
    }


def test_restored_follow_ups_past_the_window_are_lost_and_unreadable_files_set_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    own = tmp_path / "login-follow-ups.json"
    own.write_text(json.dumps([_saved(7, 60.0), _saved(8, logins_module.FOLLOW_UP_SECONDS + 5)]))
    former = tmp_path / "login-follow-ups.worker-3.json"
    former.write_text(json.dumps([_saved(9, 1.0)]))
    broken = tmp_path / "login-follow-ups.worker-4.json"
    broken.write_text('[{"identity": "alice"')  # cut short
    logins = _logins(own, ControlPlaneClient("http://127.0.0.1:9", "t"))
    assert orphan_follow_ups(tmp_path, 2) == [former, broken]
    with caplog.at_level(logging.WARNING, logger="agent.logins"):
        assert logins.restore_waiting(orphan_follow_ups(tmp_path, 2)) == 2
    assert [login.login_sequence for login, _ in logins.unreported] == [7, 9]
    age = time.monotonic() - logins.unreported[0][0].accepted_at
    assert 59 < age < 70  # its age counts from the login, across the restart
    assert "login #8 of alice" in caplog.text and "window passed" in caplog.text
    assert not former.exists() and not broken.exists()
    assert len(list(tmp_path.glob("login-follow-ups.worker-4.json.*.bad"))) == 1
    assert [item["login_sequence"] for item in json.loads(own.read_text())] == [7, 9]
    assert own.stat().st_mode & 0o777 == 0o600


def _logins(waiting_path: Path, plane: Any) -> logins_module.Logins:
    return logins_module.Logins(plane, "shop", stale_seconds=60, waiting_path=waiting_path)


def test_restoring_more_than_the_queue_holds_keeps_the_newest_and_logs_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    own = tmp_path / "login-follow-ups.json"
    count = logins_module._MAX_UNREPORTED + 3
    # Written newest first: the queue keeps logins in the order they were accepted.
    now = time.time()  # one clock reading: the order is the ages', however slow this runs
    own.write_text(json.dumps([_saved(n, 100.0 - n * 0.01, now) for n in reversed(range(count))]))
    logins = _logins(own, ControlPlaneClient("http://127.0.0.1:9", "t"))
    with caplog.at_level(logging.WARNING, logger="agent.logins"):
        assert logins.restore_waiting([]) == logins_module._MAX_UNREPORTED
    assert [login.login_sequence for login, _ in logins.unreported] == list(range(3, count))
    for lost in range(3):
        assert f"login #{lost} of alice" in caplog.text
    assert caplog.text.count("too many follow-ups waiting") == 3


class _Plane:
    """A control plane whose follow-up endpoint is down, except for the logins in
    ``through``, which it takes once ``gate`` opens."""

    def __init__(self) -> None:
        self.through: set[int] = set()
        self.gate = asyncio.Event()
        self.taken: list[int] = []

    async def login_abandoned(self, _datasource: str, _identity: str, _token: int,
                              sequence: int, **_fields: Any) -> None:  # fmt: skip
        if sequence not in self.through:
            raise ControlPlaneUnavailable("down")
        await self.gate.wait()
        self.taken.append(sequence)


def _reported_login(sequence: int) -> logins_module.ReportedLogin:
    return logins_module.ReportedLogin(
        "alice", 1, sequence, "SCRAM-SHA-256", "127.0.0.1", "psql", time.monotonic(), time.time()
    )


def test_a_follow_up_queued_while_another_is_on_its_way_is_what_the_file_keeps(
    tmp_path: Path,
) -> None:
    """The file follows every change of the queue, not its length: one follow-up taken
    while another joined leaves the count as it was."""
    waiting = tmp_path / "login-follow-ups.json"

    def saved() -> list[int]:
        return [item["login_sequence"] for item in json.loads(waiting.read_text())]

    async def scenario() -> None:
        plane = _Plane()
        logins = _logins(waiting, plane)
        await logins.abandoned(_reported_login(1), "the client went away")
        assert saved() == [1]
        plane.through.add(1)  # the control plane is back for it: on its way
        retry = asyncio.create_task(logins.retry_unreported())
        await asyncio.sleep(0.05)
        await logins.abandoned(_reported_login(2), "the upstream refused")  # still down
        assert saved() == [1, 2]
        plane.gate.set()
        await retry
        assert plane.taken == [1]
        assert saved() == [2]

    asyncio.run(scenario())
