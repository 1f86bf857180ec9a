"""The API's one error body, and the one place that maps exceptions to it.

Every 4xx/5xx the API answers has the shape of ``ErrorSerializer``::

    {"detail": "Invalid input: sample_size.", "code": "invalid",
     "fields": {"sample_size": ["Ensure this value is less than or equal to 100000."]}}

``fields`` is present when the error is about named fields or query parameters; nested
fields are dotted (``subjects.users.0``). Services raise the domain errors of
``config.errors``; anything else that escapes a view is a bug and stays a 500.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler

from config.errors import WardenError

ERROR_CODES = (
    "invalid",
    "parse_error",
    "not_authenticated",
    "authentication_failed",
    "not_allowed",
    "not_found",
    "method_not_allowed",
    "not_acceptable",
    "unsupported_media_type",
    "conflict",
    "throttled",
    "unavailable",
    "server_error",
)


class ErrorSerializer(serializers.Serializer):
    """The body of every error response of the Warden API."""

    detail = serializers.CharField(help_text="A sentence for people")
    code = serializers.ChoiceField(choices=ERROR_CODES, help_text="A stable token for programs")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Messages per field or query parameter; nested fields are dotted",
    )


def error_body(detail: str, code: str, fields: dict[str, list[str]] | None = None) -> dict:
    body: dict[str, Any] = {"detail": detail, "code": code}
    if fields:
        body["fields"] = fields
    return body


def _flatten(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error details as {"dotted.path": [messages]}."""
    if isinstance(errors, dict):
        flat: dict[str, list[str]] = {}
        for key, value in errors.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(errors, list) and any(isinstance(item, (dict, list)) for item in errors):
        flat = {}
        for index, value in enumerate(errors):
            flat.update(_flatten(value, f"{prefix}.{index}" if prefix else str(index)))
        return flat
    messages = [str(item) for item in errors] if isinstance(errors, list) else [str(errors)]
    return {prefix or api_settings.NON_FIELD_ERRORS_KEY: messages} if messages else {}


def _validation_body(exc: exceptions.ValidationError) -> dict:
    fields = _flatten(exc.detail)
    general = fields.pop(api_settings.NON_FIELD_ERRORS_KEY, [])
    if general and not fields:
        return error_body(" ".join(general), "invalid")
    detail = " ".join(general) or f"Invalid input: {', '.join(fields)}."
    return error_body(detail, "invalid", fields)


def _drf_code(exc: exceptions.APIException) -> str:
    if isinstance(exc, exceptions.PermissionDenied):
        return "not_allowed"
    code = exc.default_code
    return code if code in ERROR_CODES else "invalid"


def warden_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, WardenError):
        fields = {name: [exc.text] for name in exc.fields} or None
        return Response(error_body(exc.text, exc.error_code, fields), status=exc.status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or None)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    if isinstance(exc, exceptions.ValidationError):
        response.data = _validation_body(exc)
    else:
        response.data = error_body(str(exc.detail), _drf_code(exc))
    return response


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's own 400 (e.g. a body over DATA_UPLOAD_MAX_MEMORY_SIZE): JSON under /api/."""
    if _is_api(request):
        return JsonResponse(error_body(str(exception) or "Bad request.", "invalid"), status=400)
    return defaults.bad_request(request, exception)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's 404 (no URL matched, e.g. ``/access-requests/abc/``): the error body under /api/."""
    if _is_api(request):
        return JsonResponse(error_body("No such endpoint or object.", "not_found"), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body("Internal server error.", "server_error"), status=500)
    return defaults.server_error(request)
