"""Reads of the catalog that are more than one line."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Prefetch, Q, QuerySet

from governance.models import Column, ColumnTag, DataSource, Sensitivity, Tag

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
        columns = columns.filter(Q(name__icontains=query) | Q(table__name__icontains=query))
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
    return columns.order_by(
        "table__datasource__name", "table__schema_name", "table__name", "ordinal"
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
