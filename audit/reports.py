"""The evidence report for a period, built from audit events (plus catalog coverage).

Sections and the event details they read:

- access summary per identity: `query.executed` events (agent ingest, see audit.ingest):
  decision counts, and per tagged column read (details.column_tags) how often it was
  returned masked (listed in details.masked_columns) or unmasked;
- access requests: `access_request.*` and `grant.*` events grouped by details.request_id,
  with the keys every approvals event carries in details (approvals.services.common):
  request_id, requester, scope, level, reason, duration_minutes, reviewer, comment (the
  action suffix is the step: created, approved, denied, expired, cancelled;
  grant.created/revoked/expired); grant.created and grant.extended add what was actually
  granted (granted_scope, granted_minutes, expires_at, max_runs), reported beside the ask;
- break-glass uses: `break_glass.used` (details.reason, details.scope when given);
- blocked statements: `query.executed` with decision deny;
- policy and tag changes: `policy.*`, `guardrail.*`, `tag.*` with details.before/after;
- classification coverage per datasource: from the catalog as it is now;
- chain verification: audit.verification.chain_walk over the whole stored chain.

Everything is aggregated while streaming events, so memory follows the number of
identities, columns and requests, not of events.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, cast

from django.db.models import Count, Q
from django.utils import timezone

from audit.hashing import canonical_time
from audit.selectors import EventFilters, chain_length, events_filter
from audit.verification import chain_walk

CHANGE_PREFIXES = ("policy.", "guardrail.", "tag.")
REQUEST_KEYS = (
    "request_id",
    "requester",
    "scope",
    "level",
    "reason",
    "duration_minutes",
    "reviewer",
    "comment",
)
LIST_LIMIT = 1000  # rows per listed section; counts stay exact


@dataclass
class _IdentityAccess:
    queries: Counter
    columns: dict[tuple[str, str], dict[str, Any]]


Progress = Callable[[int], None]  # hears a percent, 0..100


def _no_progress(percent: int) -> None:
    return None


def query_sections(filters: EventFilters, report: dict[str, Any]) -> None:
    identities: dict[str, _IdentityAccess] = {}
    per_day: dict[str, Counter] = defaultdict(Counter)
    sensitive_reads: Counter = Counter()
    blocked: list[dict[str, Any]] = []
    blocked_total = 0
    returned: dict[tuple[str, str, str], dict[str, Any]] = {}
    rows = (
        events_filter(filters)
        .filter(action="query.executed")
        .order_by("sequence")
        .values_list("occurred_at", "actor", "datasource_name", "decision", "details", "sequence")
    )
    for occurred_at, actor, datasource, decision, stored, sequence in rows.iterator(2000):
        details = cast(dict[str, Any], stored)
        access = identities.setdefault(actor, _IdentityAccess(Counter(), {}))
        access.queries[decision] += 1
        per_day[occurred_at.date().isoformat()][decision] += 1
        # Denied and held statements returned no rows: they are not reads.
        column_tags = (details.get("column_tags") or {}) if decision in ("allow", "mask") else {}
        if column_tags:
            sensitive_reads[actor] += 1
        masked = set(details.get("masked_columns") or ())
        for label, tags in column_tags.items():
            entry = access.columns.setdefault(
                (datasource, label),
                {
                    "datasource": datasource,
                    "column": label,
                    "tags": tags,
                    "masked": 0,
                    "unmasked": 0,
                },
            )
            entry["masked" if label in masked else "unmasked"] += 1
        if decision in ("allow", "mask"):
            _count_returned(returned, actor, datasource, details)
        if decision == "deny":
            blocked_total += 1
            if len(blocked) < LIST_LIMIT:
                blocked.append(
                    {
                        "sequence": sequence,
                        "time": canonical_time(occurred_at),
                        "identity": actor,
                        "datasource": datasource,
                        "statement": details.get("statement", ""),
                        "rule": details.get("rule", ""),
                    }
                )
    report["access_summary"] = [
        {
            "identity": actor,
            "queries": sum(access.queries.values()),
            "by_decision": dict(sorted(access.queries.items())),
            "tagged_columns": sorted(
                access.columns.values(), key=lambda item: (item["datasource"], item["column"])
            ),
        }
        for actor, access in sorted(identities.items())
    ]
    report["blocked_statements"] = {"total": blocked_total, "items": blocked}
    report["rows_returned"] = sorted(
        returned.values(), key=lambda item: (-item["rows"], item["identity"], item["tables"])
    )
    report["charts"] = {
        "queries_per_day": {day: dict(counts) for day, counts in sorted(per_day.items())},
        "sensitive_reads_per_identity": dict(sensitive_reads.most_common(20)),
    }


def _count_returned(
    returned: dict[tuple[str, str, str], dict[str, Any]],
    actor: str,
    datasource: str,
    details: dict[str, Any],
) -> None:
    """Who took how many rows of what: statements, rows (as the agent counted them:
    a result's rows, a COPY's lines, a FETCH's or a portal batch's rows, what went out
    before an error or a cancel) and bytes (the result data sent, after masking) per
    identity and the tables a statement read."""
    tables = " ".join(sorted(details.get("tables_read") or ())) or "(no table)"
    entry = returned.setdefault(
        (actor, datasource, tables),
        {
            "identity": actor,
            "datasource": datasource,
            "tables": tables,
            "statements": 0,
            "rows": 0,
            "bytes": 0,
            "masked_statements": 0,
        },
    )
    entry["statements"] += 1
    entry["rows"] += details.get("rows") or 0
    entry["bytes"] += details.get("bytes") or 0
    if details.get("masked_columns"):
        entry["masked_statements"] += 1


def _request_section(filters: EventFilters) -> list[dict[str, Any]]:
    requests: dict[str, dict[str, Any]] = {}
    rows = (
        events_filter(filters)
        .filter(Q(action__startswith="access_request.") | Q(action__startswith="grant."))
        .order_by("sequence")
        .values_list("occurred_at", "actor", "action", "details", "target_id")
    )
    for occurred_at, actor, action, stored, target_id in rows.iterator(2000):
        details = cast(dict[str, Any], stored)
        request_id = str(details.get("request_id") or target_id or "")
        item = requests.setdefault(
            request_id, {"request_id": request_id, "steps": [], "status": "", "reviewer": ""}
        )
        for key in REQUEST_KEYS[1:]:
            if details.get(key) not in (None, "") and key != "comment":
                item[key] = details[key]
        step = action.split(".", 1)[1]
        if action in ("grant.created", "grant.extended"):
            _granted(item, details)
        if action.startswith("access_request."):
            item["status"] = step
            if step == "created":
                item.setdefault("requester", actor)
                item["requested_at"] = canonical_time(occurred_at)
            if step in ("approved", "denied"):
                item["reviewer"] = details.get("reviewer") or actor
                item["decided_at"] = canonical_time(occurred_at)
                item["comment"] = details.get("comment", "")
        item["steps"].append(
            {"action": action, "time": canonical_time(occurred_at), "actor": actor}
        )
    return list(requests.values())[:LIST_LIMIT]


# What a grant event says was actually given (approvals.services.grants), under report keys.
GRANTED_KEYS = {
    "granted_scope": "granted_scope",
    "granted_minutes": "granted_minutes",
    "expires_at": "granted_expires_at",
    "max_runs": "granted_max_runs",
    "statement_fingerprint": "granted_statement",
}


def _granted(item: dict[str, Any], details: dict[str, Any]) -> None:
    """Keep the grant beside the request: a reviewer may have narrowed scope or duration."""
    for event_key, report_key in GRANTED_KEYS.items():
        if details.get(event_key) not in (None, ""):
            item[report_key] = details[event_key]


def _event_list(filters: EventFilters, query: Q, keys: tuple[str, ...]) -> dict[str, Any]:
    events = events_filter(filters).filter(query).order_by("sequence")
    items = [
        {
            "sequence": event.sequence,
            "time": canonical_time(event.occurred_at),
            "actor": event.actor,
            "action": event.action,
            "datasource": event.datasource_name,
            "target": event.target_repr,
            **{key: event.details.get(key) for key in keys if key in event.details},
        }
        for event in events[:LIST_LIMIT]
    ]
    return {"total": events.count(), "items": items}


def classification_coverage() -> list[dict[str, Any]]:
    """Per datasource: live columns, columns with an active tag, confirmed vs suggested."""
    from governance.models import Column, ColumnTag

    columns = Column.objects.filter(dropped_at__isnull=True, table__dropped_at__isnull=True)
    totals = dict(
        columns.values_list("table__datasource__name").annotate(total=Count("id")).order_by()
    )
    tagged = dict(
        columns.filter(column_tags__state__in=("suggested", "confirmed"))
        .values_list("table__datasource__name")
        .annotate(tagged=Count("id", distinct=True))
        .order_by()
    )
    states = (
        ColumnTag.objects.filter(column__in=columns, state__in=("suggested", "confirmed"))
        .values_list("column__table__datasource__name", "state")
        .annotate(count=Count("id"))
        .order_by()
    )
    by_state: dict[str, Counter] = defaultdict(Counter)
    for name, state, count in states:
        by_state[name][state] = count
    return [
        {
            "datasource": name,
            "columns": total,
            "tagged_columns": tagged.get(name, 0),
            "coverage_percent": round(100 * tagged.get(name, 0) / total, 1) if total else 0.0,
            "confirmed_tags": by_state[name]["confirmed"],
            "suggested_tags": by_state[name]["suggested"],
        }
        for name, total in sorted(totals.items())
    ]


def evidence_report_build(
    *,
    date_from: date | None,
    date_to: date | None,
    filters: EventFilters | None = None,
    progress: Progress = _no_progress,
) -> dict[str, Any]:
    """The report as plain JSON-ready data (renderers in audit.exports).

    `progress` hears a percent of the build as each section ends (to 90); the chain walk, the
    longest part, reports as it goes."""
    base = filters or EventFilters()
    filters = EventFilters(**{**base.__dict__, "date_from": date_from, "date_to": date_to})
    report: dict[str, Any] = {
        "title": "Warden evidence report",
        "period": {
            "from": date_from.isoformat() if date_from else None,
            "to": date_to.isoformat() if date_to else None,
        },
        "filters": filters.without_period(),
        "generated_at": canonical_time(timezone.now()),
        "event_count": events_filter(filters).count(),
    }
    progress(15)
    query_sections(filters, report)
    progress(30)
    report["access_requests"] = _request_section(filters)
    report["break_glass"] = _event_list(
        filters, Q(action="break_glass.used"), ("reason", "scope", "duration_minutes")
    )
    change_query = Q()
    for prefix in CHANGE_PREFIXES:
        change_query |= Q(action__startswith=prefix)
    report["changes"] = _event_list(filters, change_query, ("tag", "comment", "before", "after"))
    report["coverage"] = classification_coverage()
    progress(40)
    total = chain_length()
    walked = chain_walk(progress=lambda checked: progress(40 + 50 * checked // total))
    report["verification"] = walked.as_dict()
    progress(90)
    return report
