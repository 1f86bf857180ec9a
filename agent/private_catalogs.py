"""Server catalogs that tell more than any column: other sessions and credentials.

Through the agent every statement runs as the datasource's upstream role, so what that role
may read in the server's own catalogs, every Warden identity could read: the statement text
other people are running (with the literals they typed: e-mails, card numbers), the text
of every statement the server has recorded, client addresses and certificate names, and,
where the role may, password hashes and the passwords stored in user mappings and
subscriptions.  None of that is a governed column, so the bundle cannot mask it; reading
these catalogs is refused unless a rule allows the identity that catalog
(``PolicyEngine._private_catalogs``).

psql's ``\\d`` family and the metadata queries of DBeaver and pgAdmin read pg_class,
pg_attribute, pg_namespace, pg_roles and the like, none of which is listed here.
"""

from __future__ import annotations

from collections.abc import Iterable

# Relations (matched by name in any schema: pg_stat_statements lives where the extension
# was installed) and what they reveal.
PRIVATE_RELATIONS = frozenset(
    {
        # Other sessions' statement text, users, client addresses.
        "pg_stat_activity",
        "pg_stat_replication",
        "pg_stat_wal_receiver",  # the primary's connection string
        "pg_stat_ssl",  # client certificate names of every session
        "pg_stat_gssapi",  # Kerberos principals of every session
        # Statement statistics keep the text of every statement run.
        "pg_stat_statements",
        "pg_stat_monitor",
        # Credentials.
        "pg_authid",  # password hashes
        "pg_shadow",
        "pg_user_mapping",  # user-mapping options: remote user and password
        "pg_user_mappings",
        "pg_subscription",  # subconninfo may hold a password
    }
)
# Functions behind those views (the views are thin wrappers around them).
PRIVATE_FUNCTIONS = frozenset(
    {
        "pg_stat_get_activity",
        "pg_stat_get_backend_activity",
        "pg_stat_get_backend_client_addr",
        "pg_stat_get_backend_client_port",
        "pg_stat_get_backend_userid",
        "pg_stat_get_wal_receiver",
        "pg_stat_statements",
        "pg_stat_monitor",
    }
)


def private_catalog_reads(relation_names: Iterable[str], functions: Iterable[str]) -> list[str]:
    """The private catalogs (relations and functions) a statement reads, sorted."""
    found = {name for name in relation_names if name in PRIVATE_RELATIONS}
    found |= {f"{function}()" for function in functions if function in PRIVATE_FUNCTIONS}
    return sorted(found)
