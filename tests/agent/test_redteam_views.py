"""Red-team probes of table rules through views: a rule that names a table (deny, require
approval, mask) covers every read of a view over it — committed, nested, materialized,
``security_barrier`` / ``security_invoker``, or made in the session — as if the statement
read the table itself, also when it reads no column (``count(*)``); and a view's own filters
decide every read of it, as a WHERE on the table would.

Every leak probe first runs directly as the upstream role (``admin``), where it must get the
secret out, and as root through the agent (no rule restricts root here); through alice the
same statement must be refused, held or masked exactly as the statement on the table is.
Legitimate work through views over allowed tables keeps running.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.agent.conftest import PG_HOST, PG_PORT, bundle_document
from tests.agent.wire import (
    EMAIL,
    assert_attack_controlled,
    assert_legitimate_work_runs,
    assert_refused,
    leaks,
    named_attack,
    reads,
    rolled_back,
    run,
)

SALARY = re.compile(r"salary-\d{4}")
LEDGER = re.compile(r"ledger-\d{4}")
MEMO = re.compile(r"memo-\d{4}")

SCHEMA = """
CREATE SCHEMA rt_views;
CREATE TABLE rt_views.depts (id int PRIMARY KEY, name text);
CREATE TABLE rt_views.payroll (id int, employee text, salary text);
CREATE TABLE rt_views.ledger (id int, entry text);
CREATE TABLE rt_views.memo (id int, body text);
INSERT INTO rt_views.depts SELECT i, 'dept ' || i FROM generate_series(1, 5) i;
INSERT INTO rt_views.payroll SELECT i, 'employee ' || i, 'salary-' || (1000 + i)
  FROM generate_series(1, 5) i;
INSERT INTO rt_views.ledger SELECT i, 'ledger-' || (2000 + i) FROM generate_series(1, 5) i;
INSERT INTO rt_views.memo SELECT i, 'memo-' || (3000 + i) FROM generate_series(1, 5) i;
CREATE VIEW rt_views.payroll_v AS SELECT * FROM rt_views.payroll;
CREATE VIEW rt_views.payroll_nested AS SELECT id, salary FROM rt_views.payroll_v;
CREATE VIEW rt_views.payroll_ones AS SELECT 1 AS one FROM rt_views.payroll;
CREATE VIEW rt_views.payroll_barrier WITH (security_barrier) AS
  SELECT employee, salary FROM rt_views.payroll WHERE id > 0;
CREATE VIEW rt_views.payroll_invoker WITH (security_invoker = true) AS
  SELECT employee, salary FROM rt_views.payroll;
CREATE MATERIALIZED VIEW rt_views.payroll_mv AS SELECT employee, salary FROM rt_views.payroll;
CREATE VIEW rt_views.payroll_by_dept AS
  SELECT d.name, p.salary FROM rt_views.depts d JOIN rt_views.payroll p USING (id);
CREATE VIEW rt_views.ledger_v AS SELECT id, entry FROM rt_views.ledger;
CREATE VIEW rt_views.memo_v AS SELECT id, body FROM rt_views.memo;
CREATE VIEW rt_views.memo_filtered AS SELECT id FROM rt_views.memo WHERE body LIKE 'memo-3001%';
CREATE VIEW rt_views.memo_filtered_nested AS SELECT 1 AS one FROM rt_views.memo_filtered;
CREATE VIEW rt_views.customers_a AS SELECT id, name FROM public.customers WHERE email LIKE 'a%';
CREATE FUNCTION rt_views.email_of(i int) RETURNS text LANGUAGE sql STABLE
  AS $$SELECT email FROM public.customers WHERE id = i$$;
CREATE VIEW rt_views.depts_contact AS SELECT d.id, rt_views.email_of(d.id) AS contact
  FROM rt_views.depts d;
CREATE VIEW rt_views.depts_v AS SELECT id, name FROM rt_views.depts WHERE id < 5;
CREATE VIEW rt_views.dept_people AS
  SELECT d.name AS dept, c.name FROM rt_views.depts d JOIN public.customers c ON c.id = d.id;
"""


@pytest.fixture(scope="module")
def views_schema(pg_database: str) -> Iterator[None]:
    """Tables alice is denied, held on or sees masked by table rules, and committed views
    over them (the catalog connection sees these)."""
    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user="postgres", dbname=pg_database, autocommit=True
    ) as conn:
        conn.execute(SCHEMA)
        try:
            yield
        finally:
            conn.execute("DROP SCHEMA rt_views CASCADE")


def _table_rule(rule_id: int, table: str, action: str, user: str = "alice") -> dict[str, Any]:
    return {
        "id": rule_id,
        "name": f"{user} {action} {table}",
        "priority": 200,
        "subjects": {"everyone": False, "users": [user], "groups": []},
        "resource": {"kind": "table", "schema": "rt_views", "table": table},
        "action": action,
        "mask_method": "redact" if action == "mask" else None,
        "mask_param": None,
    }


def views_bundle() -> dict[str, Any]:
    bundle = bundle_document("v-views")
    bundle["rules"] = [
        *bundle["rules"],
        _table_rule(20, "payroll", "deny"),
        _table_rule(21, "ledger", "require_approval"),
        _table_rule(22, "memo", "mask"),
    ]
    return bundle


@pytest.fixture(params=[True, False], ids=["native", "python"])
def agent(request: Any, views_schema: None, agent_factory: Any, control_plane: Any) -> Any:
    control_plane.set_bundle(views_bundle())
    return agent_factory(native=request.param)


def _root_reads(agent: Any, sql: str, secret: re.Pattern[str]) -> None:
    """The unrestricted identity through the agent: the statement runs and shows the secret."""
    with agent.connect("root") as conn:
        outcome = run(conn, sql)
    assert outcome.error is None and leaks(outcome.rows, (secret,)), (sql, outcome)


# ----------------------------------------------------------------------------------------
# Deny: a table rule follows the table through every view over it
# ----------------------------------------------------------------------------------------

# Refusals name the column read (as the same read of the table does), or the table.
PAYROLL_DENIED = "is blocked by policy"


def _refused_as_the_table(outcome: Any, sql: str) -> None:
    assert_refused(outcome, sql, PAYROLL_DENIED)
    assert "access to rt_views.payroll." in str(outcome.error) or (
        "access to table rt_views.payroll " in str(outcome.error)
    ), outcome


# Reads of the denied table through views: each carries a salary when run unrestricted.
THROUGH_VIEWS = [
    pytest.param("SELECT * FROM rt_views.payroll_v", id="view"),
    pytest.param("SELECT salary FROM rt_views.payroll_nested", id="view_over_view"),
    pytest.param("SELECT salary FROM rt_views.payroll_barrier", id="security_barrier_view"),
    pytest.param("SELECT salary FROM rt_views.payroll_invoker", id="security_invoker_view"),
    pytest.param("SELECT salary FROM rt_views.payroll_mv", id="materialized_view"),
    pytest.param("SELECT name, salary FROM rt_views.payroll_by_dept", id="view_joining_it"),
    pytest.param("SELECT s FROM (SELECT salary AS s FROM rt_views.payroll_v) q", id="subquery"),
    pytest.param(
        "WITH w AS (SELECT salary FROM rt_views.payroll_nested) SELECT * FROM w", id="cte"
    ),
    pytest.param(
        "SELECT (SELECT string_agg(salary, ',') FROM rt_views.payroll_v)", id="scalar_subquery"
    ),
]


@pytest.mark.parametrize("prepare", [False, True], ids=["simple", "extended"])
@pytest.mark.parametrize("sql", THROUGH_VIEWS)
def test_a_view_over_a_denied_table_is_denied_as_the_table_is(
    agent: Any, admin: Any, sql: str, prepare: bool
) -> None:
    _root_reads(agent, sql, SALARY)
    attack = reads(sql, prepare=prepare)
    assert_attack_controlled(
        admin, agent, attack, secret=SALARY, reason=PAYROLL_DENIED, refused=True
    )
    with agent.connect("alice") as conn:
        _refused_as_the_table(run(conn, sql, prepare=prepare), sql)


# Statements reading no value of the denied table through a view: what they tell (how many
# rows, which exist) is what the same statement on the table would tell.
NO_COLUMN = [
    pytest.param(
        "SELECT count(*) FROM rt_views.payroll_v",
        "SELECT count(*) FROM rt_views.payroll",
        id="count_star",
    ),
    pytest.param(
        "SELECT count(*) FROM rt_views.payroll_nested",
        "SELECT count(*) FROM rt_views.payroll",
        id="count_star_nested",
    ),
    pytest.param(
        "SELECT one FROM rt_views.payroll_ones",
        "SELECT 1 AS one FROM rt_views.payroll",
        id="view_reading_no_column",
    ),
    pytest.param(
        "SELECT name FROM rt_views.payroll_by_dept",
        "SELECT d.name FROM rt_views.depts d JOIN rt_views.payroll p USING (id)",
        id="allowed_column_of_a_joining_view",
    ),
    pytest.param(
        "SELECT 1 WHERE EXISTS (SELECT 1 FROM rt_views.payroll_mv WHERE salary LIKE 'salary-1%')",
        "SELECT 1 WHERE EXISTS (SELECT 1 FROM rt_views.payroll WHERE salary LIKE 'salary-1%')",
        id="exists_on_a_materialized_view",
    ),
]


@pytest.mark.parametrize(("through_view", "on_table"), NO_COLUMN)
def test_a_statement_reading_no_column_through_a_view_is_denied_as_on_the_table(
    agent: Any, admin: Any, through_view: str, on_table: str
) -> None:
    control = run(admin, through_view)
    assert control.error is None and control.rows == run(admin, on_table).rows, control
    assert control.rows and control.rows[0] != (0,), control  # it does tell something
    with agent.connect("alice") as conn:
        _refused_as_the_table(run(conn, on_table), on_table)
        _refused_as_the_table(run(conn, through_view), through_view)
        assert_legitimate_work_runs(conn)


def test_unqualified_names_on_the_search_path_reach_the_table_too(agent: Any, admin: Any) -> None:
    sql = "SELECT salary FROM payroll_nested"

    def attack(conn: psycopg.Connection[Any]) -> Any:
        with rolled_back(conn):
            conn.execute("SET LOCAL search_path = rt_views, public")
            return conn.execute(sql).fetchall()

    attack = named_attack(attack, sql)
    assert_attack_controlled(
        admin, agent, attack, secret=SALARY, reason=PAYROLL_DENIED, refused=True
    )


# Views the session makes over the denied table or committed views of it: refused when made
# (the CREATE reads the table through them), so nothing later reads them.
SESSION_VIEWS = [
    pytest.param(
        "CREATE TEMP VIEW rt_w1 AS SELECT salary AS note FROM rt_views.payroll_v",
        "SELECT note FROM rt_w1",
        id="temp_view_over_a_view",
    ),
    pytest.param(
        "CREATE TEMP VIEW rt_w2 AS SELECT * FROM rt_views.payroll",
        "SELECT salary FROM rt_w2",
        id="temp_view_over_the_table",
    ),
    pytest.param(
        "CREATE TEMP VIEW rt_w3 AS SELECT 1 AS one FROM rt_views.payroll_nested",
        "SELECT count(*) FROM rt_w3",
        id="temp_view_reading_no_column",
    ),
]


@pytest.mark.parametrize(("create", "read"), SESSION_VIEWS)
def test_a_view_made_in_session_over_a_denied_table_is_refused(
    agent: Any, admin: Any, create: str, read: str
) -> None:
    with rolled_back(admin):
        admin.execute(create)
        control = admin.execute(read).fetchall()
    assert leaks(control, (SALARY,)) or control == [(5,)], control  # it reads the table
    with agent.connect("alice") as conn:
        with rolled_back(conn):
            _refused_as_the_table(run(conn, create), create)
        with rolled_back(conn):  # nor does a read after it in the same transaction work
            assert run(conn, create).error is not None
            outcome = run(conn, read)
            assert outcome.error is not None and not outcome.leaked((SALARY,)), outcome
        assert_legitimate_work_runs(conn)


# ----------------------------------------------------------------------------------------
# Require approval: held as the table is, the request naming the table
# ----------------------------------------------------------------------------------------

LEDGER_HELD = "requires an approved access request"


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT entry FROM rt_views.ledger_v",
        "SELECT count(*) FROM rt_views.ledger_v",
    ],
    ids=["column", "count_star"],
)
def test_a_view_over_a_table_needing_approval_is_held_as_the_table_is(
    agent: Any, admin: Any, control_plane: Any, sql: str
) -> None:
    assert run(admin, sql).error is None
    with agent.connect("alice") as conn:
        outcome = run(conn, sql)
        assert_refused(outcome, sql, LEDGER_HELD)
        assert "access to rt_views.ledger." in str(outcome.error) or (
            "access to table rt_views.ledger " in str(outcome.error)
        )
        assert "held for approval: request 1" in str(outcome.error)
        assert_legitimate_work_runs(conn)
    filed = control_plane.access_requests[1]
    assert filed["statement"] == sql and filed["identity"] == "alice"
    assert filed["scope"] == {"tables": ["rt_views.ledger"], "columns": [], "tags": []}


def test_a_held_read_through_a_view_runs_once_approved(
    views_schema: None, agent_factory: Any, control_plane: Any, admin: Any
) -> None:
    """The grant approving the request covers the table the view reads (the request named
    it), so the statement runs: a grant on the view alone would leave it held."""
    sql = "SELECT entry FROM rt_views.ledger_v ORDER BY id"
    assert leaks(run(admin, sql).rows, (LEDGER,))
    control_plane.set_bundle(views_bundle())
    agent = agent_factory(hold_wait=10)

    def approve() -> None:
        deadline = time.monotonic() + 10
        while 1 not in control_plane.access_requests and time.monotonic() < deadline:
            time.sleep(0.02)
        control_plane.review(1, "approved", level="read_unmasked")

    reviewer = threading.Thread(target=approve, daemon=True)
    reviewer.start()
    with agent.connect("alice") as conn:
        rows = conn.execute(sql).fetchall()
    reviewer.join(5)
    assert control_plane.access_requests[1]["scope"]["tables"] == ["rt_views.ledger"]
    assert leaks(rows, (LEDGER,)), rows  # approved unmasked: the ledger in clear


# ----------------------------------------------------------------------------------------
# Masks and filters: a view's filters decide every read of it, as a WHERE on the table
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("prepare", [False, True], ids=["simple", "extended"])
def test_a_view_over_a_masked_table_returns_it_masked(
    agent: Any, admin: Any, prepare: bool
) -> None:
    sql = "SELECT id, body FROM rt_views.memo_v"
    _root_reads(agent, sql, MEMO)
    assert_attack_controlled(admin, agent, reads(sql, prepare=prepare), secret=MEMO)
    with agent.connect("alice") as conn:  # rows come back, masked, as from the table
        assert len(conn.execute(sql, prepare=prepare).fetchall()) == 5


# (the read through a view, the same read on the table, the column its filter uses)
FILTERED = [
    pytest.param(
        "SELECT count(*) FROM rt_views.memo_filtered",
        "SELECT count(*) FROM rt_views.memo WHERE body LIKE 'memo-3001%'",
        "rt_views.memo.body",
        id="table_masked_by_a_table_rule",
    ),
    pytest.param(
        "SELECT count(*) FROM rt_views.memo_filtered_nested",
        "SELECT count(*) FROM rt_views.memo WHERE body LIKE 'memo-3001%'",
        "rt_views.memo.body",
        id="view_over_a_filtered_view",
    ),
    pytest.param(
        "SELECT id FROM rt_views.memo_filtered",
        "SELECT id FROM rt_views.memo WHERE body LIKE 'memo-3001%'",
        "rt_views.memo.body",
        id="rows_chosen_by_the_filter",
    ),
    pytest.param(
        "SELECT count(*) FROM rt_views.customers_a",
        "SELECT count(*) FROM public.customers WHERE email LIKE 'a%'",
        "public.customers.email",
        id="column_masked_by_a_tag_rule",
    ),
]


@pytest.mark.parametrize(("through_view", "on_table", "column"), FILTERED)
def test_a_view_filtering_on_a_masked_column_is_refused_as_the_filter_on_the_table(
    agent: Any, admin: Any, through_view: str, on_table: str, column: str
) -> None:
    """Unrestricted, the view's answer is the filtered table's (the hidden value decides
    it); for alice both are refused, naming the column and the view's filter."""
    control = run(admin, through_view)
    assert control.error is None and control.rows == run(admin, on_table).rows, control
    total = run(admin, "SELECT count(*) FROM " + on_table.split(" FROM ")[1].split(" WHERE")[0])
    assert control.rows != total.rows  # the filter does choose rows
    with agent.connect("alice") as conn:
        assert_refused(run(conn, on_table), on_table, f"masked column {column} cannot be used")
        outcome = run(conn, through_view)
        assert_refused(outcome, through_view, f"masked column {column} cannot be used in WHERE")
        assert "in the definition of rt_views." in str(outcome.error)
        assert_legitimate_work_runs(conn)


def test_counting_a_masked_table_through_an_unfiltered_view_runs_as_on_the_table(
    agent: Any,
) -> None:
    with agent.connect("alice") as conn:
        assert conn.execute("SELECT count(*) FROM rt_views.memo").fetchone() == (5,)
        assert conn.execute("SELECT count(*) FROM rt_views.memo_v").fetchone() == (5,)
        # One snapshot: other tests may add customers to this shared database meanwhile.
        both = (
            "SELECT (SELECT count(*) FROM public.customer_contacts),"
            " (SELECT count(*) FROM customers)"
        )
        through_view, on_table = conn.execute(both).fetchone()
        assert through_view == on_table >= 50


@pytest.mark.parametrize("prepare", [False, True], ids=["simple", "extended"])
def test_a_view_calling_a_user_function_is_opaque_as_the_call_is(
    agent: Any, admin: Any, prepare: bool
) -> None:
    """The view reads only an allowed table; the function it calls reads the e-mail."""
    sql = "SELECT contact FROM rt_views.depts_contact"
    reason = "runs code or SQL the agent cannot inspect"
    with agent.connect("alice") as conn:  # the call itself is refused so
        assert_refused(run(conn, "SELECT rt_views.email_of(1)"), "email_of", reason)
    attack = reads(sql, prepare=prepare)
    assert_attack_controlled(admin, agent, attack, secret=EMAIL, reason=reason, refused=True)


# ----------------------------------------------------------------------------------------
# Legitimate work through views over allowed tables
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("prepare", [False, True], ids=["simple", "extended"])
def test_views_over_allowed_tables_keep_working(agent: Any, prepare: bool) -> None:
    with agent.connect("alice") as conn:
        depts = conn.execute("SELECT id, name FROM rt_views.depts_v ORDER BY id", prepare=prepare)
        assert depts.fetchall() == [(i, f"dept {i}") for i in range(1, 5)]
        counted = conn.execute(
            "SELECT count(*) FROM rt_views.depts_v WHERE name LIKE 'dept%'", prepare=prepare
        ).fetchone()
        assert counted == (4,)
        people = conn.execute(
            "SELECT dept, name FROM rt_views.dept_people ORDER BY dept", prepare=prepare
        ).fetchall()
        assert len(people) == 5 and all(" " in name for _, name in people)
        with rolled_back(conn):
            conn.execute("CREATE TEMP VIEW rt_mine AS SELECT id, name FROM rt_views.depts_v")
            mine = conn.execute("SELECT count(*) FROM rt_mine WHERE id > 1").fetchone()
            assert mine == (3,)
        assert_legitimate_work_runs(conn)


def test_root_is_not_restricted_by_alices_table_rules(agent: Any) -> None:
    """The rules name alice: through the same views root reads in clear, emails included."""
    with agent.connect("root") as conn:
        assert conn.execute("SELECT count(*) FROM rt_views.payroll_v").fetchone() == (5,)
        emails = conn.execute("SELECT name FROM rt_views.customers_a").fetchall()
        assert emails  # the filter runs for root
        contacts = conn.execute("SELECT email FROM public.customer_contacts LIMIT 3").fetchall()
        assert leaks(contacts, (EMAIL,))
