"""What every request serializer of the API shares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.http import QueryDict
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from config.errors import NotAllowed


def _is_text_field(field: serializers.Field) -> bool:
    return isinstance(field, serializers.CharField) and not field.read_only


def _wrong_type(field: serializers.Field, value: Any) -> bool:
    if value is None or field.read_only:
        return False
    if _is_text_field(field):
        return not isinstance(value, str)
    if isinstance(field, serializers.BooleanField):
        return not isinstance(value, bool)
    if isinstance(field, serializers.IntegerField):
        return isinstance(value, bool) or not isinstance(value, int)
    if isinstance(field, serializers.FloatField):
        return isinstance(value, bool) or not isinstance(value, int | float)
    if isinstance(field, serializers.ListField) and _is_text_field(field.child):
        return isinstance(value, list) and any(not isinstance(item, str) for item in value)
    return False


class StrictStrings:
    """Refuse a JSON value of another type than the schema says (string, boolean, number).

    DRF quietly turns ``0`` into ``"0"`` and ``"yes"`` into ``True``; a JSON client that sends
    them has a bug worth a 400 naming the field, as the published schema says. Query strings
    are all text, so they are left to the fields' own parsing.

    Fields the caller may not set are refused, not ignored: a read-only field, or one
    ``fields_refused`` names for this caller (e.g. a role-restricted one), is a 403 naming
    it. (Fields the schema does not declare stay ignored: the published schema allows them.)
    """

    fields: Any

    def fields_refused(self, data: Mapping[str, Any]) -> list[str]:
        """The fields of ``data`` this caller may not set (serializers override)."""
        return []

    def _refuse_fields(self, data: Mapping[str, Any]) -> None:
        read_only = [name for name, field in self.fields.items() if field.read_only]
        refused = [name for name in data if name in read_only] + self.fields_refused(data)
        if refused:
            raise NotAllowed(f"You may not set {', '.join(refused)} here.", fields=refused)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping) and not isinstance(data, QueryDict):
            self._refuse_fields(data)
            wrong = {
                name: ["Must be a string."]
                for name, field in self.fields.items()
                if name in data and _wrong_type(field, data[name])
            }
            if wrong:
                raise ValidationError(wrong)
        return super().to_internal_value(data)  # type: ignore[misc]
