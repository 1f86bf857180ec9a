"""Pre-aggregated counts of the audit trail, so the dashboard never reads the trail itself.

Why: the dashboard summed a month of events row by row (6 s at 580k events). Instead every
append adds its events to two small tables in the same transaction (audit.services calls
`counts_add` under the chain lock): per (day, action, actor, datasource, decision,
channel), and per (day, actor, decision, tagged column read) with masked and unmasked
counts. Their size follows days, identities and columns, not the number of events, so the
dashboard costs the same at a thousand events or a million.

The same pass writes the trail's tag index (AuditEventTag: the tags each event touched, by
sequence), so the trail filtered by a tag reads its own rows instead of every event.

The trail stays append-only (its trigger is untouched); these tables are derived and are
rebuilt from the trail for any span of days (`counts_rebuild`: after a prune, or once by
the migration that created them).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db import connection

# (action, actor, datasource_name, decision, details as canonical JSON text, day "YYYY-MM-DD",
# sequence)
EventFacts = tuple[str, str, str, str, str, str, int]
_DAY_KEY = ("day", "action", "actor", "datasource_name", "decision", "channel")
_COLUMN_KEY = ("day", "actor", "datasource_name", "decision", "column")
_TAG_KEY = (*_DAY_KEY, "tag")
_TAG_LIMIT = 100
_COLUMN_LIMIT = 400


def _channel(details_text: str) -> str:
    if '"channel":' not in details_text:  # skip the parse for the common case
        return ""
    return str(json.loads(details_text).get("channel") or "")[:30]


def tags_touched(action: str, details_text: str, details: dict[str, Any]) -> set[str]:
    """The tags an event touched, as the trail's tag filter finds them: a query's
    details.tags and the tags of the columns it read, a tag change's details.tag."""
    if action == "query.executed":
        touched = set(details.get("tags") or ())
        for names in (details.get("column_tags") or {}).values():
            touched.update(names)
        return {str(tag)[:_TAG_LIMIT] for tag in touched}
    if '"tag":' not in details_text:
        return set()
    tag = json.loads(details_text).get("tag")
    return {tag[:_TAG_LIMIT]} if isinstance(tag, str) and tag else set()


def _aggregate(
    facts: Iterable[EventFacts],
) -> tuple[Counter, Counter, dict, dict, Counter, list[tuple[str, int]]]:
    events: Counter = Counter()
    tagged: list[tuple[str, int]] = []  # (tag, sequence): the trail's tag index
    by_tag: Counter = Counter()  # (*day key, tag, "events" or "sensitive") → count
    sensitive: Counter = Counter()
    reads: dict[tuple[str, ...], list[int]] = {}
    tags: dict[tuple[str, ...], str] = {}
    for action, actor, datasource, decision, details_text, day, sequence in facts:
        is_query = action == "query.executed"
        details = json.loads(details_text) if is_query else {}
        channel = str(details.get("channel") or "")[:30] if is_query else _channel(details_text)
        key = (day, action, actor, datasource, decision, channel)
        events[key] += 1
        column_tags = (details.get("column_tags") or {}) if decision in ("allow", "mask") else {}
        for tag in tags_touched(action, details_text, details):
            by_tag[(*key, tag, "events")] += 1
            by_tag[(*key, tag, "sensitive")] += 1 if column_tags else 0
            tagged.append((tag, sequence))
        if not column_tags:
            continue
        sensitive[key] += 1
        masked = set(details.get("masked_columns") or ())
        for label, names in column_tags.items():
            column_key = (day, actor, datasource, decision, label[:_COLUMN_LIMIT])
            counts = reads.setdefault(column_key, [0, 0])
            counts[0 if label in masked else 1] += 1
            tags[column_key] = json.dumps(sorted(names), separators=(",", ":"))
    return events, sensitive, reads, tags, by_tag, tagged


_UPSERT_BATCH = 500  # rows per INSERT (SQLite allows 32,766 parameters per statement)


def _upsert(table: str, key: tuple[str, ...], summed: tuple[str, ...], rows: list[tuple]) -> int:
    """INSERT … ON CONFLICT DO UPDATE adding to the stored counts (PostgreSQL and SQLite);
    with nothing summed, ON CONFLICT DO NOTHING (a rebuild re-adds rows already there).
    Returns the rows written (inserted or updated; not those left alone)."""
    written = 0
    if not rows:
        return written
    columns = (*key, *summed, *(("tags",) if table.endswith("columnread") else ()))
    placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
    updates = [f"{name} = {table}.{name} + excluded.{name}" for name in summed]
    if "tags" in columns:
        updates.append("tags = excluded.tags")
    action = f"DO UPDATE SET {', '.join(updates)}" if updates else "DO NOTHING"
    quoted = ", ".join(connection.ops.quote_name(name) for name in columns)
    conflict = ", ".join(connection.ops.quote_name(name) for name in key)
    with connection.cursor() as cursor:
        for start in range(0, len(rows), _UPSERT_BATCH):
            batch = rows[start : start + _UPSERT_BATCH]
            cursor.execute(
                f"INSERT INTO {table} ({quoted}) VALUES {', '.join([placeholders] * len(batch))} "
                f"ON CONFLICT ({conflict}) {action}",
                [value for row in batch for value in row],
            )
            written += max(cursor.rowcount, 0)
    return written


def _tag_index_add(tagged: list[tuple[str, int]]) -> None:
    """Index new events' tags (their sequences are new: nothing to conflict with)."""
    if connection.vendor != "postgresql":
        _upsert("audit_auditeventtag", ("tag", "sequence"), (), tagged)
        return
    connection.ensure_connection()
    with (
        connection.connection.cursor() as cursor,
        cursor.copy("COPY audit_auditeventtag (tag, sequence) FROM STDIN") as copy,
    ):
        for row in tagged:
            copy.write_row(row)


def counts_add(*, facts: Iterable[EventFacts], index_tags: bool = True) -> None:
    """Add appended events to the counts and the tag index; call inside the append's
    transaction. A recount of stored events (`index_tags=False`) leaves their index as is."""
    events, sensitive, reads, tags, by_tag, tagged = _aggregate(facts)
    day_rows = [(*key, count, sensitive[key]) for key, count in events.items()]
    _upsert("audit_auditdaycount", _DAY_KEY, ("events", "sensitive_reads"), day_rows)
    tag_rows = [
        (*key[:-1], count, by_tag[(*key[:-1], "sensitive")])
        for key, count in by_tag.items()
        if key[-1] == "events"
    ]
    _upsert("audit_auditdaytagcount", _TAG_KEY, ("events", "sensitive_reads"), tag_rows)
    column_rows = [(*key, counts[0], counts[1], tags[key]) for key, counts in reads.items()]
    _upsert("audit_auditdaycolumnread", _COLUMN_KEY, ("masked", "unmasked"), column_rows)
    if index_tags and tagged:
        _tag_index_add(tagged)


def _day_text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    return str(value)[:10]


def counts_rebuild(*, first_day: date | None = None, last_day: date | None = None) -> None:
    """Recount the days first_day..last_day (inclusive; None: unbounded) from the trail."""
    count_where, count_params = _span("day", first_day, last_day)
    event_where, event_params = _span(
        "occurred_at",
        first_day and _midnight(first_day),
        last_day and _midnight(last_day + timedelta(days=1)),
        exclusive_end=True,
    )
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM audit_auditdaycount{count_where}", count_params)
        cursor.execute(f"DELETE FROM audit_auditdaycolumnread{count_where}", count_params)
        cursor.execute(f"DELETE FROM audit_auditdaytagcount{count_where}", count_params)
        cursor.execute(
            "SELECT action, actor, datasource_name, decision, details, occurred_at, sequence "
            f"FROM audit_auditevent{event_where}",
            event_params,
        )
        while batch := cursor.fetchmany(5000):
            facts = [(*row[:5], _day_text(row[5]), row[6]) for row in batch]
            counts_add(facts=facts, index_tags=False)


def tag_index_build(*, from_sequence: int = 0) -> int:
    """Index the tags of stored events from `from_sequence` on; returns the rows added.

    Run by the migration that added the index, and by `manage.py audit_tag_index` after an
    upgrade during which the old release kept appending (its events index nothing). Appends
    by this release index themselves. Rows already there are kept: running it twice adds
    nothing."""
    added = 0
    with connection.chunked_cursor() as cursor:  # server-side on PostgreSQL: memory stays flat
        # Only events whose details have a "tag", "tags" or "column_tags" key can touch one.
        cursor.execute(
            "SELECT action, details, sequence FROM audit_auditevent "
            "WHERE details LIKE %s AND sequence >= %s ORDER BY sequence",
            ['%"tag%', from_sequence],
        )
        while batch := cursor.fetchmany(5000):
            tagged = [
                (tag, sequence)
                for action, details_text, sequence in batch
                for tag in tags_touched(action, details_text, json.loads(details_text))
            ]
            added += _upsert("audit_auditeventtag", ("tag", "sequence"), (), tagged)
    return added


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _span(
    column: str, low: Any, high: Any, *, exclusive_end: bool = False
) -> tuple[str, list[Any]]:
    conditions, params = [], []
    if low:
        conditions.append(f"{column} >= %s")
        params.append(low)
    if high:
        conditions.append(f"{column} {'<' if exclusive_end else '<='} %s")
        params.append(high)
    return (f" WHERE {' AND '.join(conditions)}" if conditions else ""), params
