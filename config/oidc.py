"""Single sign-on providers and the group mapping, read from the environment.

Okta, Microsoft Entra ID, Google Workspace and Keycloak are all plain OpenID Connect to
django-allauth's ``openid_connect`` provider: each is one entry of WARDEN_OIDC_PROVIDERS,
never code. A mistake in these variables stops the control plane at startup with a message
naming the variable, since a half-read SSO configuration would either lock people out or
let the wrong people in.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from config.env import env_bool, env_str

PROVIDERS_VAR = "WARDEN_OIDC_PROVIDERS"
GROUP_ROLES_VAR = "WARDEN_OIDC_GROUP_ROLES"
REQUIRE_GROUP_VAR = "WARDEN_OIDC_REQUIRE_GROUP"
REQUIRED_KEYS = ("id", "name", "server_url", "client_id", "secret")
OPTIONAL_KEYS = ("scopes", "groups_claim", "token_auth_method")
DEFAULT_SCOPES = ["openid", "profile", "email"]
# The id is part of the callback URL (/accounts/oidc/<id>/login/callback/).
PROVIDER_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


class OidcConfigError(ValueError):
    """A WARDEN_OIDC_* variable that cannot be used; the message names the variable."""


@dataclass(frozen=True)
class OidcProvider:
    id: str
    name: str
    server_url: str
    client_id: str
    secret: str
    scopes: tuple[str, ...] = tuple(DEFAULT_SCOPES)
    groups_claim: str = "groups"
    token_auth_method: str = ""

    def allauth_app(self) -> dict[str, Any]:
        """This provider as one entry of allauth's SOCIALACCOUNT_PROVIDERS APPS list."""
        app_settings: dict[str, Any] = {
            "server_url": self.server_url,
            "scope": list(self.scopes),
            "groups_claim": self.groups_claim,
        }
        if self.token_auth_method:
            app_settings["token_auth_method"] = self.token_auth_method
        return {
            "provider_id": self.id,
            "name": self.name,
            "client_id": self.client_id,
            "secret": self.secret,
            "settings": app_settings,
        }


def _json(var: str, raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise OidcConfigError(f"{var} is not valid JSON: {exc}") from exc


def _text(var: str, where: str, entry: dict[str, Any], key: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise OidcConfigError(f"{var}{where}: {key!r} must be a non-empty string")
    return value.strip()


def _provider(var: str, index: int, entry: Any) -> OidcProvider:
    where = f"[{index}]"
    if not isinstance(entry, dict):
        raise OidcConfigError(f"{var}{where} must be an object with {', '.join(REQUIRED_KEYS)}")
    unknown = sorted(set(entry) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        raise OidcConfigError(f"{var}{where}: unknown key(s) {', '.join(unknown)}")
    values = {key: _text(var, where, entry, key) for key in REQUIRED_KEYS}
    if not PROVIDER_ID.match(values["id"]):
        raise OidcConfigError(
            f"{var}{where}: 'id' must be lowercase letters, digits, '-' or '_'"
            f" (got {entry['id']!r})"
        )
    if not values["server_url"].startswith(("https://", "http://")):
        raise OidcConfigError(f"{var}{where}: 'server_url' must be an http(s) URL")
    scopes = entry.get("scopes", DEFAULT_SCOPES)
    if not isinstance(scopes, list) or "openid" not in scopes:
        raise OidcConfigError(f"{var}{where}: 'scopes' must be a list that includes 'openid'")
    method = entry.get("token_auth_method", "")
    if method not in ("", "client_secret_basic", "client_secret_post"):
        raise OidcConfigError(
            f"{var}{where}: 'token_auth_method' must be client_secret_basic or client_secret_post"
        )
    claim = _text(var, where, entry, "groups_claim") if "groups_claim" in entry else "groups"
    return OidcProvider(
        **values, scopes=tuple(scopes), groups_claim=claim, token_auth_method=method
    )


def oidc_providers_parse(raw: str, var: str = PROVIDERS_VAR) -> list[OidcProvider]:
    """Parse WARDEN_OIDC_PROVIDERS (a JSON list); empty means no single sign-on."""
    if not raw.strip():
        return []
    entries = _json(var, raw)
    if not isinstance(entries, list):
        raise OidcConfigError(f"{var} must be a JSON list of providers")
    providers = [_provider(var, index, entry) for index, entry in enumerate(entries)]
    ids = [provider.id for provider in providers]
    duplicates = sorted({item for item in ids if ids.count(item) > 1})
    if duplicates:
        raise OidcConfigError(f"{var}: provider id(s) used twice: {', '.join(duplicates)}")
    return providers


def oidc_group_roles_parse(raw: str, var: str = GROUP_ROLES_VAR) -> dict[str, tuple[str, ...]]:
    """Parse WARDEN_OIDC_GROUP_ROLES: {"provider group": "warden group" or [warden groups]}."""
    if not raw.strip():
        return {}
    mapping = _json(var, raw)
    if not isinstance(mapping, dict):
        raise OidcConfigError(f"{var} must be a JSON object of provider group → Warden group(s)")
    parsed: dict[str, tuple[str, ...]] = {}
    for claim_group, targets in mapping.items():
        names = [targets] if isinstance(targets, str) else targets
        if (
            not isinstance(names, list)
            or not names
            or not all(isinstance(name, str) and name.strip() for name in names)
        ):
            raise OidcConfigError(
                f"{var}[{claim_group!r}] must be a Warden group name or a non-empty list of them"
            )
        parsed[claim_group] = tuple(name.strip() for name in names)
    return parsed


@dataclass(frozen=True)
class OidcSettings:
    providers: list[OidcProvider]
    group_roles: dict[str, tuple[str, ...]]
    # Refuse a sign-in whose claims map to no Warden group (anyone else in the directory).
    require_group: bool


def oidc_settings() -> OidcSettings:
    """The providers, the group mapping and the refusal rule from WARDEN_OIDC_*[_FILE]."""
    providers = oidc_providers_parse(env_str(PROVIDERS_VAR, ""))
    group_roles = oidc_group_roles_parse(env_str(GROUP_ROLES_VAR, ""))
    try:
        require_group = env_bool(REQUIRE_GROUP_VAR, True)
    except ValueError as exc:
        raise OidcConfigError(str(exc)) from exc
    if providers and require_group and not group_roles:
        raise OidcConfigError(
            f"{GROUP_ROLES_VAR} is empty while {REQUIRE_GROUP_VAR} is on: nobody could sign in"
            f" with single sign-on (map provider groups to Warden groups, or set"
            f" {REQUIRE_GROUP_VAR}=false)"
        )
    return OidcSettings(providers=providers, group_roles=group_roles, require_group=require_group)
