"""DRF authentication with access tokens (`Authorization: Bearer wdn_…`).

A token is accepted only on endpoints its scopes cover (governance.scopes): the check runs
here, while authenticating, so every API view gets it whatever permission classes it sets.
"""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from governance.scopes import endpoint_scopes
from governance.tokens import token_authenticate


def _view_class(request: Any) -> Any:
    view = (getattr(request, "parser_context", None) or {}).get("view")
    return type(view) if view is not None else None


def scope_refusal(token: Any, request: Any) -> str | None:
    """Why ``token`` may not call this endpoint, or None when its scopes cover it."""
    needed = endpoint_scopes(_view_class(request), request.method)
    if set(token.scopes) & set(needed):
        return None
    have = ", ".join(token.scopes) or "none"
    if needed == ("agent",):
        return f"This endpoint needs an agent token (the agent scope); this token has {have}."
    return f"This endpoint needs a token with {' or '.join(needed)}; this token has {have}."


class AccessTokenAuthentication(authentication.BaseAuthentication):
    keyword_options = ("bearer", "token")

    def authenticate(self, request: Any) -> tuple[Any, Any] | None:
        header = authentication.get_authorization_header(request).decode(errors="replace")
        if not header:
            return None
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() not in self.keyword_options:
            return None
        token = token_authenticate(secret=parts[1])
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked access token.")
        refusal = scope_refusal(token, request)
        if refusal is not None:
            raise exceptions.PermissionDenied(refusal)
        return token.user, token

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="warden"'


class AgentTokenAuthentication(AccessTokenAuthentication):
    """The same bearer tokens; documented apart because only ``agent`` tokens are accepted."""


class AccessTokenScheme(OpenApiAuthenticationExtension):
    """Describes the bearer tokens in the OpenAPI schema."""

    target_class = "governance.authentication.AccessTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "Access token wdn_… (its scopes decide which endpoints accept it)",
        }


class AgentTokenScheme(OpenApiAuthenticationExtension):
    target_class = "governance.authentication.AgentTokenAuthentication"
    name = "agentToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An access token with the agent scope, bound to its datasources",
        }
