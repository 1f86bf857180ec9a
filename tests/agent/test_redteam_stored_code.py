"""Inference through stored expressions and code: DDL that evaluates a masked column over
the table's rows now (a CHECK constraint, an index expression or predicate, a generated
column) or runs code later (operators, casts, aggregates, triggers, row-level security
policies, domains with a CHECK) must not let a restricted identity ask questions about
the hidden values.

Each probe runs first directly on PostgreSQL as the upstream role (through the agent a
schema change by anyone is held by this suite's guardrail), inside a transaction that is
rolled back: it must run there, and whether it succeeds depends on the stored e-mails (the
probe really asks about them). As alice, who sees them masked, it must be refused with
42501 by the agent. The same DDL on a column nobody restricts keeps working for her.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.agent.wire import Outcome, assert_legitimate_work_runs, rolled_back, run


@pytest.fixture
def agent(agent_on_both_paths: Any) -> Any:
    return agent_on_both_paths


# Each succeeds only while every stored e-mail sorts before 'zzzz' (true here): with
# another bound the statement fails on the first row that does not, one question answered.
STORED_EXPRESSION_PROBES = [
    "ALTER TABLE customers ADD CONSTRAINT probe CHECK (email < 'zzzz')",
    "ALTER TABLE customers ADD CONSTRAINT probe CHECK (email < 'zzzz') NOT VALID",
    "ALTER TABLE customers ADD COLUMN probe int "
    "GENERATED ALWAYS AS (1 / (CASE WHEN email < 'zzzz' THEN 1 ELSE 0 END)) STORED",
    "CREATE INDEX probe ON customers ((1 / (CASE WHEN email < 'zzzz' THEN 1 ELSE 0 END)))",
    "CREATE INDEX probe ON customers (id) "
    "WHERE 1 / (CASE WHEN email < 'zzzz' THEN 1 ELSE 0 END) = 1",
    "CREATE STATISTICS probe ON (email < 'zzzz'), id FROM customers",
    "CREATE POLICY probe ON customers USING (email < 'zzzz')",
]
CODE_PROBES = [
    "CREATE OPERATOR public.=== (LEFTARG = text, RIGHTARG = text, FUNCTION = textregexeq)",
    "CREATE AGGREGATE public.probe_agg (text) (SFUNC = textcat, STYPE = text)",
    "CREATE CAST (int AS customers) WITH INOUT",
    "CREATE TRIGGER probe BEFORE UPDATE ON customers FOR EACH ROW "
    "EXECUTE FUNCTION suppress_redundant_updates_trigger()",
    "CREATE DOMAIN probe_domain AS text CHECK (VALUE < 'zzzz')",
]


def _refused(admin: Any, alice: Any, sql: str, reason: str) -> str:
    """'' when the probe holds, else what went wrong."""
    with rolled_back(admin):
        control: Outcome = run(admin, sql)
    if control.error is not None:
        return f"{sql!r} does not run unmasked: {control!r}"
    with rolled_back(alice):
        outcome = run(alice, sql)
    message = str(outcome.error or "")
    if outcome.sqlstate != "42501" or "Warden" not in message:
        return f"{sql!r} not refused: {outcome!r}"
    if reason not in message:
        return f"{sql!r} refused for another reason than {reason!r}: {message}"
    assert_legitimate_work_runs(alice)
    return ""


@pytest.mark.parametrize(
    ("probes", "reason"),
    [(STORED_EXPRESSION_PROBES, "customers.email"), (CODE_PROBES, "runs code")],
    ids=["stored-expressions", "stored-code"],
)
def test_ddl_that_evaluates_or_stores_code_over_masked_columns_is_refused(
    agent: Any, admin: Any, probes: list[str], reason: str
) -> None:
    with agent.connect("alice") as alice:
        failures = [problem for sql in probes if (problem := _refused(admin, alice, sql, reason))]
    assert not failures, f"{len(failures)} of {len(probes)} probes failed:\n" + "\n".join(failures)
