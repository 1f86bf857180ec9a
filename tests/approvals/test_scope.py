"""The scope of a held statement comes from the agent's SQL analyser, resolved in the catalog."""

from __future__ import annotations

import pytest

from agent.postgres.sql import analyze
from approvals.impact import statement_explain
from approvals.scope import StatementError, scope_from_statement, statement_touches

pytestmark = pytest.mark.django_db


def _columns(touched: dict) -> list[str]:
    return [entry["column"] for entry in touched["columns"]]


def test_only_the_columns_a_statement_uses_are_touched_with_their_tags(shop):
    touched = statement_touches(datasource=shop, sql="SELECT c.email FROM customers c")
    assert touched["kind"] == "select" and touched["tables"] == ["public.customers"]
    assert _columns(touched) == ["public.customers.email"]
    assert touched["tags"] == ["PII.Email"]


def test_a_column_is_touched_only_in_the_table_it_belongs_to(shop):
    sql = "SELECT o.total FROM orders o JOIN customers c ON c.id = o.id"
    touched = statement_touches(datasource=shop, sql=sql)
    assert touched["tables"] == ["public.customers", "public.orders"]
    assert _columns(touched) == ["public.customers.id", "public.orders.id", "public.orders.total"]
    assert touched["tags"] == []


def test_a_star_touches_every_column_and_a_subquery_is_seen_through(shop):
    star = statement_touches(datasource=shop, sql="SELECT * FROM public.customers")
    assert _columns(star) == [
        "public.customers.id",
        "public.customers.email",
        "public.customers.full_name",
    ]
    derived = statement_touches(
        datasource=shop, sql="SELECT x FROM (SELECT full_name AS x FROM customers) s"
    )
    assert _columns(derived) == ["public.customers.full_name"]
    assert derived["tags"] == ["PII.PersonName"]


def test_a_cte_named_like_a_catalog_table_touches_nothing_as_the_agent_reads_it(shop):
    sql = "WITH customers AS (SELECT 1 AS email) SELECT email FROM customers"
    assert analyze(sql).relations == set()
    touched = statement_touches(datasource=shop, sql=sql)
    assert touched["tables"] == [] and touched["columns"] == []


def test_writes_are_touched_and_give_the_requested_tables(shop):
    sql = "UPDATE customers SET full_name = 'x' WHERE id = 1"
    touched = statement_touches(datasource=shop, sql=sql)
    assert touched["kind"] == "update"
    assert _columns(touched) == ["public.customers.id", "public.customers.full_name"]
    assert scope_from_statement(datasource=shop, sql=sql) == {
        "tables": ["public.customers"],
        "columns": [],
        "tags": [],
    }


def test_several_statements_or_no_sql_are_refused_with_a_reason(shop):
    with pytest.raises(StatementError, match="one statement"):
        statement_touches(datasource=shop, sql="SELECT 1; SELECT 2")
    with pytest.raises(StatementError, match="Not a PostgreSQL statement"):
        statement_touches(datasource=shop, sql="SELEKT email FROM customers")


def test_a_statement_without_a_plan_is_not_explained(shop):
    assert statement_explain(datasource=shop, sql="CREATE TABLE t (a int)") == {
        "error": "A ddl statement has no plan to estimate."
    }
