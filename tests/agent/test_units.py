"""Pure units: masking methods, SQL analysis, and the decision rules of the bundle."""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

import pglast
import pytest

from agent import masking, relations
from agent.analysis import (
    COPY,
    DERIVED,
    OUTPUT,
    PREDICATE,
    WRITE,
    Analysis,
    ColumnUse,
    Relation,
    SqlError,
    StatementInfo,
)
from agent.bundle import Bundle
from agent.decision import PolicyEngine
from agent.postgres.proxy import PostgresAgent
from agent.postgres.sql import analyze, stored_view
from agent.relations import SessionRelations
from agent.server import YOUNG_COLLECTION, AgentConfig, tune_collector
from agent.verdicts import ALLOW, DENY, HOLD, MASK, Identity

ALICE = Identity("alice", "user", frozenset({"analyst"}))
BOB = Identity("bob")
CAROL = Identity("carol")


@pytest.mark.parametrize(
    ("method", "value", "param", "expected"),
    [
        ("redact", "secret", None, "****"),
        ("last_n", "4111111111111111", 4, "************1111"),
        ("last_n", "abc", 4, "***"),
        ("email", "ada.lovelace@example.com", None, "****@example.com"),
        ("email", "not-an-email", None, "****"),
        ("null", "x", None, None),
        ("year", "1987-05-02", None, "1987-01-01"),
        ("year", "1987-05-02 10:11:12+02", None, "1987-01-01 00:00:00"),
        ("partial", "4111-1111-1111-1234", None, "XXXX-XXXX-XXXX-1234"),
        ("partial", "+1 (555) 010-9999", None, "+X (XXX) XXX-9999"),
        ("unknown-method", "x", None, "****"),
    ],
)
def test_masking_methods(method: str, value: str, param: int | None, expected: str | None) -> None:
    assert masking.mask_text(method, value, param, b"k") == expected


def test_partial_masks_ascii_text_as_its_unicode_rule_does() -> None:
    """The ASCII shortcut (one str.translate) masks exactly the regex's letters and digits:
    underscores and punctuation stay, and non-ASCII text still takes the regex."""
    ascii_text = "".join(map(chr, range(128))) + "4111_1111-1234"
    by_rule = masking._ALNUMERIC.sub("X", ascii_text)
    assert masking.partial(ascii_text, 0) == by_rule
    assert masking.partial(ascii_text, 4).endswith("XXXX_XXXX-1234")
    assert masking.partial("Zoë_٣-12", 1) == "XXX_X-X2"
    assert masking.partial("ab-12", 1, "*") == "**-*2"


def test_hash_is_deterministic_keyed_and_joinable() -> None:
    first = masking.mask_text("hash", "ada@example.com", None, b"key-1")
    assert first == masking.mask_text("hash", "ada@example.com", None, b"key-1")
    assert first != masking.mask_text("hash", "ada@example.com", None, b"key-2")
    assert first != masking.mask_text("hash", "bob@example.com", None, b"key-1")
    assert first is not None and "ada" not in first


def test_methods_that_do_not_fit_the_column_type_become_null() -> None:
    assert masking.mask_wire_value("email", b"12", 23, None, b"", False) is None  # int4
    assert masking.mask_wire_value("year", b"2001-02-03", 1082, None, b"", False) == (b"2001-01-01")
    assert masking.mask_wire_value("redact", b"\x00\x01", 25, None, b"", True) is None


def _uses(sql: str) -> list[tuple[str | None, str, int | None]]:
    return [(u.column, u.context, u.position) for s in analyze(sql).statements for u in s.uses]


def test_analysis_classifies_where_each_column_flows() -> None:
    assert _uses("SELECT email, upper(name) FROM customers WHERE id = 1") == [
        ("email", OUTPUT, 0),
        ("name", DERIVED, 1),
        ("id", PREDICATE, None),
    ]
    assert ("email", WRITE, None) in _uses("INSERT INTO t SELECT email FROM customers")
    # COPY TO STDOUT is this client's result, masked per row; COPY TO a server file is not
    assert _uses("COPY customers (email) TO STDOUT") == [("email", OUTPUT, 0)]
    assert _uses("COPY customers (email) TO '/tmp/out'") == [("email", COPY, None)]
    assert (None, DERIVED, 0) in _uses("SELECT c FROM customers c")


def test_unparseable_sql_raises() -> None:
    with pytest.raises(SqlError):
        analyze("SELEC 1")


def _engine(make_bundle: Any, **changes: Any) -> PolicyEngine:
    document = make_bundle()
    document.update(changes)
    return PolicyEngine(Bundle.from_document(document))


def test_rule_precedence_deny_beats_hold_beats_mask(make_bundle: Any) -> None:
    engine = _engine(make_bundle)
    assert engine.column_verdict(ALICE, "public", "customers", "ssn").action == DENY
    assert engine.column_verdict(CAROL, "public", "customers", "email").action == HOLD
    verdict = engine.column_verdict(ALICE, "public", "customers", "email")
    assert (verdict.action, verdict.method) == (MASK, "email")
    assert engine.column_verdict(ALICE, "public", "customers", "name").action == ALLOW


def test_sensitive_column_without_a_rule_gets_the_datasource_default(make_bundle: Any) -> None:
    verdict = _engine(make_bundle).column_verdict(BOB, "public", "customers", "email")
    assert (verdict.action, verdict.method, verdict.rule) == (MASK, "redact", "default")


def test_grants_unmask_or_lift_approval_until_they_expire(make_bundle: Any) -> None:
    grants = [
        {
            "id": 1,
            "identity": "alice",
            "level": "read_unmasked",
            "scope": {"tables": [], "columns": [], "tags": ["PII.Email"]},
            "expires_at": "2030-01-01T00:00:00Z",
            "statement_fingerprint": None,
            "max_runs": None,
        },
        {
            "id": 2,
            "identity": "carol",
            "level": "read",
            "scope": {"tables": ["public.customers"], "columns": [], "tags": []},
            "expires_at": "2030-01-01T00:00:00Z",
            "statement_fingerprint": None,
            "max_runs": None,
        },
        {
            "id": 3,
            "identity": "alice",
            "level": "read_unmasked",
            "scope": {"tables": ["public.customers"], "columns": [], "tags": []},
            "expires_at": "2030-01-01T00:00:00Z",
            "statement_fingerprint": None,
            "max_runs": None,
        },
    ]
    engine = _engine(make_bundle, grants=grants)
    before = 1_800_000_000.0  # 2027
    after = 1_900_000_000.0  # 2030+
    assert engine.column_verdict(ALICE, "public", "customers", "email", now=before).action == (
        ALLOW
    )
    assert engine.column_verdict(ALICE, "public", "customers", "email", now=after).action == (MASK)
    assert engine.column_verdict(CAROL, "public", "customers", "email", now=before).action == (MASK)
    # An explicit deny always wins over a grant.
    assert engine.column_verdict(ALICE, "public", "customers", "ssn", now=before).action == DENY


def test_statement_fingerprint_grant_applies_only_to_that_statement(make_bundle: Any) -> None:
    grants = [
        {
            "id": 9,
            "identity": "carol",
            "level": "read_unmasked",
            "scope": {"tables": ["public.customers"], "columns": [], "tags": []},
            "expires_at": "2030-01-01T00:00:00Z",
            "statement_fingerprint": "abc",
            "max_runs": None,
        }
    ]
    engine = _engine(make_bundle, grants=grants)
    now = 1_800_000_000.0
    assert engine.column_verdict(CAROL, "public", "customers", "email", "abc", now).action == (
        ALLOW
    )
    assert engine.column_verdict(CAROL, "public", "customers", "email", "def", now).action == (HOLD)


def test_statement_decision_combines_columns_and_guardrails(make_bundle: Any) -> None:
    engine = _engine(make_bundle)
    masked = engine.decide(ALICE, analyze("SELECT name, email FROM customers"), fingerprint="f")
    assert masked.action == MASK and "public.customers.email" in masked.masked_columns
    assert masked.derived_positions == frozenset()
    # Should email arrive without an origin it was not direct after all: redacted then.
    assert masked.direct_masked_positions == frozenset({1})
    derived = engine.decide(
        ALICE, analyze("SELECT id, upper(email) FROM customers"), fingerprint="f"
    )
    assert derived.derived_positions == frozenset({1})
    blocked = engine.decide(ALICE, analyze("TRUNCATE customers"), fingerprint="f")
    assert blocked.action == DENY and blocked.rule.startswith("guardrail:1")
    copy = engine.decide(ALICE, analyze("COPY customers TO STDOUT"), fingerprint="f")
    assert copy.action == DENY


def test_the_core_decides_on_an_analysis_without_any_postgresql_code(make_bundle: Any) -> None:
    """A protocol package (MySQL, ...) builds an Analysis with its own analyser: the policy
    engine needs nothing PostgreSQL-specific, and the core imports none of it."""
    import subprocess
    import sys

    core = (
        "agent.analysis, agent.audit, agent.bundle, agent.decision, agent.masking, agent.server, "
        "agent.normalize, agent.row_limits, agent.private_catalogs"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", f"import sys, {core}; print(sorted(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "'pglast'" not in loaded and "agent.postgres.sql" not in loaded, loaded
    assert "agent.postgres.codec" not in loaded, loaded
    mysql = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, agent.mysql.server, agent.mysql.session; "
            "print(sorted(m for m in sys.modules if m.startswith(('agent.postgres', 'pglast'))))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # The MySQL agent needs nothing from agent/postgres (the core's audit encoder may load
    # the optional C extension, which is not PostgreSQL code).
    assert mysql.strip() in ("[]", "['agent.postgres', 'agent._fastpath']"), mysql
    customers = Relation("public", "customers")
    analysis = Analysis(
        [
            StatementInfo(
                "select",
                relations={customers},
                uses=[
                    ColumnUse((customers,), "name", OUTPUT, 0),
                    ColumnUse((customers,), "email", OUTPUT, 1),
                ],
            )
        ],
        guardrails=set(),
    )
    decision = _engine(make_bundle).decide(ALICE, analysis, fingerprint="f")
    assert decision.action == MASK and "public.customers.email" in decision.masked_columns
    assert decision.direct_masked_positions == frozenset({1})
    truncate = Analysis([StatementInfo("truncate", written={customers})], {"truncate"})
    assert _engine(make_bundle).decide(ALICE, truncate, fingerprint="f").action == DENY


def test_a_max_runs_grant_stops_after_its_runs(make_bundle: Any) -> None:
    grants = [
        {
            "id": 11,
            "identity": "carol",
            "level": "read_unmasked",
            "scope": {"tables": ["public.customers"], "columns": [], "tags": []},
            "expires_at": "2099-01-01T00:00:00Z",
            "statement_fingerprint": "fp",
            "max_runs": 2,
        }
    ]
    engine = _engine(make_bundle, grants=grants)
    statement = analyze("SELECT email FROM public.customers")
    actions = [engine.decide(CAROL, statement, fingerprint="fp").action for _ in range(3)]
    assert actions == [ALLOW, ALLOW, HOLD]


def _one_run_grant(table: str = "public.customers") -> list[dict[str, Any]]:
    return [
        {
            "id": 11,
            "identity": "carol",
            "level": "read_unmasked",
            "scope": {"tables": [table], "columns": [], "tags": []},
            "expires_at": "2099-01-01T00:00:00Z",
            "statement_fingerprint": None,
            "max_runs": 1,
        }
    ]


def test_select_star_uses_a_run_of_a_max_runs_grant(make_bundle: Any) -> None:
    engine = _engine(make_bundle, grants=_one_run_grant("archive.customers"))
    statement = analyze("SELECT * FROM archive.customers")
    first = engine.decide(CAROL, statement, fingerprint="fp")
    assert first.action == ALLOW and first.counted_grants == (11,)
    assert first.valid_until <= time.time()  # never cached: every run is counted
    assert engine.decide(CAROL, statement, fingerprint="fp").action == HOLD


def test_a_statement_that_does_not_run_uses_no_run(make_bundle: Any) -> None:
    engine = _engine(make_bundle, grants=_one_run_grant())
    # The grant covers public.customers only; the archive copy still needs approval.
    held = analyze("SELECT p.email, a.email FROM public.customers p, archive.customers a")
    decision = engine.decide(CAROL, held, fingerprint="fp")
    assert decision.action == HOLD and decision.counted_grants == ()
    assert engine.grant_runs == {}
    allowed = engine.decide(CAROL, analyze("SELECT email FROM public.customers"), fingerprint="x")
    assert allowed.action == ALLOW and allowed.counted_grants == (11,)


def _table_rule(action: str) -> dict[str, Any]:
    return {
        "id": 90,
        "name": f"salaries {action}",
        "priority": 10,
        "subjects": {"everyone": True, "users": [], "groups": []},
        "resource": {"kind": "table", "schema": "public", "table": "salaries"},
        "action": action,
        "mask_method": None,
        "mask_param": None,
    }


@pytest.mark.parametrize(("action", "expected"), [("require_approval", HOLD), ("deny", DENY)])
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) FROM salaries",
        "SELECT 1 FROM salaries LIMIT 1",
        "DELETE FROM salaries WHERE id = 1",
        "INSERT INTO salaries (id) VALUES (1)",
    ],
)
def test_a_table_rule_covers_statements_that_read_no_column(
    make_bundle: Any, sql: str, action: str, expected: str
) -> None:
    document = make_bundle()
    engine = _engine(make_bundle, rules=[*document["rules"], _table_rule(action)])
    decision = engine.decide(BOB, analyze(sql), fingerprint="f")
    assert decision.action == expected
    assert "public.salaries" in decision.message


@pytest.mark.parametrize(("action", "expected"), [("require_approval", HOLD), ("deny", DENY)])
def test_a_table_rule_covers_a_count_through_views_of_views(
    make_bundle: Any, action: str, expected: str
) -> None:
    """A database view over a session view over the table: `count(*)` names no column."""
    document = make_bundle()
    engine = _engine(make_bundle, rules=[*document["rules"], _table_rule(action)])
    session = SessionRelations()
    made = analyze("CREATE TEMP VIEW mine AS SELECT 1 AS one FROM reports.pay")
    session.add(made.statements[0].creates)
    statement = analyze("SELECT count(*) FROM mine")
    created = relations.definitions(statement, session)
    views = {Relation("reports", "pay"): [("public", "salaries", None)]}
    decision = engine.decide(BOB, statement, fingerprint="f", views=views, created=created)
    assert decision.action == expected
    assert decision.message.startswith("access to table public.salaries ")
    assert decision.request_tables == (("public.salaries",) if expected == HOLD else ())


def test_a_stored_views_filter_decides_every_read_of_it(make_bundle: Any) -> None:
    """A database view filtering on a masked column: counting it is refused as the filter on
    the table is; counting one without such a filter runs, as on the table."""
    engine = _engine(make_bundle)
    stored = {
        name: [
            stored_view(Relation("reports", name), f"SELECT c.id FROM public.customers c{where}")
        ]
        for name, where in [("a_customers", " WHERE c.email LIKE 'a%'"), ("plain", "")]
    }

    def decided(sql: str) -> Any:
        statement = analyze(sql)
        created = relations.definitions(statement, None, stored)
        return engine.decide(ALICE, statement, fingerprint="f", created=created)

    filtered = decided("SELECT count(*) FROM reports.a_customers")
    assert filtered.action == DENY
    assert "public.customers.email cannot be used in WHERE in the definition of" in (
        filtered.message
    )
    assert decided("SELECT count(*) FROM plain").action == ALLOW


def test_a_stored_view_whose_definition_cannot_be_read_is_unresolved() -> None:
    broken = stored_view(Relation("reports", "odd"), "SELECT FROM WHERE")
    assert broken.unknown.startswith("its definition could not be parsed")


def test_writing_a_column_that_needs_approval_is_held_but_masked_columns_stay_writable(
    make_bundle: Any,
) -> None:
    engine = _engine(make_bundle)
    held = engine.decide(
        CAROL, analyze("UPDATE customers SET email = 'x@y.z' WHERE id = 1"), fingerprint="f"
    )
    assert held.action == HOLD
    inserted = engine.decide(
        CAROL, analyze("INSERT INTO customers (id, email) VALUES (1, 'x@y.z')"), fingerprint="f"
    )
    assert inserted.action == HOLD
    masked_writer = engine.decide(
        ALICE, analyze("UPDATE customers SET email = 'x@y.z' WHERE id = 1"), fingerprint="f"
    )
    assert masked_writer.action == ALLOW


def _write_grant(**overrides: Any) -> dict[str, Any]:
    return {
        "id": 77,
        "identity": "bob",
        "level": "write",
        "scope": {"tables": ["public.orders"], "columns": [], "tags": []},
        "expires_at": "2030-01-01T00:00:00Z",
        "statement_fingerprint": None,
        "max_runs": None,
        **overrides,
    }


def test_an_approved_write_grant_lifts_a_require_approval_guardrail(make_bundle: Any) -> None:
    alter = analyze("ALTER TABLE orders ADD COLUMN note text")
    now = 1_800_000_000.0
    assert _engine(make_bundle).decide(BOB, alter, fingerprint="f", now=now).action == HOLD
    engine = _engine(make_bundle, grants=[_write_grant()])
    decision = engine.decide(BOB, alter, fingerprint="f", now=now)
    assert decision.action == ALLOW
    assert decision.valid_until <= 1_893_456_000.0  # never cached past the grant's end
    other_table = analyze("ALTER TABLE customers ADD COLUMN note text")
    assert engine.decide(BOB, other_table, fingerprint="g", now=now).action == HOLD
    expired = engine.decide(BOB, alter, fingerprint="f", now=1_900_000_000.0)
    assert expired.action == HOLD


def test_a_statement_bound_grant_lifts_the_guardrail_for_its_runs_only(make_bundle: Any) -> None:
    grant = _write_grant(statement_fingerprint="fp-alter", max_runs=2, scope={"tables": []})
    engine = _engine(make_bundle, grants=[grant])
    alter = analyze("ALTER TABLE orders ADD COLUMN note text")
    now = 1_800_000_000.0
    assert engine.decide(BOB, alter, fingerprint="other", now=now).action == HOLD
    runs = [engine.decide(BOB, alter, fingerprint="fp-alter", now=now).action for _ in range(3)]
    assert runs == [ALLOW, ALLOW, HOLD]


def test_blocking_guardrails_are_never_lifted_by_a_grant(make_bundle: Any) -> None:
    engine = _engine(make_bundle, grants=[_write_grant(scope={"tables": ["public.orders"]})])
    decision = engine.decide(BOB, analyze("DROP TABLE orders"), fingerprint="f", now=1.8e9)
    assert decision.action == DENY


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT abalance FROM pgbench_accounts WHERE aid = 42",
        "SELECT email FROM customers WHERE id = $1 AND name = 'x' LIMIT 5",
        "UPDATE t SET a = $1, b = 3 WHERE id IN (1, 2, $2)",
        "SELECT $1::text, 'a' || $2, interval '1 day', DATE '2020-01-01'",
        "INSERT INTO t VALUES (1, 'two', 3.0) RETURNING *",
    ],
)
def test_normalizing_is_idempotent_so_normalized_texts_can_be_looked_up_as_they_are(
    sql: str,
) -> None:
    # Agent.decide_cached looks a literal-free text up without normalizing it first.
    normalized = pglast.parser.normalize(sql)
    assert pglast.parser.normalize(normalized) == normalized


def test_a_parameterized_text_and_its_literal_twin_share_one_cached_decision(
    tmp_path: Any, make_bundle: Any
) -> None:
    agent = PostgresAgent(AgentConfig("http://127.0.0.1:9", "t", "shop", state_dir=tmp_path))
    agent._bundle_installed(Bundle.from_document(make_bundle()))
    literal = "SELECT id FROM customers WHERE id = 7"  # a table the bundle knows
    decision = asyncio.run(agent.decide(ALICE, literal, None))

    assert agent.decide_cached(ALICE, "SELECT id FROM customers WHERE id = $1", None) is decision
    assert agent.decide_cached(ALICE, "SELECT id FROM customers WHERE id = 8", None) is decision
    assert agent.decide_cached(BOB, "SELECT id FROM customers WHERE id = $1", None) is None
    assert agent.decide_cached(ALICE, "SELECT id FROM customers WHERE id = $1", ("x",)) is None
    # A session that created relations decides with what only it sees: keys of its own.
    mine = SessionRelations()
    mine.add(analyze("CREATE TEMP VIEW v AS SELECT 1 AS a").statements[0].creates)
    assert agent.decide_cached(ALICE, literal, None, mine.scope) is None
    own = asyncio.run(agent.decide(ALICE, literal, None, mine))
    assert own is not decision and agent.decide_cached(ALICE, literal, None, mine.scope) is own


def test_a_masked_execute_with_an_unknown_result_shape_redacts_every_column() -> None:
    """Defence in depth: if a masked statement's fields were never learned, no value of its
    rows goes out as it came from the server."""
    from types import SimpleNamespace

    from agent.postgres import codec
    from agent.postgres.session import Session
    from agent.postgres.state import Pending, Prepared
    from agent.verdicts import Decision

    decision = Decision(MASK)
    entry = Pending("E", Prepared("SELECT * FROM customers", decision), decision, (0,))
    masks = asyncio.run(Session._portal_mask(None, entry))  # type: ignore[arg-type]
    assert masks is not None and len(masks) >= 1600
    stub = SimpleNamespace(agent=SimpleNamespace(config=AgentConfig("x", "t", "d")))
    row = codec.data_row([b"ada@example.com", None, b"4111111111111111"])
    masked = Session._mask_row(stub, row[5:], masks)  # type: ignore[arg-type]
    values = codec.parse_data_row(masked[5:])
    assert len(values) == 3 and values[1] is None
    assert all(value in (None, b"****") for value in values), values


@pytest.mark.parametrize(
    ("sql", "guardrails"),
    [
        ("SELECT query_to_xml('SELECT pg_read_file(''/etc/hostname'')', true, false, '')", True),
        ("SELECT query_to_xml(format('SELECT %s', 1), true, false, '')", True),  # computed
        ("SELECT query_to_xml('SELECT 1', true, false, '')", False),
        ("SELECT ts_rewrite('a & b'::tsquery, 'a'::tsquery, 'c'::tsquery)", False),
        ("SELECT ts_rewrite('a'::tsquery, 'SELECT pg_read_file(''/x'')')", True),
    ],
)
def test_guardrails_hold_inside_sql_given_as_text(sql: str, guardrails: bool) -> None:
    assert ("server_file_functions" in analyze(sql).guardrails) is guardrails


def _decided_in_session(engine: PolicyEngine, made: list[str], sql: str) -> Any:
    """``sql`` decided for alice in a session whose earlier statements ``made`` created
    relations (as agent.postgres.proxy does it, the catalog connection seeing none)."""
    session = SessionRelations()
    for statement in made:
        session.add(analyze(statement).statements[0].creates)
    analysis = analyze(sql)
    created = relations.definitions(analysis, session)
    unresolved = relations.unresolved(analysis, created, set(), engine.bundle)
    return engine.decide(ALICE, analysis, fingerprint="f", created=created, unresolved=unresolved)


def test_a_session_view_column_is_read_as_the_column_it_carries(make_bundle: Any) -> None:
    """Per output position: the view's id is the table's id, its name the table's email."""
    engine = _engine(make_bundle)
    made = ["CREATE TEMP VIEW customers AS SELECT id, email AS name FROM public.customers"]
    masked = _decided_in_session(engine, made, "SELECT upper(name) FROM customers")
    assert masked.action == MASK and "public.customers.email" in masked.masked_columns
    filtered = _decided_in_session(engine, made, "SELECT id FROM customers WHERE name = 'x'")
    assert filtered.action == DENY and "public.customers.email" in filtered.message
    plain = _decided_in_session(engine, made, "SELECT id FROM customers WHERE id = 1")
    assert plain.action == ALLOW


def test_a_relation_nothing_resolves_is_refused_only_for_a_restricted_identity(
    make_bundle: Any,
) -> None:
    engine = _engine(make_bundle)
    refused = _decided_in_session(engine, [], "SELECT * FROM rt_nowhere")
    assert refused.action == DENY and refused.rule == "unresolved_relation"
    assert "relation rt_nowhere cannot be resolved" in refused.message
    made = ["CREATE TEMP TABLE rt_mine (id int)"]
    assert _decided_in_session(engine, made, "SELECT * FROM rt_mine").action == ALLOW
    root = Identity("root", "user", frozenset({"admins"}))
    lax = _engine(make_bundle, rules=[r for r in make_bundle()["rules"] if r["id"] == 1])
    analysis = analyze("SELECT * FROM rt_nowhere")
    unresolved = relations.unresolved(analysis, {}, set(), lax.bundle)
    allowed = lax.decide(root, analysis, fingerprint="f", unresolved=unresolved)
    assert allowed.action == ALLOW


def test_renaming_a_classified_table_is_refused_when_restricted(make_bundle: Any) -> None:
    engine = _engine(make_bundle, guardrails=[])
    for sql in (
        "ALTER TABLE customers RENAME COLUMN email TO e",
        "ALTER TABLE public.customers RENAME TO c2",
        "ALTER TABLE archive.customers SET SCHEMA public",
        "ALTER SCHEMA archive RENAME TO a2",
    ):
        decision = engine.decide(ALICE, analyze(sql), fingerprint="f")
        assert decision.action == DENY and "renaming or moving" in decision.message, sql
    assert (
        engine.decide(ALICE, analyze("ALTER TABLE orders RENAME TO o2"), fingerprint="f").action
        == ALLOW
    )


def test_the_started_agent_freezes_what_it_loaded_and_spaces_young_collections() -> None:
    before = gc.get_threshold()
    gc.unfreeze()
    try:
        tune_collector()
        assert gc.get_freeze_count() > 1000  # this process's modules, out of the walks
        assert gc.get_threshold() == (YOUNG_COLLECTION, *before[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
