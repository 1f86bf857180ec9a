"""Sign-in events. The one place audit listens to signals: django.contrib.auth (and allauth,
which uses it) emits these for every login form, and each receiver is one service call."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from audit import services


@receiver(user_logged_in, dispatch_uid="audit.auth_login")
def _logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    services.auth_login_record(user=user, request=request)


@receiver(user_logged_out, dispatch_uid="audit.auth_logout")
def _logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    services.auth_logout_record(user=user, request=request)


@receiver(user_login_failed, dispatch_uid="audit.auth_login_failed")
def _login_failed(
    sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any
) -> None:
    services.auth_login_failed_record(credentials=credentials, request=request)
