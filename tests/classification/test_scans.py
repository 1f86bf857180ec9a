"""Scans against real PostgreSQL, MariaDB and SQLite databases."""

from __future__ import annotations

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.models import AuditEvent
from classification.models import ScanRun, ScanTableResult
from classification.services import scan_finish, scan_prepare, scan_start, scan_table_classify
from config.errors import NotAllowed
from governance.models import Column, ColumnChange, ColumnTag, Engine, Tag
from governance.services import column_tag_remove, column_tag_set_state, datasource_create
from tests import sources

pytestmark = pytest.mark.django_db

EXPECTED = {
    "email": "PII.Email",
    "full_name": "PII.PersonName",
    "ssn": "PII.NationalID",
    "card_number": "PCI.CardNumber",
    "date_of_birth": "PII.DateOfBirth",
    "phone": "PII.Phone",
}


def _tags_by_column(datasource) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for column_tag in ColumnTag.objects.filter(column__table__datasource=datasource).select_related(
        "column", "tag"
    ):
        found.setdefault(column_tag.column.name, set()).add(column_tag.tag.name)
    return found


def _assert_people_tagged(datasource) -> None:
    tags = _tags_by_column(datasource)
    for column, tag in EXPECTED.items():
        assert tag in tags.get(column, set()), (
            f"{column} should carry {tag}, has {tags.get(column)}"
        )
    assert not tags.get("sku") and not tags.get("quantity") and not tags.get("id"), tags


@pytest.fixture
def postgres_source(admin):
    with sources.postgres_database() as name:
        sources.postgres_people(name)
        yield sources.postgres_datasource(admin, name="pg-people", database=name)


@pytest.fixture
def mysql_source(admin):
    with sources.mysql_database() as name:
        sources.mysql_people(name)
        yield sources.mysql_datasource(admin, name="maria-people", database=name)


@pytest.fixture
def sqlite_source(admin, tmp_path):
    path = sources.sqlite_people(tmp_path / "people.sqlite3")
    return datasource_create(
        actor=admin, name="lite-people", engine=Engine.SQLITE, database=str(path)
    )


def test_scan_of_postgresql_tags_sensitive_columns_and_leaves_plain_ones(
    run_scan, admin, postgres_source
):
    scan = run_scan(admin, postgres_source)
    assert scan.state == ScanRun.State.SUCCEEDED, scan.error
    assert (scan.tables_total, scan.tables_done, scan.tables_failed) == (2, 2, 0)
    assert scan.columns_classified == 12
    _assert_people_tagged(postgres_source)


def test_scan_of_mariadb_tags_sensitive_columns(run_scan, admin, mysql_source):
    scan = run_scan(admin, mysql_source)
    assert scan.state == ScanRun.State.SUCCEEDED, scan.error
    _assert_people_tagged(mysql_source)


def test_scan_of_sqlite_tags_sensitive_columns(run_scan, admin, sqlite_source):
    scan = run_scan(admin, sqlite_source)
    assert scan.state == ScanRun.State.SUCCEEDED, scan.error
    _assert_people_tagged(sqlite_source)


def test_suggestions_store_evidence_without_raw_values(run_scan, admin, sqlite_source):
    run_scan(admin, sqlite_source)
    email_tag = ColumnTag.objects.get(column__name="email", tag__name="PII.Email")
    raw_emails = {row[2] for row in sources.people_rows(150)}
    evidence = email_tag.evidence
    assert evidence["match_share"] > 0.9
    assert evidence["detectors"]
    assert evidence["examples"]
    assert not raw_emails & set(evidence["examples"])
    assert 0.7 <= email_tag.confidence <= 1


def test_rescan_records_added_changed_and_dropped_columns(run_scan, admin, postgres_source):
    run_scan(admin, postgres_source)
    dsn = f"host=127.0.0.1 user=postgres dbname={postgres_source.database}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE people ADD COLUMN backup_email text")
        conn.execute("UPDATE people SET backup_email = email")
        conn.execute("ALTER TABLE people ALTER COLUMN quantity TYPE bigint")
        conn.execute("ALTER TABLE people DROP COLUMN sku")
        conn.execute("DROP TABLE products")
    second = run_scan(admin, postgres_source)
    assert second.catalog_changes["columns_added"] == 1
    assert second.catalog_changes["types_changed"] == 1
    assert second.catalog_changes["tables_dropped"] == 1
    kinds = set(ColumnChange.objects.filter(scan_run=second).values_list("column__name", "kind"))
    assert ("backup_email", "added") in kinds
    assert ("quantity", "type_changed") in kinds
    assert ("sku", "dropped") in kinds
    dropped_sku = Column.objects.get(
        table__datasource=postgres_source, table__name="people", name="sku"
    )
    assert dropped_sku.dropped_at is not None  # marked, not deleted
    assert (
        Column.objects.get(table__datasource=postgres_source, name="quantity").data_type == "bigint"
    )
    assert "PII.Email" in _tags_by_column(postgres_source)["backup_email"]


def test_curated_tags_survive_rescan(run_scan, admin, sqlite_source):
    run_scan(admin, sqlite_source)
    phone = Column.objects.get(table__datasource=sqlite_source, name="phone")
    sku = Column.objects.get(table__datasource=sqlite_source, name="sku")
    column_tag_remove(actor=admin, column=phone, tag=Tag.objects.get(name="PII.Phone"))
    column_tag_set_state(
        actor=admin,
        column=sku,
        tag=Tag.objects.get(name="Secret.Credential"),
        state=ColumnTag.State.CONFIRMED,
    )
    run_scan(admin, sqlite_source)
    tags = _tags_by_column(sqlite_source)
    assert "PII.Phone" not in tags.get("phone", set())
    assert tags["sku"] == {"Secret.Credential"}
    assert ColumnTag.objects.get(column=sku).source == ColumnTag.Source.ADMIN


def test_table_dropped_mid_scan_fails_alone_and_the_scan_goes_on(admin, postgres_source):
    scan = ScanRun.objects.create(datasource=postgres_source, requested_by=admin, sample_size=50)
    result_ids = scan_prepare(scan_run_id=scan.pk)
    assert len(result_ids) == 2
    dsn = f"host=127.0.0.1 user=postgres dbname={postgres_source.database}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE products")
    for result_id in result_ids:
        scan_table_classify(table_result_id=result_id)
        scan_table_classify(table_result_id=result_id)  # a redelivered task does nothing
    scan = scan_finish(scan_run_id=scan.pk)
    assert scan.state == ScanRun.State.SUCCEEDED
    assert (scan.tables_done, scan.tables_failed) == (2, 1)
    failed = ScanTableResult.objects.get(scan_run=scan, state="failed")
    assert failed.table.name == "products"
    assert "products" in failed.error


def test_unreachable_datasource_fails_the_scan_with_a_clear_error(run_scan, admin):
    datasource = datasource_create(
        actor=admin,
        name="nowhere",
        engine=Engine.POSTGRESQL,
        host="127.0.0.1",
        port=1,
        database="x",
        username="postgres",
    )
    scan = run_scan(admin, datasource)
    assert scan.state == ScanRun.State.FAILED
    assert "Connection refused by 127.0.0.1:1" in scan.error
    assert AuditEvent.objects.filter(action="scan.failed", target_id=str(scan.pk)).exists()


def test_wrong_mariadb_password_fails_the_scan_with_a_clear_error(run_scan, admin):
    datasource = datasource_create(
        actor=admin,
        name="maria-bad",
        engine=Engine.MYSQL,
        host="127.0.0.1",
        port=3306,
        database="test",
        username="root",
        password="definitely-wrong",
    )
    scan = run_scan(admin, datasource)
    assert scan.state == ScanRun.State.FAILED
    assert "Authentication failed for user 'root'" in scan.error


def test_only_admins_start_scans(reviewer, sqlite_source):
    with pytest.raises(NotAllowed):
        scan_start(actor=reviewer, datasource=sqlite_source)


@pytest.mark.django_db(transaction=True)
def test_scan_command_shows_progress_and_summary(tmp_path, capsys):
    from tests.factories import UserFactory

    admin = UserFactory(username="cli_admin", roles=["admin"])
    path = sources.sqlite_people(tmp_path / "cli.sqlite3")
    datasource_create(actor=admin, name="cli-people", engine=Engine.SQLITE, database=str(path))
    call_command("scan", "cli-people")
    output = capsys.readouterr()
    assert "scanning" in output.err + output.out
    assert "1/1" in output.err + output.out
    assert "succeeded: 1/1 tables, 9 columns classified" in output.out


def test_scan_command_names_known_datasources_for_a_typo(sqlite_source):
    with pytest.raises(CommandError, match="lite-people"):
        call_command("scan", "lite-peple")
