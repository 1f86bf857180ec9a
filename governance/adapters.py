from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.mfa.adapter import DefaultMFAAdapter
from allauth.mfa.models import Authenticator
from django.conf import settings

from governance.crypto import decrypt_secret, encrypt_secret
from governance.mfa import FACTOR_TYPES, mfa_required_by


class AccountAdapter(DefaultAccountAdapter):
    """Warden accounts are created by admins; self sign-up only when explicitly enabled."""

    def is_open_for_signup(self, request: Any) -> bool:
        return bool(settings.ACCOUNT_ALLOW_REGISTRATION)


class MfaAdapter(DefaultMFAAdapter):
    """Second factors: their secrets encrypted at rest like datasource passwords, and the
    last factor of someone who must use MFA (governance.mfa) kept."""

    error_messages = {
        **DefaultMFAAdapter.error_messages,
        "cannot_delete_authenticator": (
            "Your role requires multi-factor authentication: add another authenticator app or "
            "security key before removing this one."
        ),
    }

    def encrypt(self, text: str) -> str:
        return encrypt_secret(text)

    def decrypt(self, encrypted_text: str) -> str:
        return decrypt_secret(encrypted_text)

    def can_delete_authenticator(self, authenticator: Authenticator) -> bool:
        if not mfa_required_by(authenticator.user):
            return True
        others = Authenticator.objects.filter(
            user_id=authenticator.user_id, type__in=FACTOR_TYPES
        ).exclude(pk=authenticator.pk)
        return authenticator.type not in FACTOR_TYPES or others.exists()
