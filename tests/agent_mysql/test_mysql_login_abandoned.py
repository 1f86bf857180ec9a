"""The MySQL agent follows up a mysql_native_password login the control plane audited as
accepted whose session then never starts, as the PostgreSQL agent does a SCRAM one
(tests/agent/test_login_abandoned.py)."""

from __future__ import annotations

from typing import Any

import pymysql
import pytest

from tests.agent.conftest import wait_for


def test_a_login_whose_upstream_refuses_is_followed_up_as_abandoned(
    agent: Any, control_plane: Any
) -> None:
    with pytest.raises(pymysql.err.OperationalError, match="cannot log in to the database"):
        agent.connect(database="warden_no_such_database")
    (login,) = control_plane.logins
    assert login["mechanism"] == "mysql_native_password" and login["token_id"] == 1
    wait_for(lambda: len(control_plane.abandoned_logins) == 1)
    (abandoned,) = control_plane.abandoned_logins
    assert abandoned["reason"].startswith("Warden: cannot log in to the database")
    for field in ("identity", "token_id", "mechanism", "source_address"):
        assert abandoned[field] == login[field], field
    with agent.connect() as conn, conn.cursor() as cursor:  # a session: no follow-up
        cursor.execute("SELECT 1")
    assert len(control_plane.abandoned_logins) == 1
