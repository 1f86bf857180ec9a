from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.mfa.adapter import DefaultMFAAdapter
from allauth.mfa.models import Authenticator
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialAccount
from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import render

from governance.crypto import decrypt_secret, encrypt_secret
from governance.mfa import FACTOR_TYPES, mfa_required_by
from governance.services.sso import (
    sso_claim_groups,
    sso_claims,
    sso_group_names,
    sso_groups_sync,
    sso_sign_in_refuse,
)


def _source_address(request: Any) -> str:
    return str(request.META.get("REMOTE_ADDR", "")) if request is not None else ""


class AccountAdapter(DefaultAccountAdapter):
    """Warden accounts are created by admins; self sign-up only when explicitly enabled."""

    def is_open_for_signup(self, request: Any) -> bool:
        return bool(settings.ACCOUNT_ALLOW_REGISTRATION)

    def pre_login(self, request: Any, user: Any, **kwargs: Any) -> HttpResponse | None:
        # An SSO account's roles are only re-evaluated at an SSO sign-in: a password set
        # later (a reset e-mail) must not become a way around the directory.
        through_sso = "sociallogin" in (kwargs.get("signal_kwargs") or {})
        sso_account = SocialAccount.objects.filter(user=user).first()
        if sso_account is not None and not through_sso:
            sso_sign_in_refuse(
                provider=sso_account.provider,
                subject=sso_account.uid,
                username=user.get_username(),
                reason="password sign-in of a single sign-on account",
                source_address=_source_address(request),
            )
            return render(
                request, "governance/sso_only.html", {"provider": sso_account.provider}, status=403
            )
        return super().pre_login(request, user, **kwargs)


def _claim_groups(sociallogin: Any) -> set[str]:
    claim = sociallogin.account.get_provider().app.settings.get("groups_claim", "groups")
    return sso_claim_groups(sso_claims(sociallogin.account.extra_data), claim=claim)


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    """Single sign-on: the provider vouches for the person, its group claims decide the
    Warden groups at every sign-in (governance.services.sso)."""

    def is_open_for_signup(self, request: Any, sociallogin: Any) -> bool:
        return True  # people the mapping grants nothing are refused in pre_social_login

    def pre_social_login(self, request: Any, sociallogin: Any) -> None:
        claim_groups = _claim_groups(sociallogin)
        mapping = settings.WARDEN_OIDC_GROUP_ROLES
        provider = sociallogin.account.provider
        if settings.WARDEN_OIDC_REQUIRE_GROUP and not sso_group_names(
            claim_groups, mapping=mapping
        ):
            username = sso_claims(sociallogin.account.extra_data).get("preferred_username", "")
            sso_sign_in_refuse(
                provider=provider,
                subject=sociallogin.account.uid,
                username=str(username),
                reason="no mapped group",
                source_address=_source_address(request),
            )
            page = render(
                request, "governance/sso_refused.html", {"provider": provider}, status=403
            )
            raise ImmediateHttpResponse(page)
        if sociallogin.is_existing:
            sso_groups_sync(
                user=sociallogin.user, provider=provider, claim_groups=claim_groups, mapping=mapping
            )

    def save_user(self, request: Any, sociallogin: Any, form: Any = None) -> Any:
        user = super().save_user(request, sociallogin, form)
        sso_groups_sync(
            user=user,
            provider=sociallogin.account.provider,
            claim_groups=_claim_groups(sociallogin),
            mapping=settings.WARDEN_OIDC_GROUP_ROLES,
        )
        return user

    def on_authentication_error(
        self,
        request: Any,
        provider: Any,
        error: Any = None,
        exception: Any = None,
        extra_context: Any = None,
    ) -> None:
        # The provider refused (a disabled account comes back as error=access_denied, which
        # allauth would call "cancelled") or the exchange failed: one page says both.
        answered = request.GET.get("error", "") if request is not None else ""
        sso_sign_in_refuse(
            provider=str(getattr(provider, "sub_id", provider)),
            subject="",
            username="",
            reason=f"provider answered {answered}" if answered else f"{error}: {exception}",
            source_address=_source_address(request),
        )
        page = render(
            request,
            "socialaccount/authentication_error.html",
            {"auth_error": {"provider": provider, "code": error}},
            status=401,
        )
        raise ImmediateHttpResponse(page)


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
