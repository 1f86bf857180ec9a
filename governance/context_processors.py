from typing import Any

from django.conf import settings
from django.http import HttpRequest


def roles(request: HttpRequest) -> dict[str, Any]:
    """Expose the signed-in user's roles so the navigation shows what they may use."""
    user = getattr(request, "user", None)
    names = user.role_names if user is not None and user.is_authenticated else set()
    return {"user_roles": names, "signup_open": settings.ACCOUNT_ALLOW_REGISTRATION}
