"""Errors and notices the server raises for statements that touch restricted columns: their
texts may quote the very values a policy masks, so the client gets them without those."""

from __future__ import annotations

from agent.postgres import codec
from agent.verdicts import Decision

# Error classes whose messages name constraints and states, never column values; other
# messages may quote the very value a policy masks (data exceptions: 'invalid input syntax
# for type integer: "<value>"', a value cast to regclass: 'relation "<value>" does not
# exist', RAISE texts, ...).
_VALUE_FREE_ERROR_CLASSES = frozenset({"08", "23", "25", "40", "53", "57"})


def withheld_error(decision: Decision | None, payload: bytes) -> bytes | None:
    """The server's error for a statement that touches columns restricted for this identity,
    without what may quote their values (detail, context, and data-dependent messages)."""
    if decision is None or not decision.touches_restricted:
        return None
    fields = codec.parse_error_fields(payload)
    code = fields.get("C", "XX000")
    text = fields.get("M", "")
    if code[:2] not in _VALUE_FREE_ERROR_CLASSES:
        text = (
            f"Warden: the server's error message (SQLSTATE {code}) is withheld: "
            "this statement touches columns restricted for you"
        )
    return codec.error_response(
        code,
        text,
        severity=fields.get("S", "ERROR"),
        hint=fields.get("H"),
    )


def withheld_notice(decision: Decision | None, payload: bytes) -> bytes | None:
    """A warning or notice raised while running a statement that touches restricted columns
    ('PID <value> is not a PostgreSQL backend process'), with its text withheld."""
    if decision is None or not decision.touches_restricted:
        return None
    fields = codec.parse_error_fields(payload)
    code = fields.get("C", "01000")
    return codec.notice_response(
        f"Warden: the server's notice (SQLSTATE {code}) is withheld: "
        "this statement touches columns restricted for you",
        code=code,
        severity=fields.get("S", "NOTICE"),
    )
