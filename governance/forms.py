from collections.abc import Iterator
from typing import Any

from django import forms
from django.forms.models import ModelChoiceIterator

from governance.models import DataSource, Engine, Tag
from governance.models.catalog import DATASOURCE_NAME_RULE
from governance.scopes import PERSONAL_DEFAULT, Scope


class DataSourceForm(forms.Form):
    name = forms.SlugField(
        max_length=100,
        help_text="Short unique name, e.g. shop-prod",
        error_messages={"invalid": DATASOURCE_NAME_RULE},
    )
    description = forms.CharField(max_length=300, required=False)
    engine = forms.ChoiceField(choices=Engine.choices)
    host = forms.CharField(max_length=255, required=False)
    port = forms.IntegerField(required=False, min_value=1, max_value=65535)
    database = forms.CharField(max_length=500, help_text="Database name, or file path for SQLite")
    username = forms.CharField(max_length=150, required=False)
    password = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted, never shown again. Leave empty to keep the current one.",
    )
    clear_password = forms.BooleanField(required=False, label="Remove the stored password")

    def __init__(self, *args, datasource: DataSource | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.datasource = datasource
        if datasource is None:
            del self.fields["clear_password"]

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        others = DataSource.objects.filter(name=name)
        if self.datasource is not None:
            others = others.exclude(pk=self.datasource.pk)
        if others.exists():
            raise forms.ValidationError("A datasource with this name already exists.")
        return name


class ListedChoices(ModelChoiceIterator):
    """The options from one plain query. Django's iterator() opens a server-side cursor on
    PostgreSQL: DECLARE, FETCH and CLOSE, three round trips for a dozen tags on every page
    that shows the picker (each one a scheduling wait on a loaded machine)."""

    def __iter__(self) -> Iterator[Any]:
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        for instance in self.queryset.all():
            yield self.choice(instance)


class ListedModelChoiceField(forms.ModelChoiceField):
    iterator = ListedChoices


class TagChoiceForm(forms.Form):
    tag = ListedModelChoiceField(queryset=Tag.objects.all(), to_field_name="name")
    comment = forms.CharField(max_length=300, required=False)


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100)
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices,
        initial=list(PERSONAL_DEFAULT),
        widget=forms.CheckboxSelectMultiple,
        help_text="What the token may do (your roles still apply)",
    )
    expires_in_days = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=3650,
        help_text="Empty: the default lifetime; 0: never expires",
    )
