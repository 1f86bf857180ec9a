"""`make run`'s demo launcher: embedded PostgreSQL, Warden and an agent, supervised together."""
