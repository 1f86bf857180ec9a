"""A scan of a table with opaque column names, and admin feedback as a labelled set."""

from __future__ import annotations

import datetime as dt
import json
import random
import sqlite3
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from faker import Faker

from governance.models import Column, ColumnTag, Engine, Tag
from governance.services import column_tag_set_state, datasource_create

pytestmark = pytest.mark.django_db
REPO = Path(__file__).resolve().parents[2]


def _opaque_people(path: Path, rows: int = 120) -> Path:
    """t4(c0..c6): first name, last name, postal code, country, born, joined, points."""
    fake = Faker("de_DE")
    fake.seed_instance(17)
    rng = random.Random(17)
    countries = {"Germany": "#####", "Austria": "####", "Netherlands": "#### ??"}
    connection = sqlite3.connect(path)
    connection.execute(
        "CREATE TABLE t4 (c0 TEXT, c1 TEXT, c2 TEXT, c3 TEXT, c4 DATE, c5 DATE, c6 INTEGER)"
    )
    for _ in range(rows):
        country = rng.choice(list(countries))
        joined = dt.date(2021, 1, 1) + dt.timedelta(days=rng.randint(0, 1200))
        born = joined - dt.timedelta(days=rng.randint(19 * 365, 80 * 365))
        code = fake.bothify(countries[country]).upper()
        if code[0] == "0":
            code = "1" + code[1:]
        connection.execute(
            "INSERT INTO t4 VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                fake.first_name(),
                fake.last_name(),
                code,
                country,
                born.isoformat(),
                joined.isoformat(),
                rng.randint(0, 5000),
            ),
        )
    connection.commit()
    connection.close()
    return path


@pytest.fixture
def opaque_source(admin, tmp_path):
    path = _opaque_people(tmp_path / "opaque.sqlite3")
    return datasource_create(
        actor=admin, name="opaque-people", engine=Engine.SQLITE, database=str(path)
    )


def _tags(datasource) -> dict[str, dict[str, ColumnTag]]:
    found: dict[str, dict[str, ColumnTag]] = {}
    for column_tag in ColumnTag.objects.filter(column__table__datasource=datasource).select_related(
        "column", "tag"
    ):
        found.setdefault(column_tag.column.name, {})[column_tag.tag.name] = column_tag
    return found


def test_scan_tags_opaque_columns_from_their_values_and_row_context(run_scan, admin, opaque_source):
    scan = run_scan(admin, opaque_source)
    assert scan.state == "succeeded"
    tags = _tags(opaque_source)
    assert set(tags["c0"]) == {"PII.PersonName"}
    assert tags["c1"]["PII.PersonName"].evidence["context"]["sibling_column"] == "c0"
    postal = tags["c2"]["PII.PostalCode"].evidence["context"]
    assert postal["sibling_column"] == "c3" and set(postal["countries"]) == {"AT", "DE", "NL"}
    assert set(tags["c3"]) == {"PII.Location"}
    birth = tags["c4"]["PII.DateOfBirth"].evidence
    assert birth["context"]["sibling_column"] == "c5" and "19" not in json.dumps(birth["examples"])
    assert "c5" not in tags and "c6" not in tags


def test_feedback_export_labels_reviews_and_the_benchmark_scores_them(
    run_scan, admin, opaque_source, tmp_path
):
    run_scan(admin, opaque_source)
    columns = {c.name: c for c in Column.objects.filter(table__datasource=opaque_source)}
    tag = {t.name: t for t in Tag.objects.all()}
    review = [
        ("c0", "PII.PersonName", "confirmed"),  # suggested, confirmed: true positive
        ("c1", "PII.PersonName", "confirmed"),
        ("c3", "PII.Location", "rejected"),  # suggested, rejected: false positive
        ("c6", "Financial.BankAccount", "confirmed"),  # added by the admin: false negative
        ("c5", "PII.Email", "rejected"),  # an admin rejecting what no scan said: left out
    ]
    for column, tag_name, state in review:
        column_tag_set_state(actor=admin, column=columns[column], tag=tag[tag_name], state=state)
    output = tmp_path / "feedback.jsonl"
    call_command("feedback_export", "--datasource", "opaque-people", "--output", str(output))
    records = [json.loads(line) for line in output.read_text().splitlines()]
    labels = {(r["column"], r["tag"]): r["label"] for r in records}
    assert labels == {
        ("c0", "PII.PersonName"): "true_positive",
        ("c1", "PII.PersonName"): "true_positive",
        ("c3", "PII.Location"): "false_positive",
        ("c6", "Financial.BankAccount"): "false_negative",
    }
    assert all(r["reviewed_at"] for r in records)
    # no sampled value leaves the control plane in the export
    assert "Germany" not in output.read_text() and "Austria" not in output.read_text()

    sys.path.insert(0, str(REPO))
    from bench.classify_scan import feedback_scores

    by_tag, by_month = feedback_scores(output)
    assert by_tag["PII.PersonName"] == [2, 0, 0]
    assert by_tag["PII.Location"] == [0, 1, 0]
    assert sum(counts[2] for counts in by_month.values()) == 1


def test_feedback_export_names_an_unknown_datasource(db):
    with pytest.raises(CommandError, match="datasource: no datasource named 'nope'"):
        call_command("feedback_export", "--datasource", "nope")
