"""A COM_QUERY repeating a text the session already ran under a cached decision (the same
bytes, or the same integer-constant template) runs without being decided again
(agent/mysql/commands.py ``_repeat_now``).  Only while that decision holds: another text
of the same shape, a new bundle or another database are decided again."""

from __future__ import annotations

from typing import Any

import pymysql
import pytest

from tests.agent_mysql.conftest import deny_column, mysql_bundle

EMAIL = "SELECT id, email FROM customers WHERE id = {}"


@pytest.fixture(params=[True, False], ids=["native", "python"])
def native(request: Any) -> bool:
    """Each test on the native path (a repeat checked and run in C: agent/mysql/native.py)
    and on the pure-Python one."""
    return bool(request.param)


@pytest.fixture
def agent(agent_factory: Any, native: bool) -> Any:
    return agent_factory(native=native)


def _email(cursor: Any, id_: int) -> Any:
    cursor.execute(EMAIL.format(id_))
    return cursor.fetchone()[1]


def test_a_text_differing_in_a_name_s_digits_is_decided_again(
    agent_factory: Any, control_plane: Any, mysql_database: str, root: Any, native: bool
) -> None:
    """``notes1`` and ``notes2`` read as the same template key (digits as 0): only the
    template's fixed bytes tell them apart, and ``notes2.body`` is blocked."""
    one, two = (f"{'c' if native else 'py'}notes{n}" for n in (1, 2))  # a pair per path
    with root.cursor() as direct:
        for table in (one, two):
            direct.execute(f"CREATE TABLE `{mysql_database}`.{table} (id int, body text)")
            direct.execute(f"INSERT INTO `{mysql_database}`.{table} VALUES (1, 'secret {table}')")
        direct.execute(f"SELECT body FROM `{mysql_database}`.{two} WHERE id = 1")
        assert direct.fetchone()[0] == f"secret {two}"  # the control: readable directly
    bundle = mysql_bundle(mysql_database)
    column = {"schema": mysql_database, "table": two, "column": "body"}
    deny_column(bundle, column, 98, "nobody reads notes2")
    control_plane.set_bundle(bundle)
    agent = agent_factory(native=native)
    with agent.connect("alice") as conn, conn.cursor() as cursor:
        for _ in range(3):  # decided, cached, then a repeat
            cursor.execute(f"SELECT id, body FROM {one} WHERE id = 1")
            assert cursor.fetchall() == ((1, f"secret {one}"),)
        with pytest.raises(pymysql.err.MySQLError) as refused:
            cursor.execute(f"SELECT id, body FROM {two} WHERE id = 1")
        assert refused.value.args[0] == 1142 and f"{two}.body" in refused.value.args[1]
        cursor.execute(f"SELECT id, body FROM {one} WHERE id = 1")  # legitimate work goes on
        assert cursor.fetchall() == ((1, f"secret {one}"),)


def test_a_repeat_follows_a_new_bundle_in_the_same_session(
    agent: Any, control_plane: Any, mysql_database: str, wait: Any
) -> None:
    with agent.connect("alice") as conn, conn.cursor() as cursor:
        for id_ in (1, 2, 3):
            assert _email(cursor, id_) == "****@example.com"
        bundle = mysql_bundle(mysql_database, version="v2")
        for rule in bundle["rules"]:
            if rule["name"] == "analysts see email domains":
                rule["mask_method"] = "null"
        control_plane.set_bundle(bundle)
        # Well within the decision's 30 s: the new bundle, not its expiry, decides again.
        wait(lambda: _email(cursor, 1) is None, timeout=8)
        assert _email(cursor, 2) is None


def test_a_repeat_in_another_database_is_decided_for_it(
    agent_factory: Any, control_plane: Any, mysql_database: str, native: bool
) -> None:
    bundle = mysql_bundle(mysql_database)
    archive = f"{mysql_database}_archive"
    bundle["columns"] = [c for c in bundle["columns"] if c["schema"] != archive]
    control_plane.set_bundle(bundle)  # the archive's e-mails are not tagged: readable
    agent = agent_factory(native=native)
    with agent.connect("alice") as conn, conn.cursor() as cursor:
        for id_ in (1, 2, 3):
            assert _email(cursor, id_) == "****@example.com"
        conn.select_db(archive)  # COM_INIT_DB
        assert _email(cursor, 2).endswith("@example.com") and "*" not in _email(cursor, 2)
        cursor.execute(f"USE `{mysql_database}`")  # a COM_QUERY
        assert _email(cursor, 3) == "****@example.com"
