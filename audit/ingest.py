"""Agent audit batches: validate every event, resolve tags touched, append in one transaction.

An agent event is stored as action `query.executed`:

- actor = the Warden identity that ran the statement (actor_kind `user` or
  `service_account` from the identity's account, `unknown` if no such account exists);
- datasource_name, decision (allow/mask/deny/hold), source_address = client_address;
- target_type `statement`, target_id = fingerprint, target_repr = the start of the statement;
- details = statement, fingerprint, kind, tables_read, tables_written, columns_read,
  masked_columns, rule, rows, bytes (result data sent to the client, after masking; None
  from agents that do not count it), duration_ms, plus `via_agent` (the agent token owner's name),
  `agent_token` (its prefix), `tags` (sorted tag names of the columns read, for filtering)
  and `column_tags` ({"schema.table.column": [tag, ...]} for the tagged columns read).

Unknown fields are ignored. A batch is all-or-nothing: one malformed event rejects it.
A request body is either {"events": [event, ...]} or the agent's compact batch
(``agent.audit``: repeated statement fields sent once), which is expanded first.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agent.audit import BatchError, expand_batch
from audit.services import events_append_count
from config.errors import InvalidInput, NotAllowed
from governance.models import AccessToken, ColumnTag, User

DECISIONS = ("allow", "mask", "deny", "hold")
MAX_BATCH = 5000
MAX_STATEMENT_CHARS = 100_000
TEXT_LIMITS = {
    "identity": 150,
    "datasource": 100,
    "client_address": 100,
    "fingerprint": 100,
    "kind": 50,
    "rule": 300,
}
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_LIST_FIELDS = ("tables_read", "tables_written", "columns_read", "masked_columns")


class IngestError(InvalidInput):
    """A malformed batch; the message names the event and field."""


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int


def _text(event: dict[str, Any], key: str, where: str, *, required: bool = False) -> str:
    value = event.get(key)
    if value is None or value == "":
        if required:
            raise IngestError(f"{where}.{key}: required")
        return ""
    if not isinstance(value, str):
        raise IngestError(f"{where}.{key}: must be a string")
    limit = MAX_STATEMENT_CHARS if key == "statement" else TEXT_LIMITS.get(key, 1000)
    if len(value) > limit:
        raise IngestError(f"{where}.{key}: longer than {limit} characters")
    if "\x00" in value:
        raise IngestError(f"{where}.{key}: contains a NUL character")
    return value


def _time(event: dict[str, Any], where: str) -> datetime:
    value = event.get("time")
    if not isinstance(value, str):
        raise IngestError(f"{where}.time: required, an ISO-8601 string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise IngestError(f"{where}.time: not ISO-8601 ({value[:40]!r})") from exc
    if moment.tzinfo is None:
        raise IngestError(f"{where}.time: needs a timezone (e.g. Z)")
    return moment.astimezone(UTC)


def _labels(event: dict[str, Any], key: str, where: str) -> list[str]:
    value = event.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > 10_000:
        raise IngestError(f"{where}.{key}: must be a list of at most 10000 strings")
    for item in value:
        if not isinstance(item, str) or len(item) > 800 or "\x00" in item:
            raise IngestError(f"{where}.{key}: entries must be strings (≤ 800 characters)")
    return value


def _number(event: dict[str, Any], key: str, where: str) -> int | float | None:
    value = event.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise IngestError(f"{where}.{key}: must be a non-negative number")
    if value != value or value == float("inf"):
        raise IngestError(f"{where}.{key}: must be finite")
    return value


def _integer(event: dict[str, Any], key: str, where: str) -> int | None:
    value = _number(event, key, where)
    if value is not None and not isinstance(value, int):
        raise IngestError(f"{where}.{key}: must be an integer")
    return value


def _event_id(event: dict[str, Any], where: str) -> str:
    value = event.get("id")
    if isinstance(value, str) and _CANONICAL_UUID.fullmatch(value):
        return value  # the usual form, already canonical: skip the costlier parse
    try:
        return str(uuid.UUID(value)) if isinstance(value, str) else _bad_id(where)
    except ValueError:
        return _bad_id(where)


def _bad_id(where: str) -> str:
    raise IngestError(f"{where}.id: required, a UUID")


def agent_event_parse(event: Any, index: int) -> dict[str, Any]:
    """One agent event as a validated plain dict (raises IngestError naming the field)."""
    where = f"events[{index}]"
    if not isinstance(event, dict):
        raise IngestError(f"{where}: must be an object")
    decision = event.get("decision")
    if decision not in DECISIONS:
        raise IngestError(f"{where}.decision: must be one of {', '.join(DECISIONS)}")
    rows = _integer(event, "rows", where)
    parsed: dict[str, Any] = {
        "id": _event_id(event, where),
        "time": _time(event, where),
        "identity": _text(event, "identity", where, required=True),
        "datasource": _text(event, "datasource", where, required=True),
        "decision": decision,
        "client_address": _text(event, "client_address", where),
        "fingerprint": _text(event, "fingerprint", where),
        "statement": _text(event, "statement", where),
        "kind": _text(event, "kind", where),
        "rule": _text(event, "rule", where),
        "rows": rows,
        "bytes": _integer(event, "bytes", where),
        "duration_ms": _number(event, "duration_ms", where),
    }
    for key in _LIST_FIELDS:
        parsed[key] = _labels(event, key, where)
    return parsed


def _split_label(label: str) -> tuple[str, str, str] | None:
    parts = label.rsplit(".", 2)
    if len(parts) == 2:
        return "public", parts[0], parts[1]
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


def column_tags_resolve(
    *, columns_by_datasource: dict[str, set[str]]
) -> dict[tuple[str, str], list[str]]:
    """{(datasource, "schema.table.column"): sorted active tags}, one query per batch.

    A label `schema.table.*` (the whole row was read) maps to the tags of every column.
    """
    wanted: dict[str, dict[tuple[str, str, str], list[str]]] = defaultdict(dict)
    for datasource, labels in columns_by_datasource.items():
        for label in labels:
            parsed = _split_label(label)
            if parsed:
                wanted[datasource].setdefault(parsed, []).append(label)
    if not wanted:
        return {}
    tables = {triple[1] for triples in wanted.values() for triple in triples}
    found = ColumnTag.objects.filter(
        state__in=(ColumnTag.State.SUGGESTED, ColumnTag.State.CONFIRMED),
        column__table__datasource__name__in=list(wanted),
        column__table__name__in=list(tables),
    ).values_list(
        "column__table__datasource__name",
        "column__table__schema_name",
        "column__table__name",
        "column__name",
        "tag__name",
    )
    resolved: dict[tuple[str, str], set[str]] = defaultdict(set)
    for datasource, schema, table, column, tag in found:
        triples = wanted[datasource]
        for triple in ((schema, table, column), (schema, table, "*")):
            for label in triples.get(triple, ()):
                resolved[(datasource, label)].add(tag)
    return {key: sorted(tags) for key, tags in resolved.items()}


def _actor_kinds(identities: set[str]) -> dict[str, str]:
    accounts = User.objects.filter(username__in=list(identities)).values_list(
        "username", "is_service_account"
    )
    return {name: "service_account" if service else "user" for name, service in accounts}


def _entry(
    event: dict[str, Any],
    kinds: dict[str, str],
    tags: dict[tuple[str, str], list[str]],
    via: dict[str, str],
) -> dict[str, Any]:
    datasource = event["datasource"]
    column_tags = {
        label: tags[(datasource, label)]
        for label in event["columns_read"]
        if (datasource, label) in tags
    }
    touched = sorted({tag for names in column_tags.values() for tag in names})
    details = {
        key: event[key]
        for key in (
            "statement",
            "fingerprint",
            "kind",
            *_LIST_FIELDS,
            "rule",
            "rows",
            "bytes",
            "duration_ms",
        )
    }
    details.update(tags=touched, column_tags=column_tags, **via)
    return {
        "id": event["id"],
        "occurred_at": event["time"],
        "actor": event["identity"],
        "actor_kind": kinds.get(event["identity"], "unknown"),
        "action": "query.executed",
        "target_type": "statement",
        "target_id": event["fingerprint"],
        "target_repr": event["statement"][:300],
        "datasource_name": datasource,
        "decision": event["decision"],
        "details": details,
        "source_address": event["client_address"],
    }


def agent_batch_events(body: Any) -> Any:
    """The events of an ingest request body: {"events": [...]} or a compact batch."""
    if isinstance(body, dict) and "format" in body:
        rows = body.get("events")
        if isinstance(rows, list) and len(rows) > MAX_BATCH:  # refuse before expanding
            raise IngestError(f"events: at most {MAX_BATCH} per batch")
        try:
            return expand_batch(body)
        except BatchError as exc:
            raise IngestError(str(exc)) from exc
    return body.get("events") if isinstance(body, dict) else None


def _refuse_unserved(token: AccessToken, names: set[str]) -> None:
    """An agent token reports only for the datasources it serves: the whole batch is refused."""
    served = set(token.datasources.filter(name__in=names).values_list("name", flat=True))
    foreign = sorted(names - served)
    if foreign:
        raise NotAllowed(
            f"This agent token does not serve datasource(s) {', '.join(foreign)}.",
            field="events.datasource",
        )


def agent_events_ingest(*, token: AccessToken, events: Any) -> IngestResult:
    """Validate and append an agent's batch; idempotent by event id, all or nothing."""
    if not token.is_agent:
        raise NotAllowed("Only agent tokens push audit events.")
    if not isinstance(events, list):
        raise IngestError("events: must be a list")
    if len(events) > MAX_BATCH:
        raise IngestError(f"events: at most {MAX_BATCH} per batch")
    parsed = [agent_event_parse(event, index) for index, event in enumerate(events)]
    _refuse_unserved(token, {event["datasource"] for event in parsed})
    columns: dict[str, set[str]] = defaultdict(set)
    for event in parsed:
        columns[event["datasource"]].update(event["columns_read"])
    tags = column_tags_resolve(columns_by_datasource=columns)
    kinds = _actor_kinds({event["identity"] for event in parsed})
    via = {"via_agent": token.user.get_username(), "agent_token": token.prefix}
    entries = [_entry(event, kinds, tags, via) for event in parsed]
    accepted = events_append_count(entries=entries)
    return IngestResult(accepted=accepted, duplicates=len(parsed) - accepted)
