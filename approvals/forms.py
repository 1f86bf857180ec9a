"""HTML forms: scopes are typed one name per line; the services validate them."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.models import Group

from approvals.models import AccessLevel
from governance.models import DataSource


def _lines(value: str) -> list[str]:
    return [line.strip() for line in (value or "").replace(",", "\n").splitlines() if line.strip()]


class ScopeFormMixin(forms.Form):
    tables = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        help_text="schema.table, one per line",
    )
    columns = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        help_text="schema.table.column, one per line",
    )
    tags = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        help_text="Tag names such as PII.Email, one per line",
    )

    def scope(self) -> dict[str, list[str]]:
        return {
            key: _lines(self.cleaned_data.get(key, "")) for key in ("tables", "columns", "tags")
        }

    @staticmethod
    def initial_from(scope: dict[str, Any]) -> dict[str, str]:
        return {key: "\n".join(scope.get(key, [])) for key in ("tables", "columns", "tags")}


class AccessRequestForm(ScopeFormMixin):
    datasource = forms.ModelChoiceField(queryset=DataSource.objects.all())
    level = forms.ChoiceField(choices=AccessLevel.choices)
    duration_minutes = forms.IntegerField(min_value=1, initial=60)
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))
    statement = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text="Optional: the one SQL statement you need to run",
    )
    field_order = [
        "datasource",
        "tables",
        "columns",
        "tags",
        "level",
        "duration_minutes",
        "reason",
        "statement",
    ]


class ApproveForm(ScopeFormMixin):
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    duration_minutes = forms.IntegerField(
        min_value=1, required=False, help_text="Shorten the duration (minutes)"
    )
    statement_only = forms.BooleanField(required=False, label="Approve only this statement shape")
    max_runs = forms.IntegerField(
        min_value=1, required=False, help_text="With a statement-bound approval: at most N runs"
    )


class DenyForm(forms.Form):
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)


class ExtendForm(forms.Form):
    duration_minutes = forms.IntegerField(min_value=1, initial=60)
    reason = forms.CharField(max_length=1000)


class RevokeForm(forms.Form):
    reason = forms.CharField(max_length=1000, required=False)


class BreakGlassForm(ScopeFormMixin):
    datasource = forms.ModelChoiceField(queryset=DataSource.objects.all())
    level = forms.ChoiceField(choices=AccessLevel.choices)
    duration_minutes = forms.IntegerField(min_value=1, required=False)
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))
    field_order = ["datasource", "tables", "columns", "tags", "level", "duration_minutes", "reason"]


class ReviewPolicyForm(forms.Form):
    reviewer_groups = forms.ModelMultipleChoiceField(
        queryset=Group.objects.order_by("name"),
        required=False,
        help_text="Empty: everyone with the reviewer role reviews this datasource",
    )
    required_approvals = forms.IntegerField(min_value=1, initial=1)
    pending_expiry_minutes = forms.IntegerField(min_value=1, initial=24 * 60)
    max_grant_minutes = forms.IntegerField(
        min_value=1, required=False, help_text="Empty: the WARDEN_MAX_GRANT_MINUTES setting"
    )
    expiry_warning_minutes = forms.IntegerField(min_value=1, initial=15)
    break_glass_enabled = forms.BooleanField(required=False)
    break_glass_minutes = forms.IntegerField(min_value=1, initial=60)
    webhook_url = forms.URLField(required=False)
    webhook_slack = forms.BooleanField(required=False, label="Slack-compatible payload")
    notify_emails = forms.CharField(required=False, help_text="Comma-separated addresses")

    def clean_notify_emails(self) -> list[str]:
        return _lines(self.cleaned_data.get("notify_emails", ""))
