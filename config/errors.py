"""Warden's error vocabulary: the few refusals a service may raise, and where they are shown.

Services raise only these (never a bare ValueError or PermissionError), so anything else that
escapes a service is a bug and surfaces as a 500 in tests instead of a polite 400:

- ``InvalidInput`` (400): the request is well formed but a value breaks a rule;
  ``field`` names the offending field or query parameter when there is one.
- ``NotAllowed`` (403): the actor may not do this; ``fields`` names the fields of the
  request the actor may not set (an API field is refused, never silently ignored).
- ``StateConflict`` (409): the object is not in a state that allows this step.
- ``NotFound`` (404): a referenced object does not exist (or is not visible to the actor).

They are mapped in exactly two places: ``config.api.warden_exception_handler`` for the API
(one JSON error body, ``ErrorSerializer``) and ``error_message`` / ``form_add_error`` below for
HTML views. ``InvalidInput`` is also a Django ``ValidationError`` and a ``ValueError``, and
``NotAllowed`` a Django ``PermissionDenied``, so forms, Django's 403 page and callers that
already catch those keep working.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from django.core.exceptions import PermissionDenied, ValidationError


class WardenError(Exception):
    """Base of the domain refusals; ``status`` and ``error_code`` are what the API answers."""

    status: ClassVar[int] = 400
    error_code: ClassVar[str] = "invalid"

    def __init__(
        self, message: str, *, field: str | None = None, fields: Sequence[str] = ()
    ) -> None:
        Exception.__init__(self, message)
        self.text = message
        self.field = field or (fields[0] if fields else None)
        self.fields = list(fields) or ([field] if field else [])

    def __str__(self) -> str:
        return self.text


class InvalidInput(WardenError, ValidationError, ValueError):
    status = 400
    error_code = "invalid"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        ValidationError.__init__(self, message)
        WardenError.__init__(self, message, field=field)


class NotAllowed(WardenError, PermissionDenied):
    status = 403
    error_code = "not_allowed"


class StateConflict(WardenError):
    status = 409
    error_code = "conflict"


class NotFound(WardenError):
    status = 404
    error_code = "not_found"


def error_message(exc: WardenError | ValidationError | PermissionDenied) -> str:
    """The sentence an HTML page shows for a refusal."""
    if isinstance(exc, WardenError):
        return exc.text
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc) or "Not allowed."


def form_add_error(form: Any, exc: WardenError) -> None:
    """Show a service's refusal on a form: on its field when the form has one, else on top."""
    field = exc.field if exc.field in getattr(form, "fields", {}) else None
    form.add_error(field, error_message(exc))
