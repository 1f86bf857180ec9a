"""The audit dashboard's figures, read from the pre-aggregated counts (audit.counts).

Every figure but the list of latest blocked statements comes from AuditDayCount (or, for a
tag filter, AuditDayTagCount) and AuditDayColumnRead, whose size does not grow with the
trail. With a tag filter, the tagged columns listed are those carrying the tag.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, cast

from django.db.models import QuerySet, Sum

from audit.hashing import canonical_text, canonical_time
from audit.models import AuditDayColumnRead, AuditDayCount, AuditDayTagCount
from audit.selectors import DECISION_LABELS, EventFilters, events_filter

DECISION_COLOURS = {"allow": "#16a34a", "mask": "#b45309", "deny": "#dc2626", "hold": "#6366f1"}
BLOCKED_LISTED = 20


def _counted(model: Any, filters: EventFilters, *, queries_only: bool) -> QuerySet:
    rows = model.objects.all()
    if filters.date_from:
        rows = rows.filter(day__gte=filters.date_from)
    if filters.date_to:
        rows = rows.filter(day__lte=filters.date_to)
    if filters.actor:
        rows = rows.filter(actor=filters.actor)
    if filters.datasource:
        rows = rows.filter(datasource_name=filters.datasource)
    if model in (AuditDayCount, AuditDayTagCount):
        if filters.action.endswith((".", "*")):
            rows = rows.filter(action__startswith=filters.action.rstrip("*"))
        elif filters.action:
            rows = rows.filter(action=filters.action)
        if filters.decision:
            rows = rows.filter(decision=filters.decision)
        if filters.channel:
            rows = rows.filter(channel=filters.channel)
        if queries_only:
            rows = rows.filter(action="query.executed")
    if model is AuditDayTagCount:
        rows = rows.filter(tag=filters.tag)
    return rows


def _day_counts(filters: EventFilters, *, queries_only: bool) -> QuerySet:
    model = AuditDayTagCount if filters.tag else AuditDayCount
    return _counted(model, filters, queries_only=queries_only)


def _column_reads(filters: EventFilters) -> QuerySet:
    """Tagged-column reads only exist for query.executed events (allowed or masked)."""
    action = filters.action
    if action.endswith((".", "*")):
        wanted = "query.executed".startswith(action.rstrip("*"))
    else:
        wanted = action in ("", "query.executed")
    if not wanted or filters.channel:
        return AuditDayColumnRead.objects.none()
    rows = _counted(AuditDayColumnRead, filters, queries_only=True)
    if filters.tag:  # the JSON list of the column's tags holds the tag as a whole string
        rows = rows.filter(tags__contains=canonical_text(filters.tag))
    return rows.filter(decision=filters.decision) if filters.decision else rows


def _access_summary(filters: EventFilters) -> tuple[list[dict[str, Any]], dict, Counter]:
    queries = _day_counts(filters, queries_only=True)
    by_actor: dict[str, Counter] = defaultdict(Counter)
    per_day: dict[str, Counter] = defaultdict(Counter)
    sensitive: Counter = Counter()
    for actor, day, decision, events, reads in queries.values_list(
        "actor", "day", "decision"
    ).annotate(events=Sum("events"), reads=Sum("sensitive_reads")):
        by_actor[actor][decision] += events
        per_day[day.isoformat()][decision] += events
        sensitive[actor] += reads
    columns: dict[str, dict[tuple[str, str], dict[str, Any]]] = defaultdict(dict)
    for actor, datasource, label, tags, masked, unmasked in (
        _column_reads(filters)
        .values_list("actor", "datasource_name", "column", "tags")
        .annotate(masked_sum=Sum("masked"), unmasked_sum=Sum("unmasked"))
    ):
        entry = columns[actor].setdefault(
            (datasource, label),
            {"datasource": datasource, "column": label, "tags": [], "masked": 0, "unmasked": 0},
        )
        entry["tags"] = sorted(set(entry["tags"]) | set(_json_list(tags)))
        entry["masked"] += masked
        entry["unmasked"] += unmasked
    summary = [
        {
            "identity": actor,
            "queries": sum(counts.values()),
            "by_decision": dict(sorted(counts.items())),
            "tagged_columns": sorted(
                columns[actor].values(), key=lambda item: (item["datasource"], item["column"])
            ),
        }
        for actor, counts in sorted(by_actor.items())
    ]
    return summary, per_day, sensitive


def _json_list(text: str) -> list[str]:
    import json

    value = json.loads(text or "[]")
    return [str(item) for item in value] if isinstance(value, list) else []


def _latest_blocked(filters: EventFilters) -> list[dict[str, Any]]:
    if filters.decision and filters.decision != "deny":
        return []
    events = (
        events_filter(filters)
        .filter(decision="deny", action="query.executed")
        .order_by("-sequence")
        .values_list("sequence", "occurred_at", "actor", "datasource_name", "details")
    )
    return [
        {
            "sequence": sequence,
            "time": canonical_time(occurred_at),
            "occurred_at": occurred_at,
            "identity": actor,
            "datasource": datasource,
            "statement": details.get("statement", ""),
            "rule": details.get("rule", ""),
        }
        for sequence, occurred_at, actor, datasource, details in cast(
            list[tuple[int, Any, str, str, dict[str, Any]]], events[:BLOCKED_LISTED]
        )
    ]


def counted_events(filters: EventFilters) -> int:
    """How many events match, from the counts."""
    totals = _day_counts(filters, queries_only=False).aggregate(total=Sum("events"))
    return totals["total"] or 0


def _from_counts(filters: EventFilters) -> dict[str, Any]:
    summary, per_day, sensitive = _access_summary(filters)
    return {
        "event_count": counted_events(filters),
        "access_summary": summary,
        "blocked_total": sum(item["by_decision"].get("deny", 0) for item in summary),
        "per_day": per_day,
        "sensitive_reads": dict(Counter({k: v for k, v in sensitive.items() if v}).most_common(20)),
    }


def _from_trail(filters: EventFilters) -> dict[str, Any]:
    from audit.reports import query_sections

    report: dict[str, Any] = {}
    query_sections(filters, report)
    return {
        "event_count": events_filter(filters).count(),
        "access_summary": report["access_summary"],
        "blocked_total": report["blocked_statements"]["total"],
        "per_day": report["charts"]["queries_per_day"],
        "sensitive_reads": report["charts"]["sensitive_reads_per_identity"],
    }


def queries_chart(per_day: dict[str, Any]) -> dict[str, Any]:
    days = sorted(per_day)
    return {
        "type": "bar",
        "data": {
            "labels": days,
            "datasets": [
                {
                    "label": DECISION_LABELS[decision],
                    "backgroundColor": colour,
                    "data": [per_day[day].get(decision, 0) for day in days],
                }
                for decision, colour in DECISION_COLOURS.items()
            ],
        },
        "options": {
            "plugins": {"legend": {"display": True, "position": "bottom"}},
            "scales": {"x": {"stacked": True}, "y": {"stacked": True}},
        },
    }


def dashboard_data(*, filters: EventFilters) -> dict[str, Any]:
    """Counts, the latest blocked statements and Chart.js specs for the dashboard page."""
    figures = _from_counts(filters)
    reads = figures["sensitive_reads"]
    return {
        "from_counts": True,
        "event_count": figures["event_count"],
        "query_count": sum(item["queries"] for item in figures["access_summary"]),
        "blocked_count": figures["blocked_total"],
        "identities": len(figures["access_summary"]),
        "access_summary": figures["access_summary"],
        # The counts say whether any blocked statement matches: none, no walk of the denials.
        "blocked": _latest_blocked(filters) if figures["blocked_total"] else [],
        "queries_chart": queries_chart(figures["per_day"]),
        "reads_chart": {
            "type": "bar",
            "data": {
                "labels": list(reads),
                "datasets": [
                    {
                        "label": "Reads of tagged columns",
                        "backgroundColor": "#2563eb",
                        "data": list(reads.values()),
                    }
                ],
            },
            "options": {
                "indexAxis": "y",
                "plugins": {"legend": {"display": True, "position": "bottom"}},
            },
        },
    }
