"""Key rotation: stored secrets re-encrypted under the newest field key, and the state of the
signing keys (current, next, retired) an operator checks between rotation steps.

Re-encryption is safe to interrupt and to run again: each secret is replaced by a
conditional UPDATE (only if it still holds the ciphertext that was read), so a password an
admin changes meanwhile is never overwritten, and one already under the newest key is left
alone. Every key stays readable until the run reports nothing left to rotate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from allauth.mfa.models import Authenticator
from django.db import transaction

from audit.services import event_record
from governance import crypto
from governance.models import DataSource


@dataclass
class FieldRotation:
    rotated: int = 0
    already_current: int = 0
    changed_meanwhile: int = 0
    unreadable: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every stored secret is now under the newest key: older keys may be removed."""
        return not self.unreadable and not self.changed_meanwhile

    def as_dict(self) -> dict[str, Any]:
        return {
            "rotated": self.rotated,
            "already_current": self.already_current,
            "changed_meanwhile": self.changed_meanwhile,
            "unreadable": self.unreadable,
        }


def _rotate_one(pk: int, name: str, ciphertext: str, rotation: FieldRotation) -> None:
    if crypto.secret_is_current(ciphertext):
        rotation.already_current += 1
        return
    try:
        fresh = crypto.secret_reencrypt(ciphertext)
    except ValueError:
        rotation.unreadable.append(name)
        return
    # Conditional: a password changed since it was read keeps its (newer) value.
    if DataSource.objects.filter(pk=pk, password_encrypted=ciphertext).update(
        password_encrypted=fresh
    ):
        rotation.rotated += 1
    else:
        rotation.changed_meanwhile += 1


# Second factors' secrets (allauth.mfa, encrypted by governance.adapters.MfaAdapter):
# a TOTP secret and the seed recovery codes derive from.
_FACTOR_SECRETS = ("secret", "seed")


def _rotate_factor(pk: int, rotation: FieldRotation) -> None:
    """Re-encrypt one second factor's secrets, the row locked so a factor used or changed
    meanwhile (recovery codes mark themselves used) is read and written whole."""
    with transaction.atomic():
        factor = Authenticator.objects.select_for_update().select_related("user").get(pk=pk)
        data = dict(factor.data)
        stale = [
            key
            for key in _FACTOR_SECRETS
            if isinstance(data.get(key), str) and not crypto.secret_is_current(data[key])
        ]
        if not stale:
            rotation.already_current += 1
            return
        try:
            data.update({key: crypto.secret_reencrypt(data[key]) for key in stale})
        except ValueError:
            rotation.unreadable.append(f"{factor.type} factor of {factor.user.get_username()}")
            return
        factor.data = data
        factor.save(update_fields=["data"])
        rotation.rotated += 1


def field_secrets_rotate(*, actor: Any) -> FieldRotation:
    """Re-encrypt every stored secret under the newest field key: datasource passwords and
    the secrets of people's second factors."""
    rotation = FieldRotation()
    stored = (
        DataSource.objects.exclude(password_encrypted="")
        .order_by("pk")
        .values_list("pk", "name", "password_encrypted")
    )
    for pk, name, ciphertext in stored.iterator(chunk_size=500):
        _rotate_one(pk, name, ciphertext, rotation)
    factors = Authenticator.objects.filter(type__in=["totp", "recovery_codes"]).order_by("pk")
    for pk in factors.values_list("pk", flat=True).iterator(chunk_size=500):
        _rotate_factor(pk, rotation)
    with transaction.atomic():
        event_record(
            actor=actor,
            action="keys.field_rotated",
            decision="ok" if rotation.complete else "incomplete",
            details=rotation.as_dict(),
        )
    return rotation


@dataclass(frozen=True)
class SigningKeyState:
    current: dict[str, str]
    next: dict[str, str] | None
    retired: list[str]


def signing_keys_state() -> SigningKeyState:
    """The signing keys as configured (ids and public halves; never a private key)."""
    published = crypto.published_keys()
    retired = [crypto.key_id_for(public) for public in crypto.trusted_public_keys().values()]
    published_ids = {key["key_id"] for key in published}
    return SigningKeyState(
        current=published[0],
        next=published[1] if len(published) > 1 else None,
        retired=[key_id for key_id in retired if key_id not in published_ids],
    )
