"""The command that finds tokens older than SCRAM verifiers: it names them and what to do,
and on request revokes them (audited); tokens with verifiers, or that cannot connect
through agents anyway, are left alone."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from audit.models import AuditEvent
from governance.models import AccessToken, TokenVerifier
from governance.tokens import token_create, token_revoke

pytestmark = pytest.mark.django_db


def _run(*args: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("tokens_without_verifiers", *args, stdout=out, stderr=err)
    except SystemExit as exit_:
        return int(exit_.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


@pytest.fixture
def old_and_new_tokens(alice, reviewer):
    """alice's token from before verifiers, a fresh one, a revoked old one, and an
    api:read-only old one (it never connects through an agent)."""
    old, _secret = token_create(actor=alice, user=alice, name="old-psql")
    fresh, _secret = token_create(actor=alice, user=alice, name="new-psql")
    dead, _secret = token_create(actor=alice, user=alice, name="dead")
    token_revoke(actor=alice, token=dead)
    reader, _secret = token_create(actor=reviewer, user=reviewer, name="bi", scopes=["api:read"])
    TokenVerifier.objects.filter(token__in=[old, dead, reader]).delete()
    return old, fresh


def test_the_command_lists_live_query_tokens_without_verifiers_and_says_what_to_do(
    old_and_new_tokens,
):
    old, _fresh = old_and_new_tokens

    status, out, err = _run()

    assert status == 1
    assert out.splitlines() == [line for line in out.splitlines() if "old-psql" in line]
    assert f"{old.pk}\talice\told-psql\t{old.prefix}" in out
    assert "1 token(s) cannot log in with SCRAM" in err and "makes a new token" in err
    assert AccessToken.objects.get(pk=old.pk).revoked_at is None


def test_revoke_revokes_only_those_tokens_and_audits_why(old_and_new_tokens):
    old, fresh = old_and_new_tokens

    status, out, _err = _run("--revoke")

    assert status == 0 and "revoked 1 token(s)" in out
    assert AccessToken.objects.get(pk=old.pk).revoked_at is not None
    assert AccessToken.objects.get(pk=fresh.pk).revoked_at is None
    event = AuditEvent.objects.filter(action="token.revoked", target_id=str(old.pk)).get()
    assert event.details["reason"] == "no SCRAM verifier"
    assert _run() == (0, "every live query token has a SCRAM verifier\n", "")
