"""List endpoints: strict pagination, ordering and query parameters.

DRF's stock classes ignore what they cannot parse (``?offset=abc`` silently means 0, an
unknown ``?ordering=`` silently means the default). A client that misspells a parameter
should hear about it, so here every malformed value is a 400 that names the parameter.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request


def refuse_blank(request: Request, names: Any) -> None:
    # DRF reads ``?name=`` as "not given"; a client that sends it meant something.
    blank = {name: ["May not be blank."] for name in names if request.query_params.get(name) == ""}
    if blank:
        raise ValidationError(blank)


def query_params(request: Request, serializer_class: type[serializers.Serializer]) -> dict:
    """The query parameters validated by ``serializer_class`` (also what the schema documents)."""
    refuse_blank(request, serializer_class().fields)
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class StrictLimitOffsetPagination(LimitOffsetPagination):
    max_limit = 500

    def _parsed(self, request: Request, name: str, low: int, high: int | None) -> int | None:
        raw = request.query_params.get(name)
        if raw is None:
            return None
        try:
            value = int(raw)
        except ValueError:
            raise ValidationError({name: ["A whole number is required."]}) from None
        if value < low or (high is not None and value > high):
            bounds = f"from {low} to {high}" if high else f"at least {low}"
            raise ValidationError({name: [f"Must be {bounds}."]})
        return value

    def get_limit(self, request: Request) -> int | None:
        limit = self._parsed(request, self.limit_query_param, 1, self.max_limit)
        return self.default_limit if limit is None else limit

    def get_offset(self, request: Request) -> int:
        return self._parsed(request, self.offset_query_param, 0, None) or 0

    def get_schema_operation_parameters(self, view: Any) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        bounds = {self.limit_query_param: (1, self.max_limit), self.offset_query_param: (0, None)}
        for parameter in parameters:
            low, high = bounds[parameter["name"]]
            parameter["schema"]["minimum"] = low
            if high:
                parameter["schema"]["maximum"] = high
        return parameters


class StrictOrderingFilter(OrderingFilter):
    """``?ordering=name,-created_at`` over the view's ``ordering_fields``; unknown → 400."""

    def get_ordering(self, request: Request, queryset: QuerySet, view: Any) -> Any:
        raw = request.query_params.get(self.ordering_param)
        if raw is None:
            return self.get_default_ordering(view)
        allowed = set(getattr(view, "ordering_fields", ()))
        terms = [term.strip() for term in raw.split(",")]
        unknown = [term for term in terms if term.lstrip("-") not in allowed]
        if unknown:
            choices = ", ".join(sorted(allowed))
            raise ValidationError(
                {self.ordering_param: [f"Unknown field(s) {unknown}; use {choices}."]}
            )
        return terms

    def get_schema_operation_parameters(self, view: Any) -> list[dict]:
        fields = sorted(getattr(view, "ordering_fields", ()))
        choices = ", ".join(f"{name} or -{name}" for name in fields)
        term = f"-?({'|'.join(fields)})"
        return [
            {
                "name": self.ordering_param,
                "required": False,
                "in": "query",
                "description": f"Comma-separated sort keys: {choices}",
                "schema": {"type": "string", "pattern": f"^{term}(,{term})*$"},
            }
        ]
