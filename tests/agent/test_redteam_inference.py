"""Inference: a masked column must not decide which rows come back, how many, in which
order, or whether the statement fails.

Every probe runs first as root, who sees e-mails and notes in clear, and must run there (so
the question it asks is a real question about the hidden value); then as alice, who sees
them masked, it must be refused with 42501 naming the column and the clause. Probes cover
every clause of SELECT, UPDATE, DELETE, MERGE and the select-list expressions that can fail
or multiply rows, at every level (sub-selects, CTEs, set operations, views, EXPLAIN,
prepared statements and cursors).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.agent.corpus import EMAIL_PROBES, NOTE_PROBES
from tests.agent.wire import Outcome, assert_legitimate_work_runs, rolled_back, run


@pytest.fixture
def agent(agent_on_both_paths: Any) -> Any:
    """Every test here runs on the native data path and on the pure-Python one."""
    return agent_on_both_paths


EMAIL_COLUMN = "customers.email"  # public or archive: unqualified, it may be either
NOTE_COLUMN = "public.customers.Secret Note"

# Extended protocol: the lookup value arrives as a parameter, the clause is still a filter.
EXTENDED_PROBES = [
    ("SELECT id FROM customers WHERE email < %s", ("m",), "WHERE"),
    ("SELECT id FROM customers WHERE email LIKE %s", ("ada%",), "WHERE"),
    ("SELECT id FROM customers ORDER BY email LIMIT %s", (1,), "ORDER BY"),
]


def _check(root: Any, alice: Any, sql: str, column: str, clause: str, **kwargs: Any) -> str:
    """'' when the probe holds, else what went wrong."""
    control: Outcome = run(root, sql, **kwargs)
    if control.error is not None:
        return f"{sql!r} does not run unmasked: {control!r}"
    outcome = run(alice, sql, **kwargs)
    message = str(outcome.error or "")
    if outcome.sqlstate != "42501" or "Warden" not in message:
        return f"{sql!r} not refused: {outcome!r}"
    if column not in message or clause not in message:
        return f"{sql!r} refused without naming {column} / {clause!r}: {message}"
    assert_legitimate_work_runs(alice)
    return ""


def _cleanup(conn: Any) -> None:
    for statement in ("DEALLOCATE ALL", "CLOSE ALL"):
        run(conn, statement)


@pytest.mark.parametrize(
    "probes, column",
    [(EMAIL_PROBES, EMAIL_COLUMN), (NOTE_PROBES, NOTE_COLUMN)],
    ids=["email", "secret-note"],
)
def test_masked_column_cannot_decide_rows_order_count_or_errors(
    agent: Any, probes: list[tuple[str, str]], column: str
) -> None:
    failures = []
    with agent.connect("root") as root, agent.connect("alice") as alice:
        for sql, clause in probes:
            problem = _check(root, alice, sql, column, clause)
            if problem:
                failures.append(problem)
            _cleanup(root)
    assert not failures, f"{len(failures)} of {len(probes)} probes failed:\n" + "\n".join(failures)


def test_masked_column_cannot_decide_over_the_extended_protocol(agent: Any) -> None:
    failures = []
    with agent.connect("root") as root, agent.connect("alice") as alice:
        for sql, params, clause in EXTENDED_PROBES:
            problem = _check(root, alice, sql, EMAIL_COLUMN, clause, params=params)
            if problem:
                failures.append(problem)
    assert not failures, "\n".join(failures)


def test_binary_search_on_a_masked_email_gets_no_answer(agent: Any) -> None:
    """The attack itself: halving the alphabet finds an e-mail's first letter unmasked,
    and gets no answer at all masked."""
    sql = "SELECT count(*) FROM customers WHERE id = 8 AND email < %s"
    with agent.connect("root") as root:
        low, high = "a", "z"
        while ord(high) - ord(low) > 1:
            middle = chr((ord(low) + ord(high)) // 2)
            below = root.execute(sql, (middle,)).fetchone()
            low, high = (low, middle) if below and below[0] else (middle, high)
        assert low == "a"  # customer 8 is ada.8@example.com
    with agent.connect("alice") as alice:
        outcome = run(alice, sql, params=("m",))
        assert_legitimate_work_runs(alice)
    assert outcome.sqlstate == "42501" and EMAIL_COLUMN in str(outcome.error)


def test_exact_lookup_does_not_open_other_comparisons(
    agent_factory: Any, control_plane: Any
) -> None:
    """With lookups allowed, only equality with given values passes; every other use of the
    column in a filter is still refused."""
    from tests.agent.conftest import bundle_document

    bundle = bundle_document()
    for rule in bundle["rules"]:
        if rule["name"] == "analysts see email domains":
            rule["allow_exact_lookups"] = True
    control_plane.set_bundle(bundle)
    agent = agent_factory()
    allowed = [
        "SELECT id FROM customers WHERE email = 'ada.8@example.com'",
        "SELECT id FROM customers WHERE 'ada.8@example.com' = email AND score > 0",
        "SELECT id FROM customers WHERE email IN ('ada.8@example.com', 'x')",
        "SELECT id FROM customers WHERE email = ANY('{ada.8@example.com}'::text[])",
        "UPDATE customers SET score = score WHERE email = 'ada.8@example.com'",
    ]
    refused = [
        "SELECT id FROM customers WHERE email <> 'ada.8@example.com'",
        "SELECT id FROM customers WHERE email = 'ada.8@example.com' OR id = 2",
        "SELECT id FROM customers WHERE NOT (email = 'ada.8@example.com')",
        "SELECT id FROM customers WHERE email = lower(name)",
        "SELECT id FROM customers WHERE lower(email) = 'ada.8@example.com'",
        "SELECT id FROM customers WHERE email > 'm'",
        "SELECT id FROM customers WHERE email IN (SELECT note FROM orders)",
        # was `SELECT id ...`: ambiguous, it failed unmasked too (42702)
        "SELECT c.id FROM customers c JOIN archive.customers a ON a.email = c.email",
        "SELECT id FROM customers WHERE email = 'ada.8@example.com' ORDER BY email",
    ]
    with agent.connect("alice") as alice:
        for sql in allowed:
            outcome = run(alice, sql)
            assert outcome.error is None, f"{sql!r}: {outcome!r}"
        for sql in refused:
            outcome = run(alice, sql)
            assert outcome.sqlstate == "42501" and EMAIL_COLUMN in str(outcome.error), (
                f"{sql!r}: {outcome!r}"
            )
        assert_legitimate_work_runs(alice)
    with agent.connect("root") as root, rolled_back(root):  # each refused one runs unmasked
        for sql in refused:
            assert run(root, sql).error is None, f"the probe does not run unmasked: {sql!r}"


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT id FROM customers WHERE ssn LIKE '1%'",
        "SELECT id FROM customers ORDER BY ssn",
        "SELECT count(*) FROM customers GROUP BY ssn",
        "EXPLAIN SELECT ssn FROM customers",
    ],
)
def test_denied_column_is_refused_in_every_clause(agent: Any, admin: Any, sql: str) -> None:
    """Unrestricted each answer changes with the SSNs (EXPLAIN: with the column's
    existence, as the plan names it)."""
    change = (
        "ALTER TABLE customers RENAME ssn TO ssn_gone"
        if sql.startswith("EXPLAIN")
        else "UPDATE customers SET ssn = '000-45-0000' WHERE id % 2 = 0"
    )
    with rolled_back(admin):
        before = run(admin, sql)
        admin.execute(change)
        after = run(admin, sql)
    assert before.error is None and before.rows != after.rows, f"asks nothing: {sql!r}"
    with agent.connect("alice") as alice:
        outcome = run(alice, sql)
        assert_legitimate_work_runs(alice)
    assert outcome.sqlstate == "42501", (sql, outcome)
    assert "public.customers.ssn is blocked" in str(outcome.error), (sql, outcome)


# A set operation's ORDER BY names an output by position or by the first branch's name: it
# sorts on that select-list expression of every branch.
SET_OPERATION_ORDERS = [
    "SELECT email FROM customers WHERE id <= 5 "
    "UNION ALL SELECT name FROM customers WHERE id < 0 ORDER BY 1",
    "SELECT email AS e FROM customers WHERE id <= 5 "
    "UNION ALL SELECT name FROM customers WHERE id < 0 ORDER BY e",
    "SELECT name FROM customers WHERE id < 0 "
    "UNION ALL SELECT email FROM customers WHERE id <= 5 ORDER BY 1",
    "(SELECT id, email FROM customers WHERE id <= 5 UNION ALL "
    "SELECT id, name FROM customers WHERE id < 0) UNION ALL SELECT 0, 'x' WHERE false ORDER BY 2",
]


def _assert_alice_refused(agent: Any, sql: str, clause: str) -> None:
    with agent.connect("alice") as alice:
        outcome = run(alice, sql)
        assert_legitimate_work_runs(alice)
    message = str(outcome.error or "")
    assert outcome.sqlstate == "42501" and "Warden" in message, outcome
    assert EMAIL_COLUMN in message and clause in message, message


def _assert_sorted_by_emails_then_refused(agent: Any, sql: str, email_at: int) -> None:
    """Unmasked, ``sql`` gives customers 1-5 in their e-mails' order (descending when it
    says DESC) as output ``email_at``; masked, it is refused naming e-mail and ORDER BY."""
    with agent.connect("root") as root:
        control = run(root, sql)
        by_email = run(root, "SELECT email FROM customers WHERE id <= 5 ORDER BY email")
        by_id = run(root, "SELECT email FROM customers WHERE id <= 5 ORDER BY id")
    assert control.error is None and control.rows, control
    # Unmasked, the order is the e-mails' own (which the id order is not).
    emails = [row[0] for row in by_email.rows or []]
    assert [row[email_at] for row in control.rows] == (emails[::-1] if "DESC" in sql else emails)
    assert by_email.rows != by_id.rows
    _assert_alice_refused(agent, sql, "ORDER BY")


@pytest.mark.parametrize("sql", SET_OPERATION_ORDERS)
def test_ordering_a_set_operation_by_a_masked_output_is_refused(agent: Any, sql: str) -> None:
    _assert_sorted_by_emails_then_refused(agent, sql, -1)


def test_ordering_a_set_operation_by_a_plain_output_still_runs(agent: Any) -> None:
    plain = (
        "SELECT id, name FROM customers WHERE id <= 5 "
        "UNION ALL SELECT id, name FROM customers WHERE id < 0 ORDER BY 1 DESC"
    )
    beside_email = (
        "SELECT id, email FROM customers WHERE id <= 5 "
        "UNION ALL SELECT id, name FROM customers WHERE id < 0 ORDER BY 1 DESC"
    )
    with agent.connect("root") as root:
        expected = run(root, plain)
        control = run(root, beside_email)
    assert [row[0] for row in expected.rows or []] == [5, 4, 3, 2, 1]
    emails = {row[1] for row in control.rows or []}
    assert len(emails) == 5 and all(email.endswith("@example.com") for email in emails)
    with agent.connect("alice") as alice:
        unmasked = run(alice, plain)
        masked = run(alice, beside_email)
    assert unmasked.error is None and unmasked.rows == expected.rows, unmasked
    # Beside a masked output the sort still runs; the set operation's outputs are withheld.
    assert masked.error is None and len(masked.rows or []) == 5, masked
    assert not emails & {value for row in masked.rows or [] for value in row}


def _values_branch() -> str:
    rows = ", ".join(
        f"({i}, (SELECT email FROM archive.customers WHERE id = {i}))" for i in range(1, 6)
    )
    return f"VALUES {rows}"


# A star gives as many outputs as its relation has columns: the position or name an ORDER BY
# gives lands on one of them (the analyser cannot tell which, so all count).  Each sorts
# customers 1-5 by e-mail, given as the second output.
STAR_ORDERS = [
    "SELECT id, name FROM customers WHERE id < 0 "
    "UNION ALL SELECT * FROM archive.customers WHERE id <= 5 ORDER BY 2",
    "SELECT * FROM archive.customers WHERE id <= 5 "
    "UNION ALL SELECT id, name FROM customers WHERE id < 0 ORDER BY email",
    "SELECT a.*, a.id FROM archive.customers a WHERE id <= 5 "
    "UNION ALL SELECT id, name, 0 FROM customers WHERE id < 0 ORDER BY 2",
    "SELECT * FROM archive.customers WHERE id <= 5 ORDER BY 2",
    "SELECT a.* FROM archive.customers a WHERE id <= 5 ORDER BY 2 DESC",
    "SELECT (a).* FROM archive.customers a WHERE id <= 5 ORDER BY 2",
    f"SELECT id, name FROM customers WHERE id < 0 UNION ALL {_values_branch()} ORDER BY 2",
]


@pytest.mark.parametrize("sql", STAR_ORDERS)
def test_ordering_by_a_position_a_star_gives_is_refused(agent: Any, sql: str) -> None:
    _assert_sorted_by_emails_then_refused(agent, sql, 1)


# Stars whose outputs are sorted on a position before them, or not sorted at all.
STAR_NEIGHBOURS = [
    "SELECT id, a.* FROM archive.customers a WHERE id <= 5 "
    "UNION ALL SELECT id, id, name FROM customers WHERE id < 0 ORDER BY 1 DESC",
    "SELECT * FROM archive.customers WHERE id <= 5 "
    "UNION ALL SELECT id, name FROM customers WHERE id < 0",
    "SELECT * FROM archive.customers WHERE id <= 5 ORDER BY id DESC",
]


@pytest.mark.parametrize("sql", STAR_NEIGHBOURS)
def test_a_star_sorted_on_a_plain_output_still_runs(agent: Any, sql: str) -> None:
    with agent.connect("root") as root:
        control = run(root, sql)
    emails = {value for row in control.rows or [] for value in row if isinstance(value, str)}
    assert len(control.rows or []) == 5 and len(emails) == 5, control
    with agent.connect("alice") as alice:
        masked = run(alice, sql)
    assert masked.error is None and len(masked.rows or []) == 5, masked
    if "UNION" not in sql:  # a set operation beside a masked output withholds its outputs
        assert [row[0] for row in masked.rows or []] == [row[0] for row in control.rows or []]
    assert not emails & {value for row in masked.rows or [] for value in row}


def test_comparing_a_whole_row_with_a_masked_column_is_refused(agent: Any) -> None:
    """A row compares column by column: equal rows have equal e-mails."""
    sql = (
        "SELECT id FROM archive.customers a "
        "WHERE a = row(8, 'ada.8@example.com')::archive.customers"
    )
    with agent.connect("root") as root:
        assert run(root, sql).rows == [(8,)]
        assert run(root, sql.replace("ada.8", "bob.8")).rows == []
    _assert_alice_refused(agent, sql, "WHERE")
