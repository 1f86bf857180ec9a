from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings


class AccountAdapter(DefaultAccountAdapter):
    """Warden accounts are created by admins; self sign-up only when explicitly enabled."""

    def is_open_for_signup(self, request: Any) -> bool:
        return bool(settings.ACCOUNT_ALLOW_REGISTRATION)
