"""DRF authentication with personal access tokens (`Authorization: Bearer wdn_…`)."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from governance.tokens import token_authenticate


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
        return token.user, token

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="warden"'


class AgentTokenAuthentication(AccessTokenAuthentication):
    """The same bearer tokens; documented apart because only agent tokens are accepted."""


class AccessTokenScheme(OpenApiAuthenticationExtension):
    """Describes the bearer tokens in the OpenAPI schema."""

    target_class = "governance.authentication.AccessTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "Personal access token wdn_…"}


class AgentTokenScheme(OpenApiAuthenticationExtension):
    target_class = "governance.authentication.AgentTokenAuthentication"
    name = "agentToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An access token created with is_agent (the enforcement agent's)",
        }
