"""The agent for PostgreSQL: wire protocol, pglast analysis, catalog, sessions, native path."""
