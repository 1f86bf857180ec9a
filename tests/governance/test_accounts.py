"""Sign-in, sign-out and password reset through django-allauth."""

import pytest
from django.core import mail

pytestmark = pytest.mark.django_db


def test_sign_in_shows_the_dashboard_and_navigation_by_role(client, auditor):
    response = client.post(
        "/accounts/login/", {"login": auditor.username, "password": "correct horse battery staple"}
    )
    assert response.status_code == 302
    page = client.get("/").content.decode()
    assert "Audit" in page and "Catalog" in page
    assert "Policies" not in page  # admins only


def test_wrong_password_is_refused_with_a_message(client, auditor):
    response = client.post("/accounts/login/", {"login": auditor.username, "password": "nope"})
    assert response.status_code == 200
    assert "not correct" in response.content.decode()
    assert client.get("/").status_code == 302


def test_password_reset_sends_a_mail_with_a_working_link(client, reviewer):
    response = client.post("/accounts/password/reset/", {"email": reviewer.email})
    assert response.status_code == 302
    assert len(mail.outbox) == 1 and reviewer.email in mail.outbox[0].to
    link = next(
        word for word in mail.outbox[0].body.split() if "/accounts/password/reset/key/" in word
    )
    follow = client.get(link, follow=True)
    assert follow.status_code == 200
    assert "password1" in follow.content.decode()


def test_sign_up_is_closed_by_default(client, db):
    response = client.get("/accounts/signup/")
    assert "Sign Up Closed" in response.content.decode() or response.status_code == 403
