"""What an access token may do: its scopes, who may grant them, and what each endpoint needs.

A token's owner's roles still decide what the owner may do; scopes narrow that further, so
a token can do what both its scopes and its owner's roles allow:

- ``agent``: only the enforcement agent's endpoints (``/api/v1/agent/…``), and only for the
  datasources the token is bound to. Never combined with another scope.
- ``query``: connect through an agent (the token is the client's password) and use the MCP
  endpoints (``/api/v1/mcp/…``, ``/mcp/``).
- ``requests``: file, read, cancel and extend one's own access requests and grants.
- ``api:read``: read the REST API (whatever the owner's roles may read).
- ``api:admin``: write through the REST API (whatever the owner's roles may change).

Each endpoint declares the scopes it accepts with a ``token_scopes`` attribute on its view
(a tuple, or a dict by HTTP method); without one, reads accept ``api:read`` or ``api:admin``
and writes ``api:admin``. The check runs in ``governance.authentication`` for every request
that carries a token, before any view code, so a view cannot forget it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import models

from config.errors import NotAllowed
from governance.models import Role, User


class Scope(models.TextChoices):
    AGENT = "agent", "agent: the enforcement agent's endpoints, for its datasources"
    QUERY = "query", "query: connect through agents and the MCP server"
    REQUESTS = "requests", "requests: file and read your own access requests"
    API_READ = "api:read", "api:read: read the REST API"
    API_ADMIN = "api:admin", "api:admin: change things through the REST API"


ALL_SCOPES: tuple[str, ...] = tuple(Scope.values)
PERSONAL_DEFAULT: tuple[str, ...] = (Scope.QUERY, Scope.REQUESTS)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
READ_SCOPES: tuple[str, ...] = (Scope.API_READ, Scope.API_ADMIN)
WRITE_SCOPES: tuple[str, ...] = (Scope.API_ADMIN,)

# The roles that may put each scope on a token (one of them suffices); None: anyone.
_GRANTABLE_BY: dict[str, tuple[str, ...] | None] = {
    Scope.AGENT: (Role.ADMIN,),
    Scope.QUERY: None,
    Scope.REQUESTS: None,
    Scope.API_READ: (Role.ADMIN, Role.REVIEWER, Role.AUDITOR),
    Scope.API_ADMIN: (Role.ADMIN, Role.REVIEWER),
}


def scopes_grantable(user: User) -> tuple[str, ...]:
    """The scopes ``user`` may put on a token of their own."""
    return tuple(
        scope
        for scope, roles in _GRANTABLE_BY.items()
        if roles is None or any(user.has_role(role) for role in roles)
    )


def scopes_check(*, actor: User, owner: User, scopes: Iterable[str]) -> list[str]:
    """The scopes in canonical order; NotAllowed naming ``scopes`` when one is unknown,
    beyond the owner's roles, or mixes ``agent`` with another scope.

    The actor's roles bound the grant: an admin creating a token for an agent's service
    account (which has no roles of its own) may grant ``agent``.
    """
    wanted = set(scopes)
    unknown = sorted(wanted - set(ALL_SCOPES))
    if unknown:
        raise NotAllowed(f"Unknown scope(s): {', '.join(unknown)}.", field="scopes")
    if not wanted:
        raise NotAllowed("A token needs at least one scope.", field="scopes")
    if Scope.AGENT in wanted and len(wanted) > 1:
        raise NotAllowed("An agent token has the agent scope only.", field="scopes")
    beyond = sorted(wanted - set(scopes_grantable(actor)))
    if beyond:
        raise NotAllowed(
            f"Your roles do not allow the scope(s) {', '.join(beyond)}.", field="scopes"
        )
    return [scope for scope in ALL_SCOPES if scope in wanted]


def endpoint_scopes(view_class: Any, method: str) -> tuple[str, ...]:
    """The scopes a token needs (any one of) to call ``method`` on this view."""
    declared = getattr(view_class, "token_scopes", None)
    if isinstance(declared, dict):
        declared = declared.get(method.upper(), declared.get("*"))
    if declared is not None:
        return tuple(declared)
    return READ_SCOPES if method.upper() in SAFE_METHODS else WRITE_SCOPES


def token_has_scope(token: Any, *scopes: str) -> bool:
    """Whether the request's token (None: a browser session) has one of ``scopes``."""
    if token is None:
        return True
    return bool(set(token.scopes) & set(scopes))
