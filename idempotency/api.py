"""``@idempotent``: a POST handler that honours the ``Idempotency-Key`` header.

The first request with a key runs the handler and stores its answer in the same
transaction; a retry with the same key and body gets that answer again (with
``Idempotent-Replayed: true``) and creates nothing. The same key with another body is a
409. A concurrent duplicate waits on the unique index until the first commits, then
replays. A handler that fails stores nothing, so the client may retry. Keys are per user
and per operation.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.db import IntegrityError, transaction
from drf_spectacular.utils import OpenApiParameter
from rest_framework.request import Request
from rest_framework.response import Response

from config.errors import InvalidInput, StateConflict
from idempotency.models import IdempotentRequest

HEADER = "Idempotency-Key"
KEY_PATTERN = r"^[A-Za-z0-9_.:-]{1,200}$"
IDEMPOTENCY_KEY = OpenApiParameter(
    HEADER,
    str,
    OpenApiParameter.HEADER,
    required=False,
    pattern=KEY_PATTERN,
    description="Retry-safe creation: a retry with the same key and body returns the first "
    "answer and creates nothing; the same key with another body is a 409.",
)


def _body_sha256(request: Request) -> str:
    canonical = json.dumps(request.data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(stored: IdempotentRequest, body_sha256: str) -> Response:
    if stored.body_sha256 != body_sha256:
        raise StateConflict(f"This {HEADER} was used with another body.", field=HEADER)
    return Response(
        stored.response, status=stored.status_code, headers={"Idempotent-Replayed": "true"}
    )


def idempotent(handler: Callable[..., Response]) -> Callable[..., Response]:
    @wraps(handler)
    def wrapped(view: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(HEADER)
        if key is None:
            return handler(view, request, *args, **kwargs)
        if not re.fullmatch(KEY_PATTERN, key):
            raise InvalidInput("1 to 200 letters, digits or -_.:", field=HEADER)
        body_sha256 = _body_sha256(request)
        identity = {"user": request.user, "operation": f"POST {request.path}", "key": key}
        with transaction.atomic():
            try:
                with transaction.atomic():
                    claim = IdempotentRequest.objects.create(
                        **identity, body_sha256=body_sha256, status_code=0, response={}
                    )
            except IntegrityError:
                return _replay(IdempotentRequest.objects.get(**identity), body_sha256)
            response = handler(view, request, *args, **kwargs)
            if response.status_code >= 400:
                transaction.set_rollback(True)
                return response
            claim.status_code = response.status_code
            claim.response = response.data
            claim.save(update_fields=["status_code", "response"])
            return response

    return wrapped
