"""The evidence report's sections, defined once for every tabular writer (CSV, PDF).

Each section names its rows in the report document (``audit.reports.evidence_report``) and
its fields: the key a row carries (the CSV header) and a heading for people (the PDF). The
JSON writer emits the report document itself, whose keys these sections read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Row = dict[str, Any]
DECISIONS = ("allow", "mask", "deny", "hold")


@dataclass(frozen=True)
class Field:
    key: str
    heading: str
    # Stored values as the PDF (for people) words them; CSV and JSON keep the values.
    words: dict[str, str] | None = None

    def worded(self, value: Any) -> Any:
        return self.words.get(value, value) if self.words and isinstance(value, str) else value


@dataclass(frozen=True)
class Section:
    title: str
    fields: tuple[Field, ...]
    rows: Callable[[dict[str, Any]], list[Row]]
    # How many there were when the rows are a capped list (shown in the PDF's title).
    total: Callable[[dict[str, Any]], int] | None = None
    # Relative column widths in the PDF (None: equal).
    widths: tuple[float, ...] | None = None

    @property
    def keys(self) -> list[str]:
        return [field.key for field in self.fields]

    @property
    def headings(self) -> list[str]:
        return [field.heading for field in self.fields]


def cell_text(value: Any) -> str:
    """One cell as words: lists joined, objects as "key: value" pairs, nothing as empty.

    An access scope ({"tables": [...], "columns": [...], "tags": [...]}) reads
    "tables: a, b; tags: PII.Email"; a policy's before/after likewise.
    """
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(cell_text(item) for item in value)
    if isinstance(value, dict):
        parts = [f"{key}: {cell_text(item)}" for key, item in sorted(value.items())]
        return "; ".join(part for part in parts if not part.endswith(": "))
    return str(value)


def _fields(*fields: tuple[str, str] | tuple[str, str, dict[str, str]]) -> tuple[Field, ...]:
    return tuple(Field(*field) for field in fields)


# A request's status is the step of its last event; a reviewer's "denied" reads as the
# request pages say it (a statement is "blocked" by a rule, a request "rejected").
REQUEST_STATUS_WORDS = {"denied": "rejected"}


def _summary(report: dict[str, Any]) -> list[Row]:
    period = report["period"]
    return [
        {
            "from": period["from"],
            "to": period["to"],
            "generated_at": report["generated_at"],
            "events": report["event_count"],
            "chain": "verified" if report["verification"]["ok"] else "BROKEN",
        }
    ]


def _tagged_column_reads(report: dict[str, Any]) -> list[Row]:
    return [
        {"identity": item["identity"], **column, "tags": " ".join(column["tags"])}
        for item in report["access_summary"]
        for column in item["tagged_columns"]
    ]


def _queries_per_identity(report: dict[str, Any]) -> list[Row]:
    return [
        {
            "identity": item["identity"],
            "queries": item["queries"],
            **{decision: item["by_decision"].get(decision, 0) for decision in DECISIONS},
        }
        for item in report["access_summary"]
    ]


def _items(key: str) -> Callable[[dict[str, Any]], list[Row]]:
    return lambda report: report[key]["items"]


def _total(key: str) -> Callable[[dict[str, Any]], int]:
    return lambda report: report[key]["total"]


SUMMARY = Section(
    "Report",
    _fields(
        ("from", "From"),
        ("to", "To"),
        ("generated_at", "Generated"),
        ("events", "Events"),
        ("chain", "Chain"),
    ),
    _summary,
)
TAGGED_COLUMN_READS = Section(
    "Access to tagged columns",
    _fields(
        ("identity", "Identity"),
        ("datasource", "Datasource"),
        ("column", "Tagged column"),
        ("tags", "Tags"),
        ("masked", "Masked"),
        ("unmasked", "Unmasked"),
    ),
    _tagged_column_reads,
)
QUERIES_PER_IDENTITY = Section(
    "Queries per identity",
    _fields(("identity", "Identity"), ("queries", "Queries"), *((d, d) for d in DECISIONS)),
    _queries_per_identity,
)
ROWS_RETURNED = Section(
    "Rows returned per identity and tables",
    _fields(
        ("identity", "Identity"),
        ("datasource", "Datasource"),
        ("tables", "Tables read"),
        ("statements", "Statements"),
        ("masked_statements", "Masked"),
        ("rows", "Rows returned"),
        ("bytes", "Bytes returned"),
    ),
    lambda report: report["rows_returned"],
)
ACCESS_REQUESTS = Section(
    "Access requests",
    _fields(
        ("request_id", "Request"),
        ("requester", "Requester"),
        ("scope", "Requested scope"),
        ("level", "Level"),
        ("reason", "Reason"),
        ("duration_minutes", "Asked min"),
        ("status", "Status", REQUEST_STATUS_WORDS),
        ("granted_scope", "Granted scope"),
        ("granted_minutes", "Granted min"),
        ("granted_max_runs", "Runs"),
        ("granted_expires_at", "Grant expires"),
        ("reviewer", "Reviewer"),
        ("comment", "Comment"),
        ("requested_at", "Requested"),
        ("decided_at", "Decided"),
    ),
    lambda report: report["access_requests"],
    widths=(1.4, 3.0, 3.2, 2.0, 3.0, 1.7, 1.9, 3.2, 1.9, 1.1, 2.3, 3.0, 2.4, 2.3, 2.3),
)
BREAK_GLASS = Section(
    "Break-glass uses",
    _fields(
        ("sequence", "#"),
        ("time", "Time"),
        ("actor", "Actor"),
        ("datasource", "Datasource"),
        ("reason", "Reason"),
    ),
    _items("break_glass"),
    _total("break_glass"),
)
BLOCKED_STATEMENTS = Section(
    "Blocked statements",
    _fields(
        ("sequence", "#"),
        ("time", "Time"),
        ("identity", "Identity"),
        ("datasource", "Datasource"),
        ("rule", "Rule"),
        ("statement", "Statement"),
    ),
    _items("blocked_statements"),
    _total("blocked_statements"),
    widths=(1, 2.7, 2.1, 2, 2.5, 9),
)
CHANGES = Section(
    "Policy and tag changes",
    _fields(
        ("sequence", "#"),
        ("time", "Time"),
        ("actor", "Actor"),
        ("action", "Action"),
        ("target", "Target"),
        ("before", "Before"),
        ("after", "After"),
    ),
    _items("changes"),
    _total("changes"),
)
COVERAGE = Section(
    "Classification coverage",
    _fields(
        ("datasource", "Datasource"),
        ("columns", "Columns"),
        ("tagged_columns", "Tagged"),
        ("coverage_percent", "Coverage %"),
        ("confirmed_tags", "Confirmed tags"),
        ("suggested_tags", "Suggested tags"),
    ),
    lambda report: report["coverage"],
)
VERIFICATION = Section(
    "Chain verification",
    _fields(
        ("ok", "OK"),
        ("checked", "Checked"),
        ("first_sequence", "First"),
        ("last_sequence", "Last"),
        ("head_hash", "Head hash"),
        ("problem", "Problem"),
    ),
    lambda report: [report["verification"]],
)
CHECKPOINT = Section(
    "Signed checkpoint",
    _fields(
        ("sequence", "Sequence"),
        ("head_hash", "Head hash"),
        ("created_at", "Created"),
        ("key_id", "Key"),
        ("signature", "Signature"),
    ),
    lambda report: [report.get("checkpoint") or {}],
)

# Every section in report order (the CSV); the PDF tells the summary, the verification and
# the checkpoint in sentences and shows the rest as these tables.
SECTIONS = (
    SUMMARY,
    TAGGED_COLUMN_READS,
    QUERIES_PER_IDENTITY,
    ROWS_RETURNED,
    ACCESS_REQUESTS,
    BREAK_GLASS,
    BLOCKED_STATEMENTS,
    CHANGES,
    COVERAGE,
    VERIFICATION,
    CHECKPOINT,
)
TABLE_SECTIONS = (
    TAGGED_COLUMN_READS,
    QUERIES_PER_IDENTITY,
    ROWS_RETURNED,
    ACCESS_REQUESTS,
    BREAK_GLASS,
    BLOCKED_STATEMENTS,
    CHANGES,
    COVERAGE,
)
