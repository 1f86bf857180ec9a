"""The error vocabulary: domain refusals become the one error body, a bug stays a 500."""

from __future__ import annotations

import pytest

from config.api import warden_exception_handler
from config.errors import InvalidInput, NotAllowed, NotFound, StateConflict


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (InvalidInput("bad port", field="port"), 400, "invalid"),
        (NotAllowed("admins only"), 403, "not_allowed"),
        (NotFound("no such grant"), 404, "not_found"),
        (StateConflict("already approved"), 409, "conflict"),
    ],
)
def test_domain_refusals_become_the_error_body(error, status, code):
    response = warden_exception_handler(error, {})
    assert response.status_code == status
    assert response.data["code"] == code and response.data["detail"] == str(error)


def test_a_refusal_names_its_field():
    response = warden_exception_handler(InvalidInput("1 to 65535", field="port"), {})
    assert response.data["fields"] == {"port": ["1 to 65535"]}


@pytest.mark.parametrize("bug", [ValueError("x"), PermissionError("y"), KeyError("z")])
def test_a_bare_exception_is_not_mistaken_for_a_refusal(bug):
    assert warden_exception_handler(bug, {}) is None  # DRF re-raises: a 500


def test_a_service_refusal_shows_on_the_form_field():
    from django import forms

    from config.errors import form_add_error

    class PortForm(forms.Form):
        port = forms.IntegerField()

    form = PortForm({"port": "5432"})
    assert form.is_valid()
    form_add_error(form, InvalidInput("port is taken", field="port"))
    assert form.errors == {"port": ["port is taken"]}
