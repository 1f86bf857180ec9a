"""The red-team statement corpus: probes that tried to read restricted values through the
agent (output expressions, error messages, views, field notation, inference through
clauses, private catalogs, guardrail tautologies), shared by the red-team suites that check
each one and by the native-vs-Python differential test.  A probe is a statement, or a tuple
whose first item is the statement (the rest is what its suite expects)."""

from tests import guardrail_conditions

LEAK_ATTEMPTS = [
    "SELECT email || '' FROM customers",
    "SELECT upper(email) FROM customers",
    "SELECT lower(upper(email)) AS e FROM customers",
    "SELECT email::text FROM customers",
    "SELECT CAST(email AS varchar(200)) FROM customers",
    "SELECT (SELECT email FROM customers LIMIT 1)",
    "SELECT id, (SELECT c2.email FROM customers c2 WHERE c2.id = c.id) FROM customers c",
    "WITH x AS (SELECT email AS e FROM customers) SELECT e FROM x",
    "WITH x AS (SELECT upper(email) AS e FROM customers) SELECT * FROM x",
    "SELECT row_to_json(c) FROM customers c",
    "SELECT row_to_json(c.*) FROM customers c",
    "SELECT to_jsonb(c) FROM customers c",
    "SELECT c FROM customers c",
    "SELECT c::text FROM customers c",
    "SELECT customers FROM customers",
    "SELECT json_agg(email) FROM customers",
    "SELECT json_agg(c) FROM customers c",
    "SELECT string_agg(email, ',') FROM customers",
    "SELECT array_agg(email)::text FROM customers",
    "SELECT * FROM customer_contacts",
    "SELECT email FROM customer_contacts",
    "SELECT upper(email) FROM customer_contacts",
    "SELECT v FROM customer_contacts v",
    "SELECT name FROM customers UNION ALL SELECT email FROM customers",
    "SELECT email FROM customers UNION SELECT 'x'",
    "SELECT x.e FROM customers c, LATERAL (SELECT c.email AS e) x",
    "SELECT format('%s', email) FROM customers",
    "SELECT concat(name, email) FROM customers",
    "SELECT replace(email, '@', ' at ') FROM customers",
    "SELECT substr(email, 1, 100) FROM customers",
    "SELECT CASE WHEN true THEN email END FROM customers",
    "SELECT coalesce(email, 'x') FROM customers",
    "SELECT e FROM (SELECT email AS e FROM customers) s",
    "SELECT s.* FROM (SELECT upper(email) FROM customers) s",
    "SELECT ROW(email)::text FROM customers",
    "SELECT (c).email FROM customers c",
    "SELECT unnest(array[email]) FROM customers",
    "SELECT jsonb_build_object('e', email) FROM customers",
    'SELECT "email" FROM "public"."customers"',
    "SELECT email FROM public.customers",
    "SELECT email FROM archive.customers",
    "SELECT upper(email) FROM archive.customers",
    "SELECT query_to_xml('select email from customers', true, false, '')",
    "SELECT table_to_xml('customers', true, false, '')",
    "SELECT * FROM json_populate_record(null::customers, (SELECT row_to_json(c) FROM customers c "
    "LIMIT 1))",
    "SELECT email FROM customers WHERE id IN (SELECT id FROM customers) ORDER BY email",
    "SELECT t.email FROM customers AS t",
    "SELECT max(email) FROM customers",
    'SELECT email COLLATE "C" FROM customers',
    "SELECT regexp_replace(email, 'x', 'y') FROM customers",
    "SELECT e FROM customers c(i, n, e)",
    "SELECT upper(e) FROM customers c(i, n, e)",
    "SELECT upper(c.e) FROM customers AS c(i, n, e)",
    "VALUES ((SELECT email FROM customers LIMIT 1))",
    "SELECT xmlelement(name x, email) FROM customers",
    "SELECT array(SELECT email FROM customers)",
    "SELECT email FROM ONLY customers",
    "SELECT (customers).email FROM customers",
    "WITH RECURSIVE r(e) AS (SELECT email FROM customers UNION SELECT e FROM r) SELECT * FROM r",
    "SELECT DISTINCT ON (email) email FROM customers",
    "SELECT string_agg(x, ',') FROM (SELECT email AS x FROM customers) s",
    "SELECT lead(email) OVER () FROM customers",
    "SELECT (array_agg(email))[1] FROM customers",
    "SELECT encode(email::bytea, 'hex') FROM customers",
    "SELECT x FROM customers, unnest(ARRAY[email]) AS u(x)",
    "SELECT jsonb_path_query(to_jsonb(c), '$.email') FROM customers c",
    "SELECT domain FROM contact_domains",
    "TABLE customer_contacts",
    "SELECT t.x FROM (SELECT * FROM customers) t(x)",
]

FIELD_NOTATION = [
    'SELECT c."row_to_json" FROM customers c WHERE id = 1',
    'SELECT "c"."to_jsonb" FROM customers "c" WHERE id = 1',
    'SELECT "public"."customers"."to_json" FROM public.customers WHERE id = 1',
    "SELECT (c).row_to_json FROM customers c WHERE id = 1",
    "SELECT (customers).to_json FROM customers WHERE id = 1",
    "SELECT ((c)).json_build_array FROM customers c WHERE id = 1",
    "SELECT c.jsonb_build_array FROM customers c WHERE id = 1",
    "SELECT c.row_to_json FROM ONLY customers c WHERE id = 1",
    "SELECT c.row_to_json FROM customers* c WHERE id = 1",
    "SELECT x.row_to_json FROM (SELECT id, email FROM archive.customers) x",
    "WITH x AS (SELECT id, email FROM archive.customers) SELECT x.row_to_json FROM x",
    "SELECT x.to_json FROM customers c, LATERAL (SELECT c.email) x",
    "SELECT t.c FROM customers c CROSS JOIN LATERAL (SELECT c.card) t(c)",
    "SELECT array(SELECT c.row_to_json FROM archive.customers c LIMIT 1)",
    "SELECT string_to_array(c.row_to_json::text, ',') FROM archive.customers c",
    "SELECT regexp_matches(c.to_json::text, '[a-z.0-9]+@[a-z.]+') FROM archive.customers c",
    "SELECT * FROM archive.customers a TABLESAMPLE SYSTEM (100)",
    "SELECT email FROM archive.customers TABLESAMPLE BERNOULLI (100) REPEATABLE (1)",
    "SELECT max(email) OVER (ORDER BY id ROWS BETWEEN CURRENT ROW AND CURRENT ROW) FROM customers",
    "SELECT email, GROUPING(email) FROM customers GROUP BY ROLLUP (email)",
    "SELECT grouping(id), email FROM customers GROUP BY CUBE (id, email) LIMIT 5",
    "SELECT * FROM ROWS FROM (string_to_array((SELECT email FROM customers LIMIT 1), '@'))",
    "SELECT x FROM customers, regexp_matches(email, '(.*)') x",
    "SELECT x FROM customers, LATERAL unnest(string_to_array(email, '.')) x",
    "SELECT e FROM xmltable('/r' PASSING (SELECT xmlelement(name r, email) FROM customers "
    "LIMIT 1) COLUMNS e text PATH '.')",
    "SELECT x FROM customers, xmltable('/r' PASSING xmlelement(name r, card) "
    "COLUMNS x text PATH '.')",
    "SELECT j.* FROM customers, json_each_text(json_build_object('e', email)) j",
    "SELECT v FROM customers c, LATERAL (VALUES (c.email)) v(v)",
    "SELECT * FROM (SELECT email FROM customers) s(e) WHERE e IS NOT NULL",
]

SHADOWED_FIELD_NOTATION = [
    "SELECT c.row_to_json FROM customers c WHERE id = 1",
    "SELECT customers.to_jsonb FROM customers WHERE id = 1",
    "SELECT id, c.to_jsonb FROM customers c ORDER BY id LIMIT 2",
    "SELECT c.to_jsonb->>'card' FROM customers c WHERE id = 1",
]

VIEW_ERROR_ORACLES = [
    # customer_contacts is a view (not in the bundle) reading customers.email: used only in
    # a predicate, nothing is "masked", the view is no bundle table: touches_restricted off.
    "SELECT id FROM customer_contacts WHERE email::int = 1",
    "SELECT id FROM customer_contacts ORDER BY email::int",
    "SELECT count(*) FROM customer_contacts GROUP BY email::numeric",
    "SELECT id FROM customer_contacts WHERE email::uuid IS NOT NULL",
    "SELECT 1 FROM customer_contacts c WHERE EXISTS (SELECT 1 WHERE c.email::date > now())",
    # contact_domains (split_part(email, '@', 2)) is no probe: unrestricted its error quotes
    # only the domain, which alice's e-mail mask shows anyway (it read no secret).
]

SAFE_OUTPUT = [
    # birth_date masked to the year: every other spelling of it is derived (redacted).
    "SELECT birth_date::text FROM customers",
    "SELECT birth_date::varchar FROM customers",
    "SELECT to_char(birth_date, 'YYYY-MM-DD') FROM customers",
    "SELECT extract(doy FROM birth_date), extract(month FROM birth_date) FROM customers",
    "SELECT date_trunc('day', birth_date) FROM customers",
    "SELECT age(birth_date), age(date '2000-01-01', birth_date)::text FROM customers",
    "SELECT birth_date - date '1900-01-01' FROM customers",
    "SELECT birth_date + 0 FROM customers",
    "SELECT birth_date::timestamp FROM customers",
    "SELECT make_date(2000, extract(month FROM birth_date)::int, 1) FROM customers",
    # Aggregates and group keys.
    "SELECT min(birth_date), max(email), min(card) FROM customers",
    "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY birth_date) FROM customers",
    "SELECT mode() WITHIN GROUP (ORDER BY card) FROM customers",
    "SELECT email, count(*) FROM customers GROUP BY email",
    "SELECT birth_date, count(*) FROM customers GROUP BY 1",
    "SELECT DISTINCT ON (email) email, birth_date FROM customers",
    'SELECT "Secret Note", count(*) FROM customers GROUP BY "Secret Note"',
    # Set-returning functions over masked columns.
    "SELECT unnest(ARRAY[email, card]) FROM customers",
    "SELECT regexp_split_to_table(email, '') FROM customers WHERE id = 1",
    "SELECT string_to_table(card, '-') FROM customers WHERE id = 1",
    "SELECT * FROM customers c, regexp_split_to_table(c.email, '@') p",
    "SELECT generate_subscripts(ARRAY[email], 1), ARRAY[email] FROM customers",
    # Inheritance spellings and system columns.
    "SELECT tableoid::regclass, email, birth_date FROM ONLY customers",
    "SELECT ctid, xmin, * FROM customers",
    # CASE as a value: derived, redacted (in a filter it is a known, allowed channel).
    "SELECT CASE WHEN email LIKE 'grace%' THEN email END FROM customers",
    "SELECT CASE id WHEN 1 THEN card ELSE 'x' END FROM customers",
    "SELECT COALESCE(\"Secret Note\", '') FROM customers",
]

ERROR_ORACLES = [
    "SELECT email::int FROM customers",
    "SELECT id FROM customers WHERE email::int = 1",
    "SELECT id FROM customers WHERE id = 1 AND email::numeric > 0",
    "SELECT count(*) FROM customers GROUP BY email::bigint",
    "SELECT id FROM customers ORDER BY email::int",
    "SELECT card::int FROM customers",
    "SELECT phone::int FROM customers",
    'SELECT "Secret Note"::int FROM customers',
    "SELECT email::uuid FROM customers",
    "SELECT email::inet FROM customers",
    "SELECT email::date FROM customers",
    "SELECT email::jsonb FROM customers",
    "SELECT xmlparse(document email) FROM customers",
    "SELECT email::regclass FROM customers",
    "SELECT to_timestamp(email, 'YYYY') FROM customers",
    "SELECT id FROM customers WHERE email::bool",
    "SELECT nextval(email) FROM customers",
    "EXPLAIN ANALYZE SELECT email::int FROM customers",
    "SELECT email::int FROM archive.customers",
    "SELECT id FROM customers c WHERE EXISTS (SELECT 1 WHERE c.card::int > 0)",
    # The NOT NULL violation's DETAIL "Failing row contains (...)" prints the whole row,
    # SSN and card included; the statement only names the unrestricted column "name".
    "UPDATE customers SET name = NULL WHERE id = 1",
    "UPDATE customers SET name = NULL WHERE id = 2 RETURNING id",
    "SELECT birth_date::text::int FROM customers",
]

OUTPUT_LEAKS = [
    # Field notation for a function of the whole row: `c.row_to_json` == row_to_json(c).
    # The analyser sees a column "row_to_json" of customers that the bundle does not know.
    "SELECT c.row_to_json FROM customers c",
    "SELECT c.to_jsonb FROM customers c",
    "SELECT customers.to_json FROM customers",
    "SELECT c.json_build_array FROM customers c",
    "SELECT a.row_to_json FROM archive.customers a",
    "SELECT public.customers.to_jsonb FROM public.customers",
    # FULL JOIN USING: the merged column is COALESCE(l.email, r.email): bare in the select
    # list (so "output", left to the origin check) but RowDescription names no origin.
    "SELECT email FROM customers a FULL JOIN customers b USING (email)",
    "SELECT email FROM customers NATURAL FULL JOIN archive.customers",
    "SELECT email, id FROM customers FULL OUTER JOIN archive.customers USING (id, email)",
    # Output positions shifted by a composite expansion that is not a ColumnRef star.
    "SELECT (pg_control_system()).*, upper(email) FROM customers",
    "SELECT (NULL::scratch).*, upper(email) FROM customers",
    "SELECT (NULL::scratch).*, email || '' FROM customers",
    # RETURNING positions of a data-modifying CTE reused for the outer select list.
    "WITH u AS (UPDATE customers SET score = score WHERE id = 1 RETURNING id, upper(email) AS e)"
    " SELECT e, id FROM u",
    "WITH u AS (UPDATE customers SET score = score WHERE id < 5 RETURNING 1 AS one, "
    "email AS e) SELECT e || '' FROM u",
    # Built-in functions that run SQL given as text (ts_stat) are not in OPAQUE_FUNCTIONS.
    "SELECT word FROM ts_stat('SELECT to_tsvector(''simple'', email) FROM customers')",
    "SELECT word FROM ts_stat('SELECT to_tsvector(''simple'', ssn) FROM customers')",
    "SELECT word FROM ts_stat('SELECT to_tsvector(''simple'', card) FROM customers')",
]

# Probes that held when tried (kept: the existing suite does not cover them).
OUTPUT_PROBES_EXPECTED_SAFE = [
    "SELECT email FROM customers GROUP BY GROUPING SETS ((email), ())",
    "SELECT upper(email) FROM customers GROUP BY ROLLUP (email)",
    "SELECT email FROM customers a LEFT JOIN archive.customers b USING (email)",
    "SELECT email FROM customers a RIGHT JOIN archive.customers b USING (email)",
    "SELECT upper(email) FROM customers a JOIN archive.customers b USING (email)",
    "SELECT first_value(email) OVER w FROM customers WINDOW w AS (ORDER BY id)",
    "SELECT nth_value(upper(email), 2) OVER (ORDER BY id) FROM customers",
    "SELECT x FROM customers c CROSS JOIN LATERAL (SELECT c.email AS x) l",
    "SELECT j.* FROM customers c CROSS JOIN LATERAL "
    "jsonb_each_text(jsonb_build_object('e', c.email)) j",
    "SELECT (SELECT string_agg(e, ',') FROM (SELECT email AS e FROM customers) s)",
    "SELECT greatest(email, '') FROM customers",
    "SELECT nullif(email, 'x') FROM customers",
    "SELECT ROW(email) = ROW('x') , ROW(id, email)::text FROM customers",
    "SELECT to_json(ARRAY[email]) FROM customers",
    "SELECT jsonb_agg(jsonb_build_array(id, email)) FROM customers",
    "SELECT xmlagg(xmlelement(name e, email)) FROM customers",
    "SELECT xmlforest(email) FROM customers",
    "SELECT format('%I', email) FROM customers",
    "SELECT quote_literal(email) FROM customers",
    'SELECT U&"\\0065mail" FROM customers',
    'SELECT upper(U&"\\0065mail") FROM customers',
    "SELECT /* comment */ upper(/* x */ email) FROM customers -- trailing",
    "SELECT $q$x$q$ || email FROM customers",
    'SELECT upper("customers"."email") FROM "public"."customers"',
    "SELECT email FROM customers* ",
    "SELECT e FROM (TABLE archive.customers) t(i, e)",
    "SELECT (c).email || '' FROM archive.customers c",
    "SELECT (t.c).email FROM (SELECT c FROM archive.customers c) t",
    "WITH RECURSIVE r(n, e) AS (SELECT 1, email FROM archive.customers UNION ALL "
    "SELECT n + 1, e FROM r WHERE n < 2) SELECT e FROM r",
    "WITH x AS MATERIALIZED (SELECT id, email FROM archive.customers) SELECT email FROM x",
    "SELECT * FROM ROWS FROM (unnest(ARRAY(SELECT email FROM customers)))",
    "SELECT 'x' AS a, email FROM customers UNION ALL SELECT 'y', 'z' ORDER BY 2",
    "SELECT string_agg(email, ',' ORDER BY email) FILTER (WHERE id > 0) FROM customers",
    "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY email) FROM customers",
    "SELECT mode() WITHIN GROUP (ORDER BY email) FROM customers",
    "SELECT (SELECT max(e) FROM unnest(ARRAY[c.email]) e) FROM customers c",
    "SELECT array_to_string(array_agg(email), ',') FROM customers",
    "SELECT ARRAY[id::text, email] FROM customers",
    "SELECT email FROM customers INTERSECT SELECT email FROM archive.customers",
    "SELECT hashtext(email), md5(email) FROM customers",
    "SELECT * FROM (VALUES (1)) v(x), LATERAL (SELECT email FROM customers LIMIT 1) s",
    "SELECT json_object_agg(id, email) FROM customers",
    "SELECT c.email FROM customers c WHERE c.id = 1 FOR UPDATE",
    "SELECT * FROM archive.customers",
    "SELECT archive.customers.* FROM archive.customers",
]


# ---------------------------------------- inference (test_redteam_inference)
# (statement, clause named in the refusal); every one reads customers.email.
EMAIL_PROBES = [
    ("SELECT id FROM customers WHERE email LIKE 'ada%'", "WHERE"),
    ("SELECT id FROM customers WHERE email < 'm'", "WHERE"),
    ("SELECT id FROM customers WHERE email <> 'x@example.com'", "WHERE"),
    ("SELECT id FROM customers WHERE NOT (email = 'ada.8@example.com')", "WHERE"),
    ("SELECT id FROM customers WHERE email = 'ada.8@example.com' OR id = 1", "WHERE"),
    ("SELECT id FROM customers WHERE length(email) > 20", "WHERE"),
    ("SELECT id FROM customers WHERE email = name", "WHERE"),
    ("SELECT id FROM customers WHERE email ~ '^a'", "WHERE"),
    ("SELECT id FROM customers WHERE position('a' IN email) = 1", "WHERE"),
    ("SELECT id FROM customers WHERE email IS NOT NULL", "WHERE"),
    ("SELECT id FROM customers WHERE email IN (SELECT email FROM archive.customers)", "WHERE"),
    ("SELECT id FROM customers c WHERE EXISTS (SELECT 1 WHERE c.email LIKE 'a%')", "WHERE"),
    ("SELECT id FROM customers ORDER BY email", "ORDER BY"),
    ("SELECT id FROM customers ORDER BY email DESC LIMIT 1", "ORDER BY"),
    ("SELECT id, email FROM customers ORDER BY 2", "ORDER BY"),
    ("SELECT id, email AS e FROM customers ORDER BY e", "ORDER BY"),
    ("SELECT id FROM customers ORDER BY length(email), id", "ORDER BY"),
    ("SELECT count(*) FROM customers GROUP BY email", "GROUP BY"),
    ("SELECT count(*) FROM customers GROUP BY substr(email, 1, 1)", "GROUP BY"),
    ("SELECT count(*) FROM customers GROUP BY ROLLUP (email)", "GROUP BY"),
    ("SELECT 1 FROM customers HAVING max(email) > 'm'", "HAVING"),
    ("SELECT DISTINCT email FROM customers", "DISTINCT"),
    ("SELECT DISTINCT ON (email) id FROM customers", "DISTINCT ON"),
    ("SELECT id FROM customers LIMIT length((SELECT min(email) FROM customers))", "LIMIT"),
    ("SELECT id FROM customers OFFSET length((SELECT min(email) FROM customers))", "OFFSET"),
    ("SELECT id, row_number() OVER (ORDER BY email) FROM customers", "OVER"),
    ("SELECT id, count(*) OVER (PARTITION BY email) FROM customers", "OVER"),
    ("SELECT id, rank() OVER w FROM customers WINDOW w AS (ORDER BY email)", "WINDOW"),
    ("SELECT c.id FROM customers c JOIN archive.customers a ON a.email = c.email", "JOIN ON"),
    ("SELECT c.id FROM customers c JOIN orders o ON o.note < c.email", "JOIN ON"),
    ("SELECT c.id FROM customers c JOIN archive.customers a USING (email)", "JOIN USING"),
    ("SELECT id FROM customers NATURAL JOIN archive.customers", "NATURAL JOIN"),
    ("SELECT email FROM customers UNION SELECT 'ada.8@example.com'", "UNION"),
    ("SELECT email FROM customers INTERSECT SELECT email FROM archive.customers", "INTERSECT"),
    ("SELECT email FROM customers EXCEPT ALL SELECT 'x'", "EXCEPT ALL"),
    ("SELECT CASE WHEN email LIKE 'a%' THEN 1 ELSE 0 END FROM customers", "CASE"),
    ("SELECT CASE WHEN email LIKE 'zz%' THEN 1 / (id - id) END FROM customers", "CASE"),
    ("SELECT coalesce(nullif(email, 'ada.8@example.com'), 'hit') FROM customers", "COALESCE"),
    ("SELECT (email LIKE 'zz%') AND (1 / (id - id) = 1) FROM customers", "AND/OR"),
    ("SELECT 1 / (length(email) - 100) FROM customers", "the expression"),
    ("SELECT nullif(email, email)::int FROM customers", "a cast to int"),
    ("SELECT generate_series(1, length(email)) FROM customers", "generate_series"),
    ("SELECT unnest(string_to_array(email, '.')) FROM customers", "unnest"),
    ("SELECT substr('abcdefghijklmnopqrstuvwxyz', 1, length(email)) FROM customers", "substr"),
    ("SELECT split_part('a.b', '.', length(email)) FROM customers", "split_part"),
    ("SELECT regexp_matches(email, '^a') FROM customers", "regexp_matches"),
    ("SELECT count(*) FILTER (WHERE email LIKE 'a%') FROM customers", ""),
    ("SELECT c.id FROM customers c, LATERAL generate_series(1, length(c.email)) g", "FROM"),
    ("WITH e AS (SELECT id FROM customers WHERE email LIKE 'a%') SELECT id FROM e", "WHERE"),
    ("SELECT s.id FROM (SELECT id FROM customers ORDER BY email LIMIT 1) s", "ORDER BY"),
    ("SELECT (SELECT count(*) FROM customers WHERE email < 'm')", "WHERE"),
    ("SELECT id FROM customer_contacts WHERE email LIKE 'a%'", "WHERE"),
    ("SELECT count(*) FROM contact_domains GROUP BY domain", "GROUP BY"),
    ("EXPLAIN SELECT id FROM customers WHERE email < 'm'", "WHERE"),
    ("EXPLAIN ANALYZE SELECT id FROM customers WHERE email LIKE 'a%'", "WHERE"),
    ("UPDATE scratch SET v = 'x' WHERE id IN (SELECT id FROM customers WHERE email < 'm')", ""),
    ("DELETE FROM scratch USING customers c WHERE c.id = scratch.id AND c.email < 'm'", ""),
    (
        "UPDATE customers SET score = score WHERE email LIKE 'a%' RETURNING id",
        "WHERE",
    ),
    (
        "MERGE INTO scratch s USING customers c ON s.v = c.email WHEN MATCHED THEN DO NOTHING",
        "MERGE ON",
    ),
    ("SELECT c.id FROM customers c, LATERAL (SELECT 1 WHERE c.email LIKE 'ada%') x", "WHERE"),
    ("SELECT id FROM customers GROUP BY id, email HAVING email > 'm'", "GROUP BY"),
    ("SELECT id FROM customers LIMIT (SELECT length(email) FROM customers LIMIT 1)", "LIMIT"),
    ("SELECT id, upper(email) AS e FROM customers ORDER BY e DESC", "ORDER BY"),
    (
        "SELECT id FROM customers, generate_series(1, CASE WHEN email LIKE 'ada%' "
        "THEN 1 ELSE 0 END) g",
        "FROM",
    ),
    (
        "SELECT id FROM customers c JOIN LATERAL unnest(CASE WHEN c.email LIKE 'ada%' "
        "THEN ARRAY[1] END) u ON true",
        "FROM",
    ),
    ("PREPARE p_inf AS SELECT id FROM customers WHERE email < $1", "WHERE"),
    ("DECLARE c_inf CURSOR WITH HOLD FOR SELECT id FROM customers ORDER BY email", "ORDER BY"),
    # A derived table's or CTE's column stands for the expression behind it.
    ("SELECT t.id FROM (SELECT id, email AS e FROM customers) t WHERE t.e LIKE 'ada%'", "WHERE"),
    ("WITH t AS (SELECT id, email AS e FROM customers) SELECT id FROM t WHERE e > 'm'", "WHERE"),
    ("SELECT e FROM (SELECT email FROM customers) AS t(e) ORDER BY e LIMIT 1", "ORDER BY"),
    (
        "SELECT count(*) FROM (SELECT email AS e FROM customers) t "
        "JOIN (SELECT 'ada.8@example.com' AS e) k USING (e)",
        "JOIN USING",
    ),
    (
        "SELECT count(*) FROM customers c, LATERAL (SELECT c.email AS e) l WHERE l.e < 'm'",
        "WHERE",
    ),
    (
        "WITH u AS (UPDATE customers SET score = score WHERE id < 60 RETURNING id, email AS e) "
        "SELECT id FROM u WHERE e LIKE 'ada%'",
        "WHERE",
    ),
    (
        "SELECT s.id FROM (SELECT t.id, t.e FROM (SELECT id, email AS e FROM customers) t) s "
        "WHERE s.e LIKE 'ada%'",
        "WHERE",
    ),
]
NOTE_PROBES = [
    ("SELECT id FROM customers WHERE \"Secret Note\" = 'note 7'", "WHERE"),
    ('SELECT id FROM customers ORDER BY "Secret Note" LIMIT 1', "ORDER BY"),
    ('SELECT count(*) FROM customers GROUP BY "Secret Note"', "GROUP BY"),
    ("SELECT CASE WHEN \"Secret Note\" > 'note 5' THEN 1 END FROM customers", "CASE"),
]


# ---------------------------------------- private catalogs (test_redteam_catalogs)
ACTIVITY_PROBES = [
    ("SELECT query FROM pg_stat_activity", "pg_stat_activity"),
    ("SELECT * FROM pg_catalog.pg_stat_activity", "pg_stat_activity"),
    ("SELECT a.query FROM pg_stat_activity a WHERE a.pid <> pg_backend_pid()", "pg_stat_activity"),
    ("SELECT query FROM pg_stat_get_activity(NULL)", "pg_stat_get_activity()"),
    (
        "SELECT pg_stat_get_backend_activity(b) FROM pg_stat_get_backend_idset() b",
        "pg_stat_get_backend_activity()",
    ),
    (
        "WITH a AS (SELECT query FROM pg_stat_activity) SELECT string_agg(query, ',') FROM a",
        "pg_stat_activity",
    ),
]
CREDENTIAL_PROBES = [
    ("SELECT rolname, rolpassword FROM pg_authid", "pg_authid"),
    ("SELECT usename, passwd FROM pg_shadow", "pg_shadow"),
]
# Stored credentials: the test makes a user mapping and a subscription (not connected)
# with a password for the test, so each probe reads it unrestricted.
STORED_CREDENTIAL_PROBES = [
    ("SELECT * FROM pg_user_mappings", "pg_user_mappings"),
    ("SELECT umoptions FROM pg_user_mapping", "pg_user_mapping"),
    ("SELECT subconninfo FROM pg_subscription", "pg_subscription"),
]
# No control possible on this cluster (pg_stat_statements is not preloaded, no standby, no
# TLS client): refusal only.
REFUSAL_ONLY = [
    ("SELECT query FROM pg_stat_statements", "pg_stat_statements"),
    ("SELECT conninfo FROM pg_stat_wal_receiver", "pg_stat_wal_receiver"),
    ("SELECT client_dn FROM pg_stat_ssl", "pg_stat_ssl"),
]


# ---------------------------------------- guardrails (test_redteam_guardrails)
# Conditions that hold for every row of scratch (ids 1..5, v 'a'..'e').
EVERY_ROW = [
    *guardrail_conditions.EVERY_ROW_BOTH_DIALECTS,
    "'t'::boolean",
    "scratch.id >= scratch.id",
    "id IS NOT DISTINCT FROM id",
    "v ~ ''",
]
GUARDRAIL_PROBES = [
    f"{verb} WHERE {condition}"
    for verb in ("DELETE FROM scratch", "UPDATE scratch SET v = 'gone'")
    for condition in EVERY_ROW
]
