"""A grant limited to max_runs is counted by the control plane, so the limit holds across
agents and agent restarts, and an unreachable control plane refuses the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pglast
import psycopg
import pytest

STATEMENT = "SELECT email FROM public.customers WHERE id = 1"


@pytest.fixture
def limited_grant(control_plane: Any, make_bundle: Any) -> dict[str, Any]:
    grant = {
        "id": 11,
        "identity": "carol",
        "level": "read_unmasked",
        "scope": {"tables": ["public.customers"], "columns": [], "tags": []},
        "expires_at": "2099-01-01T00:00:00Z",
        "statement_fingerprint": pglast.parser.fingerprint(STATEMENT),
        "max_runs": 2,
    }
    bundle = make_bundle("v-runs")
    bundle["grants"] = [grant]
    control_plane.set_bundle(bundle)
    return grant


def _run(agent: Any) -> Any:
    with agent.connect("carol") as conn:
        return conn.execute(STATEMENT).fetchone()


def test_runs_are_counted_across_agents(
    agent_factory: Any, control_plane: Any, limited_grant: dict[str, Any], tmp_path: Path
) -> None:
    first = agent_factory(state_dir=tmp_path / "first")
    second = agent_factory(state_dir=tmp_path / "second")
    direct = _run(first)
    assert direct is not None and "@" in direct[0] and "*" not in direct[0]  # unmasked
    assert _run(second) == direct
    assert control_plane.grant_runs == {11: 2}
    # The first agent counted only one run itself; the control plane says none are left,
    # so the statement needs a new approval and is not run.
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="approval"):
        _run(first)
    assert control_plane.grant_runs == {11: 2}


def test_a_restarted_agent_does_not_get_the_runs_back(
    agent_factory: Any, control_plane: Any, limited_grant: dict[str, Any], tmp_path: Path
) -> None:
    for _ in range(2):
        agent = agent_factory(state_dir=tmp_path / "state")
        _run(agent)
        agent.stop()
    again = agent_factory(state_dir=tmp_path / "state")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="approval"):
        _run(again)


def test_an_unreachable_control_plane_refuses_a_counted_run(
    agent_factory: Any, control_plane: Any, limited_grant: dict[str, Any]
) -> None:
    agent = agent_factory()
    with agent.connect("carol") as conn:  # logged in while the control plane is up
        control_plane.down = True
        try:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="unreachable"):
                conn.execute(STATEMENT)
        finally:
            control_plane.down = False
        assert control_plane.grant_runs == {}
        assert conn.execute(STATEMENT).fetchone() is not None
    assert control_plane.grant_runs == {11: 1}


def test_a_grant_refused_elsewhere_does_not_cost_this_agent_the_other_grants_runs(
    agent_factory: Any, control_plane: Any, make_bundle: Any
) -> None:
    def grant(grant_id: int, table: str) -> dict[str, Any]:
        return {
            "id": grant_id,
            "identity": "carol",
            "level": "read_unmasked",
            "scope": {"tables": [table], "columns": [], "tags": []},
            "expires_at": "2099-01-01T00:00:00Z",
            "statement_fingerprint": None,
            "max_runs": 2,
        }

    bundle = make_bundle("v-two-grants")
    bundle["grants"] = [grant(11, "public.customers"), grant(12, "archive.customers")]
    control_plane.set_bundle(bundle)
    control_plane.grant_runs[12] = 2  # used up through another agent
    agent = agent_factory()
    with agent.connect("carol") as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="approval"):
            conn.execute("SELECT p.email, a.email FROM public.customers p, archive.customers a")
        # Grant 11 was counted once for that statement, never twice; its second run is
        # still there for the next statement.
        assert control_plane.grant_runs == {11: 1, 12: 2}
        assert conn.execute(STATEMENT).fetchone() is not None
    assert control_plane.grant_runs == {11: 2, 12: 2}
