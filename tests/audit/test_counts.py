"""The dashboard's pre-aggregated counts equal what reading the whole trail gives."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import transaction

from audit.counts import counts_rebuild
from audit.dashboard import _from_counts, _from_trail, dashboard_data
from audit.models import AuditDayColumnRead, AuditDayCount, AuditEvent
from audit.selectors import EventFilters
from audit.services import events_append

pytestmark = pytest.mark.django_db
COLUMNS = {
    "public.customers.email": ["email", "pii"],
    "public.customers.phone": ["phone", "pii"],
    "public.orders.card": ["card"],
}


def _random_events(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    start = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    events = []
    for index in range(count):
        decision = rng.choice(["allow", "mask", "deny", "hold"])
        read = rng.sample(sorted(COLUMNS), rng.randint(0, 2))
        details: dict = {"statement": f"SELECT {index}", "rule": "rule:1"}
        if read:
            details["column_tags"] = {label: COLUMNS[label] for label in read}
            details["masked_columns"] = [label for label in read if rng.random() < 0.5]
        action = rng.choice(["query.executed"] * 4 + ["tag.added", "policy.created"])
        if action != "query.executed":
            decision, details = "", {"tag": "pii"}
            if rng.random() < 0.5:
                details["channel"] = "mcp"
        events.append(
            {
                "actor": rng.choice(["alice", "bob", "copilot"]),
                "actor_kind": "user",
                "action": action,
                "occurred_at": start + timedelta(hours=rng.randint(0, 24 * 9)),
                "datasource_name": rng.choice(["shop", "crm"]),
                "decision": decision,
                "details": details,
            }
        )
    return events


FILTERS = [
    EventFilters(),
    EventFilters(date_from=date(2026, 11, 3), date_to=date(2026, 11, 6)),
    EventFilters(actor="alice"),
    EventFilters(datasource="crm", decision="mask"),
    EventFilters(action="query.executed", decision="allow"),
    EventFilters(action="policy.*"),
    EventFilters(action="tag.added", channel="mcp"),
    EventFilters(decision="deny", date_to=date(2026, 11, 4)),
    EventFilters(tag="pii"),
    EventFilters(tag="card", actor="bob", decision="mask"),
    EventFilters(tag="pii", action="tag.added", channel="mcp"),
]


def _comparable(figures: dict, tag: str = "") -> dict:
    summary = figures["access_summary"]
    if tag:  # from counts, a tag filter lists only the columns carrying the tag
        summary = [
            {**item, "tagged_columns": [c for c in item["tagged_columns"] if tag in c["tags"]]}
            for item in summary
        ]
    per_day = {day: dict(counts) for day, counts in figures["per_day"].items()}
    return {**figures, "per_day": per_day, "access_summary": summary}


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: repr(f.as_dict()))
def test_counts_give_the_same_figures_as_reading_the_trail(filters):
    for batch in range(4):  # several appends: the counts add up across transactions
        events_append(entries=_random_events(150, seed=batch))

    from_counts = _comparable(_from_counts(filters), filters.tag)

    assert from_counts == _comparable(_from_trail(filters), filters.tag)
    assert from_counts["event_count"] > 0 or filters.decision == "deny"


def test_a_rolled_back_append_leaves_the_counts_untouched():
    events_append(entries=_random_events(20, seed=1))
    before = list(AuditDayCount.objects.order_by("id").values())

    with pytest.raises(RuntimeError), transaction.atomic():
        events_append(entries=_random_events(20, seed=2))
        raise RuntimeError("the caller's work failed")

    assert list(AuditDayCount.objects.order_by("id").values()) == before


def test_a_rebuild_recounts_the_days_from_the_trail():
    events_append(entries=_random_events(200, seed=3))
    expected = sorted(AuditDayCount.objects.values_list("day", "action", "actor", "events"))
    expected_reads = sorted(AuditDayColumnRead.objects.values_list("day", "column", "masked"))

    AuditDayCount.objects.filter(day=date(2026, 11, 4)).delete()  # a damaged day
    counts_rebuild(first_day=date(2026, 11, 4), last_day=date(2026, 11, 4))

    assert sorted(AuditDayCount.objects.values_list("day", "action", "actor", "events")) == expected
    assert sorted(AuditDayColumnRead.objects.values_list("day", "column", "masked")) == (
        expected_reads
    )
    assert sum(row[3] for row in expected) == AuditEvent.objects.count()


def test_the_dashboard_lists_the_latest_blocked_statements_newest_first():
    events_append(entries=_random_events(200, seed=4))

    blocked = dashboard_data(filters=EventFilters())["blocked"]

    denied = AuditEvent.objects.filter(decision="deny").order_by("-sequence")
    assert [item["sequence"] for item in blocked] == [e.sequence for e in denied[:20]]


def test_the_dashboard_reads_counts_for_a_tag_filter_too(django_assert_max_num_queries):
    events_append(entries=_random_events(300, seed=5))

    for filters in (EventFilters(), EventFilters(tag="pii")):
        with django_assert_max_num_queries(4) as queries:
            data = dashboard_data(filters=filters)
        # only the latest blocked statements read the trail (a partial index, 20 rows)
        trail_reads = [q["sql"] for q in queries.captured_queries if "audit_auditevent" in q["sql"]]
        assert data["from_counts"] is True and len(trail_reads) == 1, trail_reads
    assert dashboard_data(filters=EventFilters(tag="pii"))["event_count"] == (
        AuditEvent.objects.filter(details__contains='"pii"').count()
    )
