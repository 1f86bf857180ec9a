"""Reads of the catalog that are more than one line."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Prefetch, Q, QuerySet
from django.urls import reverse

from governance.models import Column, ColumnTag, DataSource, Engine, Sensitivity, Table, Tag

REVIEW_STATES = ("suggested", "confirmed", "rejected", "untagged")


def catalog_columns(
    *,
    query: str = "",
    datasource_id: int | None = None,
    tag_name: str = "",
    min_sensitivity: int | None = None,
    review_state: str = "",
    include_dropped: bool = False,
) -> QuerySet[Column]:
    """Columns matching the catalog browser's filters, ready to render without N+1."""
    columns = Column.objects.select_related("table__datasource").prefetch_related(
        Prefetch(
            "column_tags", queryset=ColumnTag.objects.select_related("tag").order_by("tag__name")
        )
    )
    if not include_dropped:
        columns = columns.filter(dropped_at__isnull=True)
    if query:
        columns = columns.filter(_name_matches(query))
    if datasource_id:
        columns = columns.filter(table__datasource_id=datasource_id)
    if tag_name:
        columns = columns.filter(column_tags__tag__name=tag_name).exclude(
            column_tags__state=ColumnTag.State.REJECTED, column_tags__tag__name=tag_name
        )
    if min_sensitivity is not None:
        columns = columns.filter(sensitivity__gte=min_sensitivity)
    if review_state == "untagged":
        columns = columns.filter(column_tags__isnull=True)
    elif review_state in ("suggested", "confirmed", "rejected"):
        columns = columns.filter(column_tags__state=review_state)
    if tag_name or review_state:
        # Joining tags can repeat a column; only then is DISTINCT worth its cost.
        columns = columns.distinct()
    # One indexed key in the order of (datasource, schema, table, ordinal): see catalog_page.
    return columns.order_by("sort_key")


TABLE_IDS_LISTED = 500


def _name_matches(query: str) -> Q:
    """Columns whose own name or whose table's name contains `query`.

    The matching tables' ids go in as a list: then PostgreSQL ORs two bitmap index scans
    (the name's trigram index, governance 0015, and table_id's) where an IN (subquery)
    made it test both names on every column (27 ms → 0.5 ms for a rare term at 100k
    columns). When very many tables match, most columns do too and the subquery is as good.
    """
    tables = Table.objects.filter(name__icontains=query).values_list("id", flat=True)
    table_ids = list(tables[: TABLE_IDS_LISTED + 1])
    if len(table_ids) > TABLE_IDS_LISTED:
        return Q(name__icontains=query) | Q(table_id__in=tables)
    return Q(name__icontains=query) | Q(table_id__in=table_ids)


def sort_key_at(columns: QuerySet[Column], offset: int) -> str | None:
    """The sort_key of the column just before position `offset` of `columns` (None at 0 or
    past the end). A deep OFFSET then walks one narrow index instead of every earlier
    column joined to its table and datasource (75 → 20 ms at offset 90,000)."""
    if offset <= 0:
        return None
    return next(iter(columns.values_list("sort_key", flat=True)[offset - 1 : offset]), None)


@dataclass(frozen=True)
class CatalogPage:
    """One page of the catalog; the links name a column id: ?before=<id> or ?after=<id>."""

    columns: list[Column]
    previous_before: int | None  # the previous page ends before this column
    next_after: int | None  # the next page starts after this column
    total: int


def column_sort_key_of(column_id: int | None) -> str | None:
    if column_id is None:
        return None
    return Column.objects.filter(pk=column_id).values_list("sort_key", flat=True).first()


def catalog_page(
    columns: QuerySet[Column],
    *,
    size: int,
    after: int | None = None,
    before: int | None = None,
    last: bool = False,
    number: int | None = None,
) -> CatalogPage:
    """A keyset page of `columns` (ordered by sort_key): an index range scan of `size` + 1
    rows wherever the page is, instead of OFFSET over a four-way sort. `number` still opens
    ?page=N links (an index scan past the earlier rows); an unknown cursor opens page 1."""
    after_key, before_key = column_sort_key_of(after), column_sort_key_of(before)
    if before_key is not None or (last and after_key is None):
        backwards = columns.order_by("-sort_key")
        if before_key is not None:
            backwards = backwards.filter(sort_key__lt=before_key)
        chunk = list(backwards[: size + 1])
        page, has_previous = chunk[:size][::-1], len(chunk) > size
        has_next = before_key is not None
    else:
        offset = (number - 1) * size if number and number > 1 and after_key is None else 0
        start_key = after_key if after_key is not None else sort_key_at(columns, offset)
        forwards = columns if start_key is None else columns.filter(sort_key__gt=start_key)
        chunk = list(forwards[: size + 1]) if start_key is not None or not offset else []
        page, has_previous = chunk[:size], after_key is not None or offset > 0
        has_next = len(chunk) > size
    return CatalogPage(
        columns=page,
        previous_before=page[0].pk if page and has_previous else None,
        next_after=page[-1].pk if page and has_next else None,
        total=columns.count(),
    )


def sensitive_columns_per_datasource() -> list[dict[str, Any]]:
    return list(
        DataSource.objects.annotate(
            columns_total=Count(
                "tables__columns", filter=Q(tables__columns__dropped_at__isnull=True)
            ),
            sensitive=Count(
                "tables__columns",
                filter=Q(
                    tables__columns__sensitivity__gte=Sensitivity.CONFIDENTIAL,
                    tables__columns__dropped_at__isnull=True,
                ),
            ),
        )
        .values("id", "name", "columns_total", "sensitive")
        .order_by("name")
    )


def tagged_columns_per_tag() -> list[dict[str, Any]]:
    return list(
        Tag.objects.annotate(
            columns=Count(
                "column_tags",
                filter=~Q(column_tags__state=ColumnTag.State.REJECTED)
                & Q(column_tags__column__dropped_at__isnull=True),
            )
        )
        .filter(columns__gt=0)
        .values("name", "sensitivity", "columns")
        .order_by("-columns")
    )


def review_state_counts() -> dict[str, int]:
    rows = ColumnTag.objects.values("state").annotate(total=Count("id"))
    return {row["state"]: row["total"] for row in rows}


@dataclass(frozen=True)
class CatalogSummary:
    per_datasource: list[dict[str, Any]]
    per_tag: list[dict[str, Any]]
    review_counts: dict[str, int]


SUMMARY_SECONDS = 300.0
_summary: dict[int, tuple[float, CatalogSummary]] = {}


def catalog_summary() -> CatalogSummary:
    """The dashboard's catalog figures. Each is an aggregate over every column (~100 ms at
    100k columns on a busy machine), so a process keeps them per bundle generation — which
    every change to columns, tags or their review moves (governance.signals and the scan's
    bulk writes) — and for at most SUMMARY_SECONDS beside it."""
    from governance.services.bundles import bundle_generation

    generation, now = bundle_generation(), time.monotonic()
    cached = _summary.get(generation)
    if cached is not None and now - cached[0] < SUMMARY_SECONDS:
        return cached[1]
    summary = CatalogSummary(
        per_datasource=sensitive_columns_per_datasource(),
        per_tag=tagged_columns_per_tag(),
        review_counts=review_state_counts(),
    )
    _summary.clear()
    _summary[generation] = (now, summary)
    return summary


def catalog_summary_cache_clear() -> None:
    """Forget the kept figures (tests: a rolled-back test's generation comes round again)."""
    _summary.clear()


@dataclass(frozen=True)
class TourStep:
    title: str
    text: str
    url: str
    done: bool


def first_run_tour() -> list[TourStep]:
    """The admin's first-run tour; each step is done when the data shows it was done."""
    from approvals.models import Review
    from audit.models import AuditEvent
    from classification.models import ScanRun
    from governance.models import GuardrailRule, PolicyRule

    return [
        TourStep(
            "Review what the scan found",
            "A scan tags sensitive columns; confirm or reject its suggestions in the catalog.",
            reverse("catalog"),
            ScanRun.objects.filter(state=ScanRun.State.SUCCEEDED).exists(),
        ),
        TourStep(
            "Set policies and guardrails",
            "Mask, deny or require approval per tag, table or person; block risky statements.",
            reverse("policy_list"),
            PolicyRule.objects.exists() or GuardrailRule.objects.exists(),
        ),
        TourStep(
            "Connect through the agent",
            "Open a datasource's Connect panel and run a query with psql as yourself.",
            reverse("datasource_list"),
            AuditEvent.objects.filter(action="query.executed").exists(),
        ),
        TourStep(
            "Review a request, then check the audit trail",
            "Approve or deny a held statement in Approvals; every step lands in Audit.",
            reverse("approvals:inbox"),
            Review.objects.exists(),
        ),
    ]


TOKEN_PLACEHOLDER = "<your personal access token>"


@dataclass(frozen=True)
class AgentConnection:
    """How one person connects to a datasource through its agent: a command line for the
    engine's usual client (psql or mariadb) and a connection URL."""

    address: str
    command: str
    url: str


def agent_connection(*, datasource: DataSource, username: str, token: str = "") -> AgentConnection:
    """Commands for `username`; the token is a placeholder unless one was just created.
    The address is the live agent's (from its heartbeats), else the configured one."""
    from urllib.parse import quote

    from django.conf import settings

    from governance.agent_selectors import live_agent_for

    live = live_agent_for(datasource)
    default_port = "3306" if datasource.engine == Engine.MYSQL else "6432"
    address = (
        live.address if live else settings.WARDEN_AGENT_ADDRESS or f"<agent host>:{default_port}"
    )
    host, _, port = address.rpartition(":")
    password = token or TOKEN_PLACEHOLDER
    database = datasource.database
    if datasource.engine == Engine.MYSQL:
        # The agent takes the token only over TLS (or RSA-encrypted), never in clear.
        command = f"mariadb --ssl -h {host} -P {port} -u {username} -p'{password}' {database}"
        scheme = "mysql"
    else:
        command = (
            f'psql "host={host} port={port} dbname={database} user={username} password={password}"'
        )
        scheme = "postgresql"
    url = f"{scheme}://{quote(username)}:{quote(password)}@{address}/{quote(database)}"
    return AgentConnection(address=address, command=command, url=url)
