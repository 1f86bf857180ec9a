"""Warden enforcement agent: a PostgreSQL wire-protocol proxy (no Django imports)."""
