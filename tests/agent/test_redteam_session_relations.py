"""Red-team probes of relations a client creates, renames or moves itself: the agent's
catalog connection cannot see them inside the client's open transaction (nor its temporary
ones before they are committed), and one named like a classified table shadows it.  The
session remembers what it created and checks reads through it as reads of what it reads;
a relation the agent cannot resolve is refused to an identity with restricted columns
(agent/relations.py).

Every probe first runs directly as the upstream role (``admin``: a connection of the test's
own, whose temporary objects end with it), where it must get the secret out (so it really
reads it); through alice it must not.
"""

from __future__ import annotations

import contextlib
import secrets
from typing import Any

import psycopg
import pytest

from tests.agent.conftest import bundle_document
from tests.agent.wire import (
    CARD,
    EMAIL,
    NOTE,
    Attack,
    assert_attack_controlled,
    assert_legitimate_work_runs,
    assert_refused,
    named_attack,
    rolled_back,
    run,
)


@pytest.fixture
def agent(agent_on_both_paths: Any) -> Any:
    """Every test here runs on the native data path and on the pure-Python one."""
    return agent_on_both_paths


def _creates_then_reads(
    *statements: str, read: str, transaction: bool = True, prepare: bool = False
) -> Attack:
    """Runs ``statements`` (in a transaction rolled back, unless ``transaction`` is false),
    then ``read``: its rows."""

    def attack(conn: psycopg.Connection[Any]) -> Any:
        with rolled_back(conn) if transaction else contextlib.nullcontext(conn):
            for statement in statements:
                conn.execute(statement)
            return conn.execute(read, prepare=prepare).fetchall()

    mode = f"{'' if transaction else 'autocommit: '}{'extended: ' if prepare else ''}"
    return named_attack(attack, mode + " ; ".join((*statements, read)))


RENAMING_VIEW = "CREATE TEMP VIEW customers AS SELECT id, email AS name FROM public.customers"

# (creating statements, the read): each shadows a name, or hides a masked value under
# another column's name, in a relation only this session sees.
SHADOWS = [
    pytest.param(
        (RENAMING_VIEW,), "SELECT upper(name) FROM customers WHERE id = 1", id="temp_view_rename"
    ),
    pytest.param(
        (
            "CREATE SCHEMA rt_sr1",
            "SET LOCAL search_path = rt_sr1, public",
            "CREATE VIEW customers AS SELECT id, email AS name FROM public.customers",
        ),
        "SELECT upper(name) FROM customers WHERE id = 1",
        id="new_schema_first_on_search_path",
    ),
    pytest.param(
        (
            "CREATE SCHEMA rt_sr2",
            "SELECT set_config('search_path', 'rt_sr2, public', true)",
            "CREATE VIEW rt_sr2.customers AS SELECT id, email AS name FROM public.customers",
        ),
        "SELECT upper(name) FROM customers WHERE id = 1",
        id="search_path_set_by_set_config",
    ),
    pytest.param(
        (
            "CREATE TEMP VIEW rt_a AS SELECT id, card AS c FROM public.customers",
            "CREATE TEMP VIEW rt_b AS SELECT id, c AS note FROM rt_a",
        ),
        "SELECT lower(note) FROM rt_b WHERE id = 1",
        id="temp_view_over_temp_view",
    ),
    pytest.param(
        (
            "CREATE TEMP TABLE rt_base (id int)",
            "CREATE TEMP VIEW rt_j AS SELECT b.id, c.card AS score "
            "FROM rt_base b RIGHT JOIN public.customers c ON true",
        ),
        "SELECT score || '' FROM rt_j",
        id="temp_view_joining_a_temp_table",
    ),
]


@pytest.mark.parametrize("prepare", [False, True], ids=["simple", "extended"])
@pytest.mark.parametrize(("statements", "read"), SHADOWS)
def test_a_relation_created_in_the_open_transaction_is_read_as_what_it_reads(
    agent: Any, admin: Any, statements: tuple[str, ...], read: str, prepare: bool
) -> None:
    attack = _creates_then_reads(*statements, read=read, prepare=prepare)
    assert_attack_controlled(admin, agent, attack, secret=(EMAIL, CARD))


def _then_discarding_temp(attack: Attack) -> Attack:
    """``attack``, then its connection's temporary objects dropped: the control's committed
    temp view must not be what the agent's catalog lookups find when alice runs it."""

    def discarding(conn: psycopg.Connection[Any]) -> Any:
        try:
            return attack(conn)
        finally:
            with contextlib.suppress(psycopg.Error):
                conn.execute("ROLLBACK" if conn.info.transaction_status else "SELECT 1")
                conn.execute("DISCARD TEMP")

    return named_attack(discarding, getattr(attack, "__name__", "attack"))


@pytest.mark.parametrize("prepare", [False, True], ids=["simple", "extended"])
def test_a_committed_temp_view_renaming_a_masked_column(
    agent: Any, admin: Any, prepare: bool
) -> None:
    read = "SELECT upper(name) FROM customers WHERE id = 1"
    attack = _creates_then_reads(RENAMING_VIEW, read=read, transaction=False, prepare=prepare)
    assert_attack_controlled(admin, agent, _then_discarding_temp(attack), secret=EMAIL)


def test_a_read_decided_in_the_transaction_holds_after_commit(agent: Any, admin: Any) -> None:
    """The decision made while the view was invisible is cached; after COMMIT the same text
    comes from the cache (and the native path's tickets)."""
    read = "SELECT upper(name) FROM customers WHERE id = 1"

    def attack(conn: psycopg.Connection[Any]) -> Any:
        conn.execute("BEGIN")
        conn.execute(RENAMING_VIEW)
        rows = conn.execute(read).fetchall()
        conn.execute("COMMIT")
        return rows + conn.execute(read).fetchall() + conn.execute(read).fetchall()

    attack = _then_discarding_temp(named_attack(attack, read))
    assert_attack_controlled(admin, agent, attack, secret=EMAIL)


def test_a_decision_cached_for_another_session_is_not_used_by_one_that_shadows_the_name(
    agent: Any, admin: Any
) -> None:
    """Another session's decision for the same text (cached by normalized text) read the
    name as the classified table; this session's name is its own view."""
    read = "SELECT upper(name) FROM customers WHERE id = 1"
    with agent.connect("alice") as other:

        def attack(conn: psycopg.Connection[Any]) -> Any:
            with rolled_back(conn):
                conn.execute(RENAMING_VIEW)  # DDL: every cached decision is dropped
                assert run(other, read).error is None  # decided and cached for the other
                return conn.execute(read).fetchall() + conn.execute(read).fetchall()

        assert_attack_controlled(admin, agent, named_attack(attack, read), secret=EMAIL)


def test_an_sql_prepared_statement_made_before_the_shadow_is_decided_again(
    agent: Any, admin: Any
) -> None:
    """PostgreSQL parses a prepared statement again when the search path's objects change:
    after the temp view exists, EXECUTE reads it."""

    def attack(conn: psycopg.Connection[Any]) -> Any:
        with rolled_back(conn):
            conn.execute("PREPARE rt_early AS SELECT upper(name) FROM customers WHERE id = 1")
            conn.execute(RENAMING_VIEW)
            return conn.execute("EXECUTE rt_early").fetchall()

    assert_attack_controlled(admin, agent, named_attack(attack, "rt_early"), secret=EMAIL)


# (creating statements, the read, the refusal's reason): copies and code are refused when
# made, so nothing later reads them.
STORED_COPIES = [
    pytest.param(
        ("CREATE TEMP TABLE rt_copy AS SELECT id, email AS name FROM public.customers",),
        "SELECT name FROM rt_copy WHERE id = 1",
        "cannot be copied into stored data",
        id="create_table_as",
    ),
    pytest.param(
        ("SELECT id, email AS name INTO TEMP rt_into FROM public.customers",),
        "SELECT name FROM rt_into WHERE id = 1",
        "cannot be copied into stored data",
        id="select_into",
    ),
    pytest.param(
        ("CREATE MATERIALIZED VIEW rt_mv AS SELECT id, email AS name FROM public.customers",),
        "SELECT name FROM rt_mv WHERE id = 1",
        "cannot be copied into stored data",
        id="materialized_view",
    ),
    pytest.param(
        (
            "CREATE TEMP TABLE rt_rt (id int, name text)",
            'CREATE RULE "_RETURN" AS ON SELECT TO rt_rt DO INSTEAD '
            "SELECT id, email AS name FROM public.customers",
        ),
        "SELECT upper(name) FROM rt_rt WHERE id = 1",
        "cannot be copied into stored data",
        id="rule_turning_a_temp_table_into_a_view",
    ),
    pytest.param(
        (
            "CREATE FUNCTION pg_temp.rt_f() RETURNS SETOF text LANGUAGE sql "
            "AS $$SELECT email FROM public.customers$$",
        ),
        "SELECT pg_temp.rt_f()",
        "code or SQL the agent cannot inspect",
        id="function",
    ),
]


@pytest.mark.parametrize(("statements", "read", "reason"), STORED_COPIES)
def test_a_masked_column_copied_or_wrapped_in_session_is_refused_when_made(
    agent: Any, admin: Any, statements: tuple[str, ...], read: str, reason: str
) -> None:
    attack = _creates_then_reads(*statements, read=read)
    assert_attack_controlled(admin, agent, attack, secret=EMAIL, reason=reason, refused=True)


def test_legitimate_work_with_relations_of_the_open_transaction_runs(agent: Any) -> None:
    """A temp table, a table made AS SELECT of plain columns and a view over them: all
    usable inside the transaction that made them, and masked where they read masked data.
    (Over the simple protocol every column whose origin the catalog connection cannot see
    yet is redacted, so the plain values are read over the extended one.)"""
    with agent.connect("alice") as conn, rolled_back(conn):
        conn.execute("CREATE TEMP TABLE rt_work (id int PRIMARY KEY, label text)")
        conn.execute("INSERT INTO rt_work SELECT id, name FROM public.customers WHERE id <= 3")
        conn.execute("CREATE TEMP TABLE rt_names AS SELECT id, name FROM public.customers")
        conn.execute(
            "CREATE TEMP VIEW rt_join AS SELECT w.id, w.label, n.name, c.email "
            "FROM rt_work w JOIN rt_names n USING (id) JOIN public.customers c USING (id)"
        )
        read = "SELECT id, label, name FROM rt_join ORDER BY id"
        rows = conn.execute(read, prepare=True).fetchall()
        assert [r[0] for r in rows] == [1, 2, 3]
        assert all(r[1] == r[2] and " " in r[1] for r in rows)  # names, not redacted
        assert len(conn.execute(read).fetchall()) == 3
        for prepare in (False, True):
            emails = conn.execute("SELECT email FROM rt_join", prepare=prepare).fetchall()
            assert len(emails) == 3 and not any(EMAIL.search(str(e[0])) for e in emails)
        counted = conn.execute("SELECT count(*) FROM rt_work WHERE label LIKE '%a%'").fetchone()
        assert counted is not None and counted[0] >= 1
        assert_legitimate_work_runs(conn)


# ----------------------------------------------------------------------------------------
# Renames and moves (a bundle without the approval guardrail on ALTER)
# ----------------------------------------------------------------------------------------


@pytest.fixture(params=[True, False], ids=["native", "python"])
def lax_agent(request: Any, agent_factory: Any, control_plane: Any) -> Any:
    """An agent whose bundle lets everyone ALTER and send several statements at once: only
    the agent's resolution of names stands between alice and the data."""
    bundle = bundle_document("v-lax")
    bundle["guardrails"] = []
    control_plane.set_bundle(bundle)
    return agent_factory(native=request.param)


RENAMES = [
    pytest.param(
        (
            "CREATE TEMP VIEW rt_v1 AS SELECT id, email AS name FROM public.customers",
            "ALTER VIEW rt_v1 RENAME TO rt_v2",
        ),
        "SELECT upper(name) FROM rt_v2 WHERE id = 1",
        "",
        id="view_renamed",
    ),
    pytest.param(
        (
            "CREATE TEMP VIEW rt_v3 AS SELECT id, name, email FROM public.customers",
            "ALTER VIEW rt_v3 RENAME COLUMN name TO rt_x",
            "ALTER VIEW rt_v3 RENAME COLUMN email TO name",
        ),
        "SELECT upper(name) FROM rt_v3 WHERE id = 1",
        "",
        id="view_columns_swapped",
    ),
    pytest.param(
        (
            "CREATE SCHEMA rt_ms1",
            "CREATE SCHEMA rt_ms2",
            "CREATE VIEW rt_ms1.customers AS SELECT id, email AS name FROM public.customers",
            "ALTER VIEW rt_ms1.customers SET SCHEMA rt_ms2",
        ),
        "SELECT upper(name) FROM rt_ms2.customers WHERE id = 1",
        "",
        id="view_moved_to_another_schema",
    ),
    pytest.param(
        ("CREATE TEMP VIEW rt_one AS SELECT id, email AS name FROM public.customers; SELECT 1",),
        "SELECT upper(name) FROM rt_one WHERE id = 1",
        "",
        id="created_in_a_multi_statement_query",
    ),
    # The policy names classified columns by schema, table and column: renamed, they would be
    # read under names it does not restrict.  (Rolled back: other tests share the table.)
    pytest.param(
        (
            "ALTER TABLE customers RENAME COLUMN email TO rt_tmp",
            "ALTER TABLE customers RENAME COLUMN name TO email",
            "ALTER TABLE customers RENAME COLUMN rt_tmp TO name",
        ),
        "SELECT upper(name) FROM customers WHERE id = 1",
        "renaming or moving",
        id="columns_of_a_classified_table_swapped",
    ),
    pytest.param(
        ("ALTER TABLE public.customers RENAME TO rt_renamed",),
        "SELECT upper(email) FROM rt_renamed WHERE id = 1",
        "renaming or moving",
        id="classified_table_renamed",
    ),
    pytest.param(
        ("CREATE SCHEMA rt_ms3", "ALTER TABLE public.customers SET SCHEMA rt_ms3"),
        "SELECT upper(email) FROM rt_ms3.customers WHERE id = 1",
        "renaming or moving",
        id="classified_table_moved",
    ),
]


@pytest.mark.parametrize(("statements", "read", "refusal"), RENAMES)
def test_a_relation_renamed_or_moved_in_session_is_read_as_what_it_reads(
    lax_agent: Any, admin: Any, statements: tuple[str, ...], read: str, refusal: str
) -> None:
    """Read as what it reads; a classified table's rename or move is refused (``refusal``)."""
    attack = _creates_then_reads(*statements, read=read)
    assert_attack_controlled(
        admin, lax_agent, attack, secret=EMAIL, reason=refusal, refused=bool(refusal)
    )


# ----------------------------------------------------------------------------------------
# What the agent cannot resolve
# ----------------------------------------------------------------------------------------


@pytest.fixture(params=[True, False], ids=["native", "python"])
def root_unrestricted(request: Any, agent_factory: Any, control_plane: Any) -> Any:
    """An agent whose bundle restricts alice (masking by default) and nothing for root."""
    bundle = bundle_document("v-root")
    bundle["rules"] = [rule for rule in bundle["rules"] if rule["id"] == 1]
    control_plane.set_bundle(bundle)
    return agent_factory(native=request.param)


def _toast_chunks(conn: psycopg.Connection[Any]) -> Any:
    """Stores an incompressible note out of line (in a transaction rolled back), then reads
    the raw chunks of customers' TOAST table, a relation the catalog lookup does not list."""
    with rolled_back(conn):
        long_note = "note 1 " + secrets.token_hex(2000)
        conn.execute('UPDATE customers SET "Secret Note" = %s WHERE id = 1', (long_note,))
        found = conn.execute(
            "SELECT reltoastrelid::regclass::text FROM pg_class "
            "WHERE oid = 'public.customers'::regclass"
        ).fetchone()
        assert found is not None
        return conn.execute(f"SELECT chunk_data FROM {found[0]}").fetchall()


def test_a_relation_the_catalog_lookup_does_not_know_is_refused_when_restricted(
    root_unrestricted: Any, admin: Any
) -> None:
    assert_attack_controlled(
        admin,
        root_unrestricted,
        named_attack(_toast_chunks, "TOAST chunks"),
        secret=NOTE,
        reason="cannot be resolved with certainty",
        refused=True,
    )
    with root_unrestricted.connect("root") as conn:  # unrestricted: works unchanged
        assert any(
            NOTE.search(bytes(row[0]).decode(errors="replace")) for row in _toast_chunks(conn)
        )


def test_an_unknown_relation_is_refused_naming_it_and_why_only_when_restricted(
    root_unrestricted: Any,
) -> None:
    sql = "SELECT * FROM rt_nowhere"
    with root_unrestricted.connect("alice") as conn:
        outcome = run(conn, sql)
        assert_refused(outcome, sql, "relation rt_nowhere cannot be resolved with certainty")
        assert "not in the database catalog" in str(outcome.error)
        assert_legitimate_work_runs(conn)
    with root_unrestricted.connect("root") as conn:
        outcome = run(conn, sql)
        assert outcome.sqlstate == "42P01", outcome  # the server's own answer
