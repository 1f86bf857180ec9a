"""Utility suite: everyday statements a masked identity must still be able to run unchanged.

The inference rules refuse whatever lets a masked value decide the answer; this suite is
their counterweight. alice (group analyst) sees e-mails masked (with exact lookups allowed
by the rule), cards, phones, birth dates and notes masked, and SSNs denied. Every statement
below must run through the agent for her without an error, whether it is an ORM's query, a
report, pagination, or a metadata query of psql, DBeaver or pgAdmin; masked columns come
back masked. A refusal of any of them fails the suite.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest

from tests.agent.conftest import bundle_document
from tests.agent.wire import EMAIL, run

# Django ORM (as django.db.backends.postgresql spells them).
DJANGO = [
    'SELECT "customers"."id", "customers"."name", "customers"."score" FROM "customers" '
    'WHERE "customers"."id" = 1 LIMIT 21',
    'SELECT COUNT(*) AS "__count" FROM "customers"',
    'SELECT (1) AS "a" FROM "customers" WHERE "customers"."score" > 100 LIMIT 1',
    'SELECT "customers"."id", "customers"."name" FROM "customers" ORDER BY "customers"."name" '
    'ASC, "customers"."id" DESC LIMIT 20 OFFSET 40',
    'SELECT "customers"."id", "customers"."name" FROM "customers" WHERE '
    'UPPER("customers"."name"::text) LIKE UPPER(\'%ada%\')',
    'SELECT "customers"."id", "customers"."name" FROM "customers" WHERE "customers"."name"::text '
    "LIKE 'Grace%'",
    'SELECT "orders"."id", "orders"."customer_id", "orders"."amount", "orders"."note" FROM '
    '"orders" WHERE "orders"."customer_id" IN (1, 2, 3)',
    'SELECT "orders"."id", "orders"."amount", "customers"."id", "customers"."name" FROM "orders" '
    'INNER JOIN "customers" ON ("orders"."customer_id" = "customers"."id") WHERE '
    '"orders"."amount" > 10',
    'SELECT SUM("orders"."amount") AS "amount__sum", AVG("orders"."amount") AS "amount__avg" '
    'FROM "orders"',
    'SELECT "customers"."id", "customers"."name", COUNT("orders"."id") AS "n" FROM "customers" '
    'LEFT OUTER JOIN "orders" ON ("customers"."id" = "orders"."customer_id") GROUP BY '
    '"customers"."id" ORDER BY "n" DESC LIMIT 5',
    'SELECT "customers"."id", "customers"."email" FROM "customers" WHERE "customers"."email" = '
    "'ada.8@example.com' LIMIT 21",
    'SELECT "customers"."id" FROM "customers" WHERE "customers"."email" IN '
    "('ada.8@example.com', 'grace.1@example.com')",
    'SELECT "customers"."id", "customers"."name", "customers"."email", "customers"."phone", '
    '"customers"."card", "customers"."birth_date", "customers"."score" FROM "customers" '
    'ORDER BY "customers"."id" ASC LIMIT 10',
    'SELECT DISTINCT "customers"."name" FROM "customers" ORDER BY "customers"."name" ASC',
    'UPDATE "customers" SET "score" = 10 WHERE "customers"."id" = 1',
    'SELECT "customers"."id" FROM "customers" WHERE ("customers"."score" >= 100 AND '
    '"customers"."score" <= 200)',
    'SELECT "customers"."id" FROM "customers" WHERE "customers"."score" IS NULL',
    'SELECT EXISTS(SELECT 1 AS "a" FROM "orders" WHERE "orders"."customer_id" = 3 LIMIT 1)',
]
# SQLAlchemy Core / ORM (psycopg dialect; parameters bound by the driver).
SQLALCHEMY = [
    ("SELECT customers.id, customers.name FROM customers WHERE customers.id = %s", (1,)),
    (
        "SELECT customers.id, customers.name, customers.score FROM customers "
        "ORDER BY customers.id LIMIT %s OFFSET %s",
        (10, 20),
    ),
    ("SELECT count(*) AS count_1 FROM (SELECT customers.id FROM customers) AS anon_1", None),
    ("SELECT customers.id FROM customers WHERE customers.email = %s", ("ada.8@example.com",)),
    (
        "SELECT customers.id FROM customers WHERE customers.email = ANY(%s)",
        (["ada.8@example.com", "x@example.com"],),
    ),
    (
        "SELECT orders.customer_id, sum(orders.amount) AS total FROM orders "
        "GROUP BY orders.customer_id HAVING sum(orders.amount) > %s ORDER BY total DESC",
        (10,),
    ),
    (
        "SELECT customers.name, orders.amount FROM customers JOIN orders ON customers.id = "
        "orders.customer_id WHERE orders.amount BETWEEN %s AND %s",
        (5, 50),
    ),
    (
        "SELECT customers.id, customers.name FROM customers WHERE customers.name ILIKE %s "
        "ORDER BY customers.name",
        ("%lin%",),
    ),
    ("SELECT customers.email FROM customers WHERE customers.id IN (%s, %s)", (1, 2)),
    (
        "INSERT INTO scratch (id, v) VALUES (%s, %s) RETURNING scratch.id",
        (1, "x"),
    ),
    ("DELETE FROM scratch WHERE scratch.id = %s", (1,)),
    (
        "SELECT anon_1.id, anon_1.name FROM (SELECT customers.id AS id, customers.name AS name, "
        "row_number() OVER (ORDER BY customers.score DESC) AS rn FROM customers) AS anon_1 "
        "WHERE anon_1.rn <= %s",
        (3,),
    ),
]
# Reports and everyday hand-written SQL.
EVERYDAY = [
    "SELECT email FROM customers WHERE id = 1",
    "SELECT card, phone, birth_date FROM customers WHERE id = 2",
    'SELECT name, "Secret Note" FROM customers ORDER BY id LIMIT 3',
    "SELECT * FROM orders ORDER BY id LIMIT 5",
    "SELECT id, name, email, phone FROM customers ORDER BY id LIMIT 5",
    "SELECT count(*) FROM customers",
    "SELECT count(*) FROM customers WHERE score > 250",
    "SELECT count(*), min(score), max(score), avg(score), sum(score) FROM customers",
    "SELECT customer_id, count(*), sum(amount) FROM orders GROUP BY customer_id ORDER BY 1",
    "SELECT c.name, o.amount FROM customers c JOIN orders o ON o.customer_id = c.id "
    "WHERE o.amount > 20 ORDER BY o.amount DESC LIMIT 10",
    "SELECT c.id, c.email FROM customers c JOIN orders o ON o.customer_id = c.id "
    "WHERE o.note = 'order 4'",
    "SELECT name FROM customers WHERE name LIKE 'Ada%' ORDER BY name",
    "SELECT id, name FROM customers WHERE id BETWEEN 10 AND 20 ORDER BY id",
    "SELECT id, name FROM customers ORDER BY score DESC, id LIMIT 10 OFFSET 10",
    "SELECT id FROM customers WHERE id > 10 ORDER BY id FETCH FIRST 5 ROWS ONLY",
    "SELECT score / 10 AS bucket, count(*) FROM customers GROUP BY 1 ORDER BY 1",
    "SELECT id, name, rank() OVER (ORDER BY score DESC) FROM customers LIMIT 5",
    "SELECT id, sum(amount) OVER (PARTITION BY customer_id) FROM orders LIMIT 5",
    "WITH big AS (SELECT customer_id FROM orders WHERE amount > 30) "
    "SELECT count(*) FROM customers WHERE id IN (SELECT customer_id FROM big)",
    "SELECT id, name FROM customers WHERE EXISTS (SELECT 1 FROM orders WHERE "
    "orders.customer_id = customers.id AND amount > 60)",
    "SELECT name FROM customers UNION SELECT note FROM orders ORDER BY 1 LIMIT 5",
    "SELECT id, email FROM customers UNION ALL SELECT id, email FROM archive.customers LIMIT 4",
    "SELECT DISTINCT customer_id FROM orders ORDER BY 1 LIMIT 5",
    "SELECT id, upper(email), length(email) FROM customers WHERE id < 4",
    "SELECT t.id FROM (SELECT id, name AS n, email FROM customers) t WHERE t.n LIKE 'Ada%'",
    "WITH t AS (SELECT id, email FROM customers) SELECT id, email FROM t WHERE id < 5",
    "SELECT id, name FROM public_names WHERE id = 3",
    "SELECT id, name FROM public_names ORDER BY name LIMIT 3",
    "SELECT * FROM customer_contacts LIMIT 3",
    "SELECT id FROM customers WHERE email = 'ada.8@example.com'",
    "SELECT id, name FROM customers WHERE email IN ('ada.8@example.com', 'x@y.z') AND score > 0",
    "EXPLAIN SELECT id, email FROM customers WHERE id = 1",
    "BEGIN",
    "SELECT 1",
    "COMMIT",
    "SET search_path TO public",
    "SHOW search_path",
    "SELECT now(), current_user, current_database(), version()",
    "CREATE TEMP TABLE tmp_ids AS SELECT id, name FROM customers WHERE score > 100",
    "SELECT count(*) FROM tmp_ids",
    "INSERT INTO scratch VALUES (2, 'two')",
    "UPDATE scratch SET v = 'deux' WHERE id = 2",
    "DELETE FROM scratch WHERE id = 2",
    "SELECT id, score FROM customers WHERE score IS NOT NULL ORDER BY score DESC LIMIT 1",
]
# DBeaver and pgAdmin metadata queries (the shapes they send when a connection opens and a
# table is browsed).
GUI_TOOLS = [
    "SELECT current_schema(), session_user",
    "SELECT n.oid, n.*, d.description FROM pg_catalog.pg_namespace n LEFT OUTER JOIN "
    "pg_catalog.pg_description d ON d.objoid = n.oid AND d.objsubid = 0 AND d.classoid = "
    "'pg_namespace'::regclass ORDER BY nspname",
    "SELECT c.oid, c.*, d.description, pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS "
    "partition_expr FROM pg_catalog.pg_class c LEFT OUTER JOIN pg_catalog.pg_description d "
    "ON d.objoid = c.oid AND d.objsubid = 0 AND d.classoid = 'pg_class'::regclass "
    "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind NOT IN ('i', 'I', 'c')",
    "SELECT c.relname, a.*, pg_catalog.pg_get_expr(ad.adbin, ad.adrelid, true) AS def_value, "
    "dsc.description FROM pg_catalog.pg_attribute a INNER JOIN pg_catalog.pg_class c ON "
    "(a.attrelid = c.oid) LEFT OUTER JOIN pg_catalog.pg_attrdef ad ON (a.attrelid = "
    "ad.adrelid AND a.attnum = ad.adnum) LEFT OUTER JOIN pg_catalog.pg_description dsc ON "
    "(c.oid = dsc.objoid AND a.attnum = dsc.objsubid) WHERE NOT a.attisdropped AND "
    "c.relname = 'customers' ORDER BY a.attnum",
    "SELECT i.*, c.relname, pg_catalog.pg_get_indexdef(i.indexrelid) FROM pg_catalog.pg_index "
    "i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = "
    "'public.customers'::regclass",
    "SELECT c.oid, c.*, pg_catalog.pg_get_constraintdef(c.oid, true) AS consrc FROM "
    "pg_catalog.pg_constraint c WHERE c.conrelid = 'public.orders'::regclass",
    "SELECT t.oid, t.*, c.relkind FROM pg_catalog.pg_type t LEFT OUTER JOIN "
    "pg_catalog.pg_class c ON c.oid = t.typrelid WHERE typnamespace = "
    "'pg_catalog'::regnamespace AND t.typtype <> 'c' LIMIT 20",
    "SELECT db.oid, db.datname, pg_catalog.pg_encoding_to_char(db.encoding) FROM "
    "pg_catalog.pg_database db WHERE datallowconn ORDER BY datname",
    "SELECT r.oid, r.rolname, r.rolsuper, r.rolcanlogin FROM pg_catalog.pg_roles r "
    "ORDER BY r.rolname",
    "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
    "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
    "SELECT table_schema, table_name, table_type FROM information_schema.tables "
    "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2",
    "SELECT name, setting FROM pg_catalog.pg_settings WHERE name IN "
    "('server_version', 'TimeZone', 'DateStyle')",
    "SELECT e.extname, e.extversion FROM pg_catalog.pg_extension e ORDER BY 1",
    "SELECT nsp.nspname, rel.relname, rel.reltuples::bigint FROM pg_catalog.pg_class rel JOIN "
    "pg_catalog.pg_namespace nsp ON nsp.oid = rel.relnamespace WHERE rel.relkind = 'r' AND "
    "nsp.nspname = 'public' ORDER BY rel.relname",
    "SELECT pg_catalog.pg_get_viewdef('public.customer_contacts'::regclass, true)",
    "SELECT proname, pg_catalog.pg_get_function_arguments(p.oid) FROM pg_catalog.pg_proc p "
    "WHERE p.pronamespace = 'public'::regnamespace",
    "SELECT pg_catalog.pg_size_pretty(pg_catalog.pg_total_relation_size('public.customers'))",
    "SELECT has_table_privilege('public.customers', 'SELECT')",
]
# psql meta-commands, run by the real psql binary (each sends one or more catalog queries).
PSQL_COMMANDS = [
    r"\dt",
    r"\d customers",
    r"\d+ orders",
    r"\dn",
    r"\dv",
    r"\di",
    r"\ds",
    r"\df",
    r"\du",
    r"\l",
    r"\dx",
    r"\dT",
    r"\dp customers",
    r"\d customer_contacts",
]
UTILITY_COUNT = len(DJANGO) + len(SQLALCHEMY) + len(EVERYDAY) + len(GUI_TOOLS) + len(PSQL_COMMANDS)


@pytest.fixture
def lookup_agent(agent_factory: Any, control_plane: Any) -> Any:
    """The test bundle with exact lookups allowed on the analysts' e-mail rule."""
    bundle = bundle_document()
    for rule in bundle["rules"]:
        if rule["name"] == "analysts see email domains":
            rule["allow_exact_lookups"] = True
    control_plane.set_bundle(bundle)
    return agent_factory()


def test_the_utility_suite_has_at_least_80_statements() -> None:
    assert UTILITY_COUNT >= 80, UTILITY_COUNT


@pytest.mark.parametrize(
    "group", ["django", "sqlalchemy", "everyday", "gui_tools"], ids=lambda name: name
)
def test_everyday_statements_run_for_a_masked_identity(lookup_agent: Any, group: str) -> None:
    statements: list[tuple[str, Any]] = {
        "django": [(sql, None) for sql in DJANGO],
        "sqlalchemy": SQLALCHEMY,
        "everyday": [(sql, None) for sql in EVERYDAY],
        "gui_tools": [(sql, None) for sql in GUI_TOOLS],
    }[group]
    refused = []
    with lookup_agent.connect("alice") as conn:
        for sql, params in statements:
            outcome = run(conn, sql, params=params) if params else run(conn, sql)
            if outcome.error is not None:
                refused.append(f"{sql!r}: {outcome!r}")
            else:
                leaked = [v for row in outcome.rows or () for v in row if EMAIL.fullmatch(str(v))]
                assert not leaked, f"{sql!r} returned e-mails in clear: {leaked[:2]}"
    assert not refused, f"{len(refused)} of {len(statements)} refused:\n" + "\n".join(refused)


def test_masked_columns_come_back_masked_not_refused(lookup_agent: Any) -> None:
    with lookup_agent.connect("alice") as conn:
        row = conn.execute(
            "SELECT email, card, phone, birth_date FROM customers WHERE id = 1"
        ).fetchone()
    assert row is not None
    email, card, phone, birth = row
    assert email.startswith("****@") and card.endswith("1001") and "1111-1111" not in card
    assert phone.endswith("1001") and "(555)" not in phone
    assert str(birth).endswith("-01-01")


def test_exact_lookup_finds_the_customer_and_is_audited_as_a_lookup(
    lookup_agent: Any, control_plane: Any, wait: Any
) -> None:
    with lookup_agent.connect("alice") as conn:
        found = conn.execute(
            "SELECT id, email FROM customers WHERE email = %s", ("ada.8@example.com",)
        ).fetchall()
    assert found == [(8, "****@example.com")]
    lookup_agent.flush_audit()

    def lookup_events() -> list[dict[str, Any]]:
        return [
            event
            for event in list(control_plane.events.values())
            if event["rule"].startswith("lookup:") and "public.customers.email" in event["rule"]
        ]

    wait(lookup_events)
    assert lookup_events()[0]["identity"] == "alice"


def test_lookups_are_refused_when_the_rule_does_not_allow_them(agent: Any) -> None:
    with agent.connect("alice") as conn:
        outcome = run(conn, "SELECT id FROM customers WHERE email = 'ada.8@example.com'")
    assert outcome.sqlstate == "42501"
    assert "customers.email cannot be used in WHERE" in str(outcome.error)


def test_psql_meta_commands_run_for_a_masked_identity(lookup_agent: Any) -> None:
    failed = []
    env = {**os.environ, "PGPASSWORD": "wdn_alice", "PGSSLMODE": "disable"}
    for command in PSQL_COMMANDS:
        result = subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-p",
                str(lookup_agent.port),
                "-U",
                "alice",
                "-d",
                "shop",
                "-X",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                command,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
        )
        if result.returncode != 0 or "ERROR" in result.stderr:
            failed.append(f"{command}: {result.stderr.strip()[:300]}")
    assert not failed, "\n".join(failed)
