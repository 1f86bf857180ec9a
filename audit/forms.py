"""Query parameters of the audit pages and API: one form, turned into EventFilters."""

from __future__ import annotations

from typing import Any

from django import forms

from audit.exports import EXPORT_FORMATS
from audit.selectors import DECISION_CHOICES, DECISION_LABELS, EventFilters


class EventFilterForm(forms.Form):
    date_from = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )
    actor = forms.CharField(required=False, max_length=150)
    datasource = forms.CharField(required=False, max_length=100)
    action = forms.CharField(required=False, max_length=100, help_text='e.g. "policy.*"')
    decision = forms.ChoiceField(
        required=False, choices=[("", "any")] + [(d, DECISION_LABELS[d]) for d in DECISION_CHOICES]
    )
    tag = forms.CharField(required=False, max_length=100, label="Tag touched")
    channel = forms.CharField(required=False, max_length=20, help_text='e.g. "mcp"')

    # The API and the command line say from/to; the form fields cannot be named `from`.
    ALIASES = {"from": "date_from", "to": "date_to"}

    def __init__(self, data: Any = None, **kwargs: Any) -> None:
        if data is not None:
            data = data.copy() if hasattr(data, "copy") else dict(data)
            for alias, name in self.ALIASES.items():
                if alias in data and name not in data:
                    data[name] = data[alias]
        super().__init__(data, **kwargs)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            raise forms.ValidationError("The period ends before it starts.")
        return cleaned

    def filters(self) -> EventFilters:
        """The filters of a valid form (an empty filter when the form is unbound)."""
        if not self.is_bound:
            return EventFilters()
        data = self.cleaned_data
        return EventFilters(
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            **{
                key: data.get(key) or ""
                for key in ("actor", "datasource", "action", "decision", "tag", "channel")
            },
        )


class ExportForm(EventFilterForm):
    format = forms.ChoiceField(choices=[(name, name.upper()) for name in EXPORT_FORMATS])
