"""Role checks shared by HTML views and the API. Roles are Django groups (see Role)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from rest_framework.permissions import BasePermission

from governance.models import Role, User


class AuthenticatedRequest(HttpRequest):
    """The request an HTML view behind login_required or role_required receives (for type
    checking): a signed-in Warden user, and django-htmx's ``htmx`` details."""

    user: User
    htmx: Any


def user_has_any_role(user: Any, roles: tuple[str, ...]) -> bool:
    return bool(user and user.is_authenticated and any(user.has_role(role) for role in roles))


def role_required(*roles: str) -> Callable:
    """View decorator: anonymous → login page, authenticated without the role → 403."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not user_has_any_role(request.user, roles):
                raise PermissionDenied(f"This page needs one of the roles: {', '.join(roles)}")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


class HasRole(BasePermission):
    """DRF permission: `permission_classes = [HasRole.of(Role.ADMIN, Role.AUDITOR)]`."""

    roles: tuple[str, ...] = ()
    message = "You do not have the role this endpoint needs."

    @classmethod
    def of(cls, *roles: str) -> type[HasRole]:
        return type(f"HasRole_{'_'.join(roles)}", (cls,), {"roles": roles})

    def has_permission(self, request: Any, view: Any) -> bool:
        return user_has_any_role(request.user, self.roles)

    def roles_for(self, method: str) -> tuple[str, ...]:
        """The roles the schema documents for `method` (config.schema)."""
        return self.roles


IsAdmin = HasRole.of(Role.ADMIN)
CATALOG_READERS = (Role.ADMIN, Role.REVIEWER, Role.AUDITOR)
# The catalog page also serves requesters, read-only: names and tags, never values or
# evidence (column pages and the catalog API stay with CATALOG_READERS).
CATALOG_BROWSERS = (*CATALOG_READERS, Role.REQUESTER)
