"""The embedded demo: people, working tokens and a scanned shop database."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from classification.models import ScanRun
from governance.models import ColumnTag, DataSource, User

pytestmark = pytest.mark.django_db(transaction=True)


def test_demo_creates_people_tokens_and_a_scanned_shop(settings, tmp_path, capsys, client):
    settings.DEMO_DATABASE_PATH = tmp_path / "demo_shop.sqlite3"
    call_command("warden_demo")
    output = capsys.readouterr().out
    assert "admin      password warden-admin" in output
    copilot_token = output.split("API token: ")[1].split()[0]

    assert settings.DEMO_DATABASE_PATH.exists()
    shop = DataSource.objects.get(name="shop")
    scan = ScanRun.objects.get(datasource=shop)
    assert scan.state == ScanRun.State.SUCCEEDED and scan.tables_failed == 0
    tagged = set(
        ColumnTag.objects.filter(column__table__datasource=shop).values_list("tag__name", flat=True)
    )
    assert {"PII.Email", "PCI.CardNumber", "Financial.IBAN", "Secret.Credential"} <= tagged

    copilot = User.objects.get(username="copilot")
    assert copilot.is_service_account and not copilot.has_usable_password()
    # The copilot's token has the personal default scopes (query, requests): the MCP API's.
    response = client.get("/api/v1/mcp/whoami", HTTP_AUTHORIZATION=f"Bearer {copilot_token}")
    assert response.status_code == 200 and response.json() == {"identity": "copilot"}
    assert client.login(username="reviewer", password="warden-reviewer")

    # Running it again keeps one datasource, rescans, and revokes the previous demo tokens.
    call_command("warden_demo", "--no-scan")
    assert DataSource.objects.filter(name="shop").count() == 1
    stale = client.get("/api/v1/mcp/whoami", HTTP_AUTHORIZATION=f"Bearer {copilot_token}")
    assert stale.status_code == 401
