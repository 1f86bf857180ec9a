"""Realistic fake "shop" databases for scan tests and benchmarks (no Django imports).

The same schema and the same rows (Faker, fixed seed) on SQLite, PostgreSQL and MariaDB:

    shop_sqlite_create(path)                          -> rows per table
    shop_postgresql_create(conninfo, schema="shop_x") -> rows per table (COPY)
    shop_mysql_create(database="shop_x")              -> rows per table (executemany)

``SHOP_EXPECTED_TAGS`` names the tags a scan must find on each sensitive column and
``SHOP_NON_SENSITIVE`` the columns that must get no tag, so scan tests can measure recall
and precision. Columns in neither (``customers.country``, ``employees.salary``,
``payments.card_expiry``, ``countries.name``, the SQLite-only ``legacy_contacts``) are
debatable and not judged. Free text in ``support_tickets.body`` also names people and
cities; a PersonName or Location tag there is tolerated, PHI.FreeText is required.

Awkward values for bad-input coverage live in ``customer_profiles`` (JSON, an array, binary
thumbnails, a NULL-only column, ~200 KB texts) and, on SQLite only, ``legacy_contacts``
(latin-1 bytes stored as TEXT).
"""

from classification.sample_data.engines import (
    shop_drop_mysql_database,
    shop_drop_postgresql_schema,
    shop_mysql_create,
    shop_postgresql_create,
    shop_sqlite_create,
)
from classification.sample_data.schema import (
    BASE_ROWS,
    CUSTOMER_LOCALES,
    HUGE_TEXT_CHARS,
    SHOP_EXPECTED_TAGS,
    SHOP_NON_SENSITIVE,
    ShopTable,
)
from classification.sample_data.tables import shop_tables

__all__ = [
    "BASE_ROWS",
    "CUSTOMER_LOCALES",
    "HUGE_TEXT_CHARS",
    "SHOP_EXPECTED_TAGS",
    "SHOP_NON_SENSITIVE",
    "ShopTable",
    "shop_drop_mysql_database",
    "shop_drop_postgresql_schema",
    "shop_mysql_create",
    "shop_postgresql_create",
    "shop_sqlite_create",
    "shop_tables",
]
