"""The home dashboard keeps its catalog figures per bundle generation, never stale."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from governance.models import ColumnTag, Tag
from tests.factories import ColumnFactory, ColumnTagFactory

# Real commits: the generation moves after commit (a test transaction never commits).
pytestmark = pytest.mark.django_db(transaction=True)


def _tag_counts(client) -> tuple[dict[str, int], list[str]]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/")
    assert response.status_code == 200
    counts = {row["name"]: row["columns"] for row in response.context["per_tag"]}
    return counts, [query["sql"] for query in queries.captured_queries]


def test_the_dashboard_counts_the_catalog_once_per_change(admin, client):
    ColumnTagFactory()
    client.force_login(admin)

    first, first_queries = _tag_counts(client)
    again, again_queries = _tag_counts(client)
    ColumnTagFactory(column=ColumnFactory(), tag=Tag.objects.get(name="PII.Phone"))
    changed, changed_queries = _tag_counts(client)

    def aggregates(queries: list[str]) -> int:
        return sum('FROM "governance_tag"' in sql and "COUNT(" in sql for sql in queries)

    assert first == again == {"PII.Email": 1}
    assert (aggregates(first_queries), aggregates(again_queries)) == (1, 0)
    assert changed == {"PII.Email": 1, "PII.Phone": 1}  # the change moved the generation
    assert aggregates(changed_queries) == 1


def test_a_rejected_suggestion_leaves_the_dashboard_counts(admin, client):
    suggestion = ColumnTagFactory()
    client.force_login(admin)
    assert _tag_counts(client)[0] == {"PII.Email": 1}
    suggestion.state = ColumnTag.State.REJECTED
    suggestion.save()
    assert _tag_counts(client)[0] == {}
