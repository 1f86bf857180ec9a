"""Field encryption key rotation: several keys (newest first), every one readable until the
rotation command has re-encrypted each stored secret under the newest; safe to run again."""

from __future__ import annotations

from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from audit.models import AuditEvent
from governance import crypto
from governance.models import DataSource
from tests.factories import DataSourceFactory

pytestmark = pytest.mark.django_db

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()


def _stored_under_old_key(settings, names: list[str]) -> list[DataSource]:
    settings.FIELD_ENCRYPTION_KEYS = [OLD_KEY]
    return [
        DataSourceFactory(name=name, password_encrypted=crypto.encrypt_secret(f"pw-{name}"))
        for name in names
    ]


def _rotate() -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("keys", "rotate-field-key", stdout=out, stderr=err)
    except SystemExit as exit_:
        return int(exit_.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def _readable_with_only(key: str, ciphertext: str) -> bool:
    try:
        Fernet(key.encode()).decrypt(ciphertext.encode())
    except Exception:
        return False
    return True


def test_old_ciphertext_still_decrypts_before_the_rotation_command_runs(settings):
    (shop,) = _stored_under_old_key(settings, ["shop"])
    settings.FIELD_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]

    assert crypto.decrypt_secret(shop.password_encrypted) == "pw-shop"
    assert not crypto.secret_is_current(shop.password_encrypted)
    # New secrets are written under the newest key only.
    assert _readable_with_only(NEW_KEY, crypto.encrypt_secret("fresh"))
    assert not _readable_with_only(OLD_KEY, crypto.encrypt_secret("fresh"))


def test_rotation_re_encrypts_every_secret_under_the_newest_key_and_reports_counts(settings):
    shop, crm = _stored_under_old_key(settings, ["shop", "crm"])
    settings.FIELD_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    already = DataSourceFactory(name="hr", password_encrypted=crypto.encrypt_secret("pw-hr"))
    DataSourceFactory(name="nopass", password_encrypted="")

    status, out, _err = _rotate()

    assert status == 0
    assert "re-encrypted 2, already under the newest key 1" in out and "complete" in out
    for datasource in (shop, crm, already):
        datasource.refresh_from_db()
        assert _readable_with_only(NEW_KEY, datasource.password_encrypted)
    # The old key can now be dropped: everything still decrypts with the new one alone.
    settings.FIELD_ENCRYPTION_KEYS = [NEW_KEY]
    assert crypto.decrypt_secret(shop.password_encrypted) == "pw-shop"
    event = AuditEvent.objects.get(action="keys.field_rotated")
    assert event.decision == "ok" and event.details["rotated"] == 2


def test_rotation_is_idempotent(settings):
    (shop,) = _stored_under_old_key(settings, ["shop"])
    settings.FIELD_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    _rotate()
    shop.refresh_from_db()
    after_first = shop.password_encrypted

    status, out, _err = _rotate()

    shop.refresh_from_db()
    assert status == 0 and "re-encrypted 0, already under the newest key 1" in out
    assert shop.password_encrypted == after_first


def test_a_secret_no_key_reads_is_reported_left_alone_and_fails_the_command(settings):
    (lost,) = _stored_under_old_key(settings, ["lost"])
    settings.FIELD_ENCRYPTION_KEYS = [NEW_KEY]  # the old key was dropped too early

    status, _out, err = _rotate()

    assert status == 1 and "lost" in err and "run it again" in err
    lost_before = lost.password_encrypted
    lost.refresh_from_db()
    assert lost.password_encrypted == lost_before
    assert AuditEvent.objects.get(action="keys.field_rotated").decision == "incomplete"


def test_a_malformed_field_key_is_a_clear_configuration_error(settings):
    settings.FIELD_ENCRYPTION_KEYS = [NEW_KEY, "not-a-fernet-key"]

    with pytest.raises(ImproperlyConfigured, match="key 2 is not a Fernet key"):
        crypto.encrypt_secret("x")


def test_secrets_stored_under_the_embedded_default_stay_readable_after_a_key_is_set(settings):
    settings.FIELD_ENCRYPTION_KEYS = []
    embedded = crypto.encrypt_secret("from-before")
    settings.FIELD_ENCRYPTION_KEYS = [NEW_KEY]

    assert crypto.decrypt_secret(embedded) == "from-before"


def test_the_warden_cli_runs_the_keys_command(settings, capsys):
    from warden.cli import main

    settings.FIELD_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]

    assert main(["keys", "status"]) == 0
    assert main(["keys", "new-field-key"]) == 0

    out = capsys.readouterr().out
    assert "field encryption: 2 key(s) configured" in out
    assert f"signing key (current): {crypto.signing_key_id()}" in out
    Fernet(out.strip().splitlines()[-1].encode())  # a usable new key
    assert NEW_KEY not in out and OLD_KEY not in out


def test_rotation_re_encrypts_second_factor_secrets_and_they_still_verify(settings):
    """TOTP secrets and recovery-code seeds are field-encrypted too (MfaAdapter): after the
    rotation they verify a code with the newest key alone."""
    import pyotp
    from allauth.mfa.models import Authenticator
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
    from allauth.mfa.totp.internal.auth import TOTP, validate_totp_code

    from tests.factories import UserFactory

    settings.FIELD_ENCRYPTION_KEYS = [OLD_KEY]
    person = UserFactory(username="reviewer-with-totp")
    secret = pyotp.random_base32()
    totp = TOTP.activate(person, secret).instance
    codes = RecoveryCodes.activate(person).instance
    first_code = RecoveryCodes(codes).get_unused_codes()[0]
    assert not _readable_with_only(NEW_KEY, totp.data["secret"])

    settings.FIELD_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    status, out, _err = _rotate()

    assert status == 0 and "re-encrypted 2" in out
    settings.FIELD_ENCRYPTION_KEYS = [NEW_KEY]  # the old key is gone
    totp.refresh_from_db()
    codes.refresh_from_db()
    assert _readable_with_only(NEW_KEY, totp.data["secret"])
    assert validate_totp_code(secret, pyotp.TOTP(secret).now())
    assert TOTP(totp).validate_code(pyotp.TOTP(secret).now())
    assert RecoveryCodes(codes).get_unused_codes()[0] == first_code
    assert Authenticator.objects.filter(user=person).count() == 2
