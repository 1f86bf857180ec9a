"""Admin pages for policy rules, guardrails, sensitive defaults and the decision preview.

Admin only (others 403, anonymous → login). Forms only parse input; services validate and
audit, and their refusals (config.errors) come back as form errors.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from config.errors import WardenError, error_message, form_add_error
from governance import policy_selectors, services
from governance.models import (
    DataSource,
    GuardrailAction,
    GuardrailKind,
    GuardrailRule,
    MaskMethod,
    PolicyAction,
    PolicyRule,
    ResourceKind,
    Role,
    Sensitivity,
    Tag,
)
from governance.permissions import AuthenticatedRequest, role_required
from governance.services.policies import (
    DEFAULT_SENSITIVE_ACTIONS,
    GUARDRAIL_FIELDS,
    MAX_MASK_PARAM,
    RULE_FIELDS,
)

# ---------------------------------------------------------------- forms


class SubjectChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.username} (service account)" if obj.is_service_account else obj.username


SUBJECTS_EVERYONE = [("True", "Everyone"), ("False", "Only the people and groups chosen below")]


def _subject_fields(*, everyone_initial: bool) -> dict[str, forms.Field]:
    """Whom a rule applies to: one explicit choice, then a searchable list of checkboxes."""
    return {
        "everyone": forms.TypedChoiceField(
            choices=SUBJECTS_EVERYONE,
            coerce=lambda value: value == "True",
            widget=forms.RadioSelect,
            initial=everyone_initial,
            label="Applies to",
        ),
        "users": SubjectChoiceField(
            queryset=policy_selectors.subject_choices(),
            required=False,
            widget=forms.CheckboxSelectMultiple,
            label="People and service accounts",
        ),
        "groups": forms.ModelMultipleChoiceField(
            queryset=policy_selectors.group_choices(),
            required=False,
            widget=forms.CheckboxSelectMultiple,
            label="Groups",
        ),
    }


def _check_subject_choice(form: forms.Form) -> None:
    """Everyone and named subjects together was the trap: the names did nothing. Refuse it."""
    values = form.cleaned_data
    if values.get("everyone") and (values.get("users") or values.get("groups")):
        form.add_error(
            "everyone",
            "You chose Everyone and also picked people or groups. To limit the rule to them, "
            "choose “Only the people and groups chosen below”.",
        )


class PolicyRuleForm(forms.Form):
    name = forms.CharField(max_length=100)
    description = forms.CharField(max_length=300, required=False)
    priority = forms.IntegerField(
        initial=100,
        min_value=0,
        max_value=10_000,
        help_text="Higher first among rules with the same action",
    )
    enabled = forms.BooleanField(required=False, initial=True)
    resource_kind = forms.ChoiceField(choices=ResourceKind.choices, label="Applies to")
    schema_name = forms.CharField(required=False, label="Schema")
    table_name = forms.CharField(required=False, label="Table")
    column_name = forms.CharField(required=False, label="Column")
    tag = forms.ModelChoiceField(queryset=Tag.objects.all(), required=False, to_field_name="name")
    sensitivity = forms.TypedChoiceField(
        choices=[("", "—"), *Sensitivity.choices],
        coerce=int,
        empty_value=None,
        required=False,
        label="Sensitivity (this level or higher)",
    )
    action = forms.ChoiceField(choices=PolicyAction.choices)
    mask_method = forms.ChoiceField(
        choices=[("", "Datasource default"), *MaskMethod.choices], required=False
    )
    mask_param = forms.IntegerField(
        required=False, min_value=0, max_value=MAX_MASK_PARAM, help_text="N for last_n / partial"
    )
    allow_exact_lookups = forms.BooleanField(
        required=False,
        label="Allow exact lookups",
        help_text="Let these subjects find rows by a value they already know (column = value, "
        "IN, = ANY). Filtering, sorting or grouping by the masked value stays refused; every "
        "lookup is audited.",
    )

    # Which fields matter for which choice (the template hides the others when JS runs).
    SHOWN_WHEN = {
        "schema_name": ("resource_kind", ["schema", "table", "column"]),
        "table_name": ("resource_kind", ["table", "column"]),
        "column_name": ("resource_kind", ["column"]),
        "tag": ("resource_kind", ["tag"]),
        "sensitivity": ("resource_kind", ["sensitivity"]),
        "mask_method": ("action", ["mask"]),
        "mask_param": ("action", ["mask"]),
        "allow_exact_lookups": ("action", ["mask"]),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields.update(_subject_fields(everyone_initial=False))
        self.order_fields(["name", "description", "everyone", "users", "groups"])

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        _check_subject_choice(self)
        return cleaned

    @staticmethod
    def initial_for(rule: PolicyRule) -> dict[str, Any]:
        initial = {key: getattr(rule, key) for key in RULE_FIELDS}
        initial["tag"] = rule.tag.name if rule.tag else None
        initial["users"], initial["groups"] = list(rule.users.all()), list(rule.groups.all())
        return initial

    def service_kwargs(self) -> dict[str, Any]:
        values = dict(self.cleaned_data)
        values["users"], values["groups"] = list(values["users"]), list(values["groups"])
        return values


class GuardrailForm(forms.Form):
    name = forms.CharField(max_length=100)
    description = forms.CharField(max_length=300, required=False)
    kinds = forms.MultipleChoiceField(
        choices=GuardrailKind.choices, widget=forms.CheckboxSelectMultiple, label="Statement kinds"
    )
    action = forms.ChoiceField(choices=GuardrailAction.choices)
    max_rows = forms.IntegerField(
        min_value=0,
        required=False,
        label="Row limit",
        help_text="For “estimated above N rows”: the most rows the planner may estimate an "
        "UPDATE, DELETE or MERGE to change.",
    )
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Most guardrails protect against everyone; the choice is explicit and checked in clean.
        self.fields.update(_subject_fields(everyone_initial=True))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        _check_subject_choice(self)
        return cleaned

    @staticmethod
    def initial_for(guardrail: GuardrailRule) -> dict[str, Any]:
        initial = {key: getattr(guardrail, key) for key in GUARDRAIL_FIELDS}
        initial["users"] = list(guardrail.users.all())
        initial["groups"] = list(guardrail.groups.all())
        return initial

    def service_kwargs(self) -> dict[str, Any]:
        values = dict(self.cleaned_data)
        values["users"], values["groups"] = list(values["users"]), list(values["groups"])
        return values


class DefaultsForm(forms.Form):
    default_sensitive_action = forms.ChoiceField(
        choices=[(value, dict(PolicyAction.choices)[value]) for value in DEFAULT_SENSITIVE_ACTIONS],
        label="Sensitive columns no rule matches",
    )
    default_mask_method = forms.ChoiceField(choices=MaskMethod.choices, label="Mask method")


class PreviewForm(forms.Form):
    datasource = forms.ModelChoiceField(queryset=DataSource.objects.all(), widget=forms.HiddenInput)
    subject = forms.ModelChoiceField(
        queryset=policy_selectors.subject_choices(), label="Subject (user or service account)"
    )
    sql = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80}), strip=False, label="SQL statement"
    )


# ---------------------------------------------------------------- helpers


def _list_url(datasource: DataSource | None) -> str:
    url = reverse("policy_list")
    return f"{url}?datasource={datasource.pk}" if datasource else url


def _selected_datasource(request: AuthenticatedRequest) -> DataSource | None:
    raw = request.GET.get("datasource", "")
    if raw.isdigit():
        return get_object_or_404(DataSource, pk=int(raw))
    return DataSource.objects.order_by("name").first()


def _rule_form(
    request: AuthenticatedRequest,
    form: PolicyRuleForm,
    datasource: DataSource,
    rule: PolicyRule | None,
) -> HttpResponse:
    return render(
        request,
        "governance/policies/rule_form.html",
        {
            "form": form,
            "datasource": datasource,
            "rule": rule,
            "shown_when": PolicyRuleForm.SHOWN_WHEN,
        },
    )


def _htmx_removed(request: AuthenticatedRequest, fallback: str) -> HttpResponse:
    """htmx swaps the row out with an empty body; a plain form post goes back to the list."""
    return HttpResponse("") if request.htmx else redirect(fallback)


# ---------------------------------------------------------------- pages


@role_required(Role.ADMIN)
def policy_list(request: AuthenticatedRequest) -> HttpResponse:
    datasource = _selected_datasource(request)
    context: dict[str, Any] = {
        "datasources": DataSource.objects.order_by("name").only("id", "name"),
        "datasource": datasource,
    }
    if datasource is not None:
        context.update(
            {
                "rules": policy_selectors.policy_rules_list(datasource=datasource),
                "guardrails": policy_selectors.guardrail_rules_list(datasource=datasource),
                "defaults_form": DefaultsForm(
                    initial={
                        "default_sensitive_action": datasource.default_sensitive_action,
                        "default_mask_method": datasource.default_mask_method,
                    }
                ),
                "preview_form": PreviewForm(initial={"datasource": datasource.pk}),
            }
        )
    return render(request, "governance/policies/list.html", context)


@role_required(Role.ADMIN)
def policy_create(request: AuthenticatedRequest, datasource_pk: int) -> HttpResponse:
    datasource = get_object_or_404(DataSource, pk=datasource_pk)
    form = PolicyRuleForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            rule = services.policy_rule_create(
                actor=request.user, datasource=datasource, **form.service_kwargs()
            )
        except WardenError as exc:
            form_add_error(form, exc)
        else:
            messages.success(request, f"Rule {rule.name!r} created.")
            return redirect(_list_url(datasource))
    return _rule_form(request, form, datasource, None)


@role_required(Role.ADMIN)
def policy_edit(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(policy_selectors.policy_rules_list(), pk=pk)
    form = PolicyRuleForm(request.POST or None, initial=PolicyRuleForm.initial_for(rule))
    if request.method == "POST" and form.is_valid():
        try:
            services.policy_rule_update(actor=request.user, rule=rule, **form.service_kwargs())
        except WardenError as exc:
            form_add_error(form, exc)
        else:
            messages.success(request, f"Rule {rule.name!r} saved.")
            return redirect(_list_url(rule.datasource))
    return _rule_form(request, form, rule.datasource, rule)


@role_required(Role.ADMIN)
@require_POST
def policy_toggle(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(PolicyRule, pk=pk)
    services.policy_rule_update(actor=request.user, rule=rule, enabled=not rule.enabled)
    if not request.htmx:
        return redirect(_list_url(rule.datasource))
    rule = policy_selectors.policy_rules_list().get(pk=pk)
    return render(request, "governance/policies/_rule_row.html", {"rule": rule})


@role_required(Role.ADMIN)
@require_POST
def policy_delete(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(PolicyRule.objects.select_related("datasource"), pk=pk)
    datasource = rule.datasource
    services.policy_rule_delete(actor=request.user, rule=rule)
    if not request.htmx:
        messages.success(request, f"Rule {rule.name!r} deleted.")
    return _htmx_removed(request, _list_url(datasource))


@role_required(Role.ADMIN)
def guardrail_create(request: AuthenticatedRequest) -> HttpResponse:
    raw = request.GET.get("datasource", "")
    datasource = get_object_or_404(DataSource, pk=int(raw)) if raw.isdigit() else None
    form = GuardrailForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            guardrail = services.guardrail_rule_create(
                actor=request.user, datasource=datasource, **form.service_kwargs()
            )
        except WardenError as exc:
            form_add_error(form, exc)
        else:
            messages.success(request, f"Guardrail {guardrail.name!r} created.")
            return redirect(_list_url(datasource))
    return render(
        request,
        "governance/policies/guardrail_form.html",
        {"form": form, "datasource": datasource, "guardrail": None},
    )


@role_required(Role.ADMIN)
def guardrail_edit(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    guardrail = get_object_or_404(policy_selectors.guardrail_rules_list(), pk=pk)
    form = GuardrailForm(request.POST or None, initial=GuardrailForm.initial_for(guardrail))
    if request.method == "POST" and form.is_valid():
        try:
            services.guardrail_rule_update(
                actor=request.user, guardrail=guardrail, **form.service_kwargs()
            )
        except WardenError as exc:
            form_add_error(form, exc)
        else:
            messages.success(request, f"Guardrail {guardrail.name!r} saved.")
            return redirect(_list_url(guardrail.datasource))
    return render(
        request,
        "governance/policies/guardrail_form.html",
        {"form": form, "datasource": guardrail.datasource, "guardrail": guardrail},
    )


@role_required(Role.ADMIN)
@require_POST
def guardrail_delete(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    guardrail = get_object_or_404(GuardrailRule.objects.select_related("datasource"), pk=pk)
    datasource = guardrail.datasource
    services.guardrail_rule_delete(actor=request.user, guardrail=guardrail)
    if not request.htmx:
        messages.success(request, f"Guardrail {guardrail.name!r} deleted.")
    return _htmx_removed(request, _list_url(datasource))


@role_required(Role.ADMIN)
@require_POST
def guardrail_recommended(request: AuthenticatedRequest, datasource_pk: int) -> HttpResponse:
    datasource = get_object_or_404(DataSource, pk=datasource_pk)
    created = services.guardrails_recommended_create(actor=request.user, datasource=datasource)
    if created:
        messages.success(request, f"Added {len(created)} recommended guardrail(s).")
    else:
        messages.info(request, "All recommended guardrails are already in place.")
    return redirect(_list_url(datasource))


@role_required(Role.ADMIN)
@require_POST
def policy_defaults(request: AuthenticatedRequest, datasource_pk: int) -> HttpResponse:
    datasource = get_object_or_404(DataSource, pk=datasource_pk)
    form = DefaultsForm(request.POST)
    if form.is_valid():
        try:
            services.datasource_defaults_set(
                actor=request.user, datasource=datasource, **form.cleaned_data
            )
        except WardenError as exc:
            messages.error(request, error_message(exc))
        else:
            messages.success(request, "Defaults for sensitive columns saved.")
    else:
        messages.error(request, "Pick a default action and mask method from the lists.")
    return redirect(_list_url(datasource))


@role_required(Role.ADMIN)
@require_POST
def policy_preview(request: AuthenticatedRequest) -> HttpResponse:
    """The agent's decision for a subject and a statement (an htmx fragment)."""
    form = PreviewForm(request.POST)
    preview, error = None, ""
    if form.is_valid():
        try:
            preview = services.policy_preview(
                datasource=form.cleaned_data["datasource"],
                subject=form.cleaned_data["subject"],
                sql=form.cleaned_data["sql"],
            )
        except WardenError as exc:
            error = error_message(exc)
    else:
        error = "; ".join(
            f"{field}: {' '.join(str(e) for e in errs)}" for field, errs in form.errors.items()
        )
    return render(
        request, "governance/policies/_preview_result.html", {"preview": preview, "error": error}
    )
