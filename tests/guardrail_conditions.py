"""Conditions that hold for every row of a table with an integer ``id`` (1..5) and a text
``v`` ('a'..'e'), written alike in PostgreSQL and MySQL: both agents' "without WHERE"
guardrails must read each one as no WHERE (tests/agent/test_redteam_guardrails.py,
tests/agent_mysql/test_mysql_guardrail_meaning.py).  Each suite adds its dialect's own."""

EVERY_ROW_BOTH_DIALECTS = [
    "1 = 1",
    "true",
    "NOT false",
    "2 > 1",
    "'a' = 'a'",
    "1 = 1 AND 2 = 2",
    "id = id",
    "id IN (id)",
    "id BETWEEN id AND id",
    "true OR id = 5",
    "id = 5 OR 1 = 1",
    "id = 5 OR now() > '2000-01-01'",
    "id IS NULL OR id IS NOT NULL",
    "id = 3 OR NOT id = 3",
    "(id = 3) IS TRUE OR (id = 3) IS NOT TRUE",
    "v LIKE '%'",
    "NOT (id <> id)",
    "CASE WHEN id = 1 THEN true ELSE true END",
    "coalesce(id = id, true)",
    "EXISTS (SELECT 1)",
    "EXISTS (SELECT 1 FROM orders)",
    "(SELECT true)",
    "length('x') > 0",
    "current_user IS NOT NULL",
]
