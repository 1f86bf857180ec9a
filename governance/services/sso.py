"""Single sign-on: the identity provider's group claims decide a person's Warden groups.

Roles (admin, reviewer, auditor, requester) and reviewer groups are both Django groups, so
one mapping (settings.WARDEN_OIDC_GROUP_ROLES, provider group → Warden group names) covers
both. The groups named anywhere in the mapping are *managed*: at every sign-in a person's
membership of each managed group is set to exactly what the claims give, so removing someone
from a group in the directory revokes the role at their next sign-in. Groups the mapping
never names stay as an admin set them. The allauth adapter (governance/adapters.py) only
calls these functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import Group
from django.db import transaction

from audit.services import event_record, events_append
from governance.models import User

GroupMapping = Mapping[str, Iterable[str]]


@dataclass(frozen=True)
class SsoGroupChange:
    """What one sign-in changed: group names added to and removed from the person."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def sso_claims(extra_data: Mapping[str, Any]) -> dict[str, Any]:
    """The claims of one sign-in: the ID token's, overridden by userinfo where both say.

    Providers differ in where groups go (Entra puts them in the ID token, Okta and Keycloak
    usually in userinfo), so both are read.
    """
    id_token = extra_data.get("id_token")
    userinfo = extra_data.get("userinfo")
    if not isinstance(id_token, Mapping) and not isinstance(userinfo, Mapping):
        return dict(extra_data)  # allauth before 65.11 stored the claims flat
    return {
        **(id_token if isinstance(id_token, Mapping) else {}),
        **(userinfo if isinstance(userinfo, Mapping) else {}),
    }


def sso_claim_groups(claims: Mapping[str, Any], *, claim: str) -> set[str]:
    """The provider groups in ``claim``: a list or one string; a dotted path reaches nested
    claims (Keycloak's ``realm_access.roles``). A missing claim is no groups."""
    value: Any = claims
    for part in claim.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, str):
        return {value}
    if isinstance(value, list):
        return {item for item in value if isinstance(item, str)}
    return set()


def sso_managed_groups(mapping: GroupMapping) -> set[str]:
    """Every Warden group the mapping can grant, and so also revoke."""
    return {name for names in mapping.values() for name in names}


def sso_group_names(claim_groups: Iterable[str], *, mapping: GroupMapping) -> set[str]:
    """The Warden groups a person with these provider groups belongs to."""
    return {name for group in claim_groups for name in mapping.get(group, ())}


@transaction.atomic
def sso_groups_sync(
    *, user: User, provider: str, claim_groups: Iterable[str], mapping: GroupMapping
) -> SsoGroupChange:
    """Set ``user``'s managed groups to what ``claim_groups`` map to; audit any change."""
    managed = sso_managed_groups(mapping)
    wanted = sso_group_names(claim_groups, mapping=mapping)
    current = set(user.groups.filter(name__in=managed).values_list("name", flat=True))
    change = SsoGroupChange(added=sorted(wanted - current), removed=sorted(current - wanted))
    if change.added:
        # A reviewer group named only in the mapping is created at its first member.
        user.groups.add(*(Group.objects.get_or_create(name=name)[0] for name in change.added))
    if change.removed:
        user.groups.remove(*Group.objects.filter(name__in=change.removed))
    user.__dict__.pop("_role_names", None)  # User.role_names caches per instance
    if change.added or change.removed:
        event_record(
            actor=user,
            action="auth.sso_groups",
            target=user,
            details={
                "provider": provider,
                "added": change.added,
                "removed": change.removed,
                "claim_groups": sorted(claim_groups),
            },
        )
    return change


@transaction.atomic
def sso_sign_in_refuse(
    *, provider: str, subject: str, username: str, reason: str, source_address: str = ""
) -> None:
    """Record an SSO sign-in Warden refused (the caller then answers 403).

    Like a failed password sign-in, the actor is anonymous: nobody was signed in.
    """
    entry = {
        "actor": (username or subject or "anonymous")[:150],
        "actor_kind": "anonymous",
        "action": "auth.sso_refused",
        "decision": "deny",
        "details": {"provider": provider, "subject": subject, "reason": reason},
        "source_address": source_address[:100],
    }
    events_append(entries=[entry])
