"""Datasources: encrypted passwords, clear connection errors, admin-only changes."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from config.errors import NotAllowed
from governance.crypto import decrypt_secret
from governance.models import DataSource, Engine
from governance.services import datasource_create, datasource_test_connection, datasource_update
from tests import sources

pytestmark = pytest.mark.django_db


def _payload(**overrides) -> dict:
    return {
        "name": "warehouse",
        "engine": "postgresql",
        "host": "127.0.0.1",
        "port": 5432,
        "database": "test",
        "username": "postgres",
        "password": "s3cret-pw",
        **overrides,
    }


def test_password_is_encrypted_at_rest_and_never_returned(admin, client):
    client.force_login(admin)
    response = client.post("/api/v1/datasources/", _payload(), content_type="application/json")
    assert response.status_code == 201, response.content
    assert "password" not in response.json()
    assert response.json()["has_password"] is True
    stored = DataSource.objects.get(name="warehouse")
    assert "s3cret-pw" not in stored.password_encrypted
    assert decrypt_secret(stored.password_encrypted) == "s3cret-pw"
    detail = client.get(f"/api/v1/datasources/{stored.pk}/").json()
    assert "s3cret-pw" not in str(detail)
    page = client.get(f"/datasources/{stored.pk}/edit/").content.decode()
    assert "s3cret-pw" not in page


def test_update_without_password_keeps_the_stored_one(admin):
    datasource = datasource_create(actor=admin, **_payload())
    datasource_update(actor=admin, datasource=datasource, description="nightly copy")
    datasource.refresh_from_db()
    assert decrypt_secret(datasource.password_encrypted) == "s3cret-pw"
    assert datasource.description == "nightly copy"


def test_datasource_changes_are_audited_without_the_password(admin):
    datasource = datasource_create(actor=admin, **_payload())
    datasource_update(actor=admin, datasource=datasource, password="another-pw")
    events = list(AuditEvent.objects.filter(target_id=str(datasource.pk)).order_by("sequence"))
    assert [event.action for event in events] == ["datasource.created", "datasource.updated"]
    assert events[1].details["password_changed"] is True
    assert "pw" not in str([event.details for event in events])


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"engine": "oracle"}, "is not a valid choice"),
        ({"host": ""}, "host is required"),
        ({"database": ""}, "database"),
    ],
)
def test_invalid_datasource_gets_a_clear_400(admin, client, overrides, error):
    client.force_login(admin)
    response = client.post(
        "/api/v1/datasources/", _payload(**overrides), content_type="application/json"
    )
    assert response.status_code == 400
    assert error in str(response.json())
    assert not DataSource.objects.exists()


def test_connection_test_reports_version_or_clear_reason(admin):
    good = datasource_create(actor=admin, **_payload(name="good"))
    ok, message = datasource_test_connection(actor=admin, datasource=good)
    assert ok and message.startswith("PostgreSQL 15")
    wrong_port = datasource_create(actor=admin, **_payload(name="port", port=1))
    ok, message = datasource_test_connection(actor=admin, datasource=wrong_port)
    assert not ok and "Connection refused by 127.0.0.1:1" in message
    wrong_db = datasource_create(actor=admin, **_payload(name="db", database="no_such_db_xyz"))
    ok, message = datasource_test_connection(actor=admin, datasource=wrong_db)
    assert not ok and "Database 'no_such_db_xyz' does not exist" in message
    wrong_host = datasource_create(
        actor=admin, **_payload(name="host", host="no-such-host.invalid")
    )
    ok, message = datasource_test_connection(actor=admin, datasource=wrong_host)
    assert not ok and "no-such-host.invalid" in message


def test_mariadb_wrong_password_and_database_are_explained(admin):
    with sources.mysql_database() as name:
        bad_pw = datasource_create(
            actor=admin,
            name="m1",
            engine=Engine.MYSQL,
            host="127.0.0.1",
            port=3306,
            database=name,
            username="root",
            password="nope",
        )
        ok, message = datasource_test_connection(actor=admin, datasource=bad_pw)
        assert not ok and "Authentication failed for user 'root'" in message
        good = datasource_create(
            actor=admin,
            name="m2",
            engine=Engine.MYSQL,
            host="127.0.0.1",
            port=3306,
            database=name,
            username="root",
        )
        ok, message = datasource_test_connection(actor=admin, datasource=good)
        assert ok and "MariaDB" in message
    missing = datasource_create(
        actor=admin,
        name="m3",
        engine=Engine.MYSQL,
        host="127.0.0.1",
        port=3306,
        database="no_such_db_xyz",
        username="root",
    )
    ok, message = datasource_test_connection(actor=admin, datasource=missing)
    assert not ok and "does not exist" in message


def test_sqlite_missing_file_is_explained(admin, tmp_path):
    datasource = datasource_create(
        actor=admin, name="lite", engine=Engine.SQLITE, database=str(tmp_path / "missing.sqlite3")
    )
    ok, message = datasource_test_connection(actor=admin, datasource=datasource)
    assert not ok and "does not exist" in message


def test_connection_test_button_renders_the_result(admin, client):
    datasource = datasource_create(actor=admin, **_payload())
    client.force_login(admin)
    response = client.post(f"/datasources/{datasource.pk}/test/")
    assert response.status_code == 200
    assert "Connected: PostgreSQL" in response.content.decode()


@pytest.mark.parametrize("person", ["reviewer", "auditor", "requester", "outsider"])
def test_only_admins_create_datasources(person, request, client):
    user = request.getfixturevalue(person)
    client.force_login(user)
    assert (
        client.post("/api/v1/datasources/", _payload(), content_type="application/json").status_code
        == 403
    )
    assert client.post("/datasources/new/", _payload()).status_code == 403
    with pytest.raises(NotAllowed):
        datasource_create(actor=user, **_payload())


@pytest.mark.parametrize(
    ("person", "status"),
    [("admin", 200), ("reviewer", 200), ("auditor", 200), ("requester", 403), ("outsider", 403)],
)
def test_datasource_list_is_for_catalog_readers(person, status, request, client):
    client.force_login(request.getfixturevalue(person))
    assert client.get("/datasources/").status_code == status
    assert client.get("/api/v1/datasources/").status_code == status


def test_anonymous_is_sent_to_login(client, db):
    response = client.get("/datasources/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert client.get("/api/v1/datasources/").status_code in (401, 403)


def test_a_sqlite_datasource_outside_the_configured_directories_is_a_400_naming_database(
    api_as, admin, tmp_path, settings
):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "shop.sqlite3").write_bytes(b"")
    outside = tmp_path / "outside.sqlite3"
    outside.write_bytes(b"")
    (allowed / "link.sqlite3").symlink_to(outside)
    settings.WARDEN_SQLITE_DIRS = [allowed]
    client = api_as(admin)

    def create(name: str, database: str):
        body = {"name": name, "engine": "sqlite", "database": database}
        return client.post("/api/v1/datasources/", body, format="json")

    for database in ("/etc/passwd", str(outside), str(allowed / "link.sqlite3"), "file:x?mode=ro"):
        response = create("escape", database)
        assert response.status_code == 400, (database, response.content)
        assert "database" in response.json()["fields"]
    assert create("inside", str(allowed / "shop.sqlite3")).status_code == 201
    assert not DataSource.objects.filter(name="escape").exists()
