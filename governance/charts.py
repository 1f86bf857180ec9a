"""Chart.js specifications for the dashboard and datasource pages (drawn by static/js/warden.js).

Every chart has a legend or, where one series speaks for itself, a title on its card.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from classification.models import ScanRun

SENSITIVITY_COLOURS = ["#1c8a4a", "#2f5bea", "#d97706", "#c53030"]


def per_datasource_chart(per_datasource: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "bar",
        "data": {
            "labels": [row["name"] for row in per_datasource],
            "datasets": [
                {
                    "label": "sensitive columns",
                    "data": [row["sensitive"] for row in per_datasource],
                    "backgroundColor": "#c53030",
                },
                {
                    "label": "all columns",
                    "data": [row["columns_total"] for row in per_datasource],
                    "backgroundColor": "#cbd5e1",
                },
            ],
        },
    }


def per_tag_chart(per_tag: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "bar",
        "data": {
            "labels": [row["name"] for row in per_tag],
            "datasets": [
                {
                    "label": "tagged columns",
                    "data": [row["columns"] for row in per_tag],
                    "backgroundColor": [SENSITIVITY_COLOURS[row["sensitivity"]] for row in per_tag],
                }
            ],
        },
        "options": {
            "indexAxis": "y",
            "plugins": {"legend": {"display": False}},
            "scales": {"y": {"ticks": {"autoSkip": False}}},
        },
    }


def scan_history_chart(scans: Sequence[ScanRun], *, name_datasource: bool) -> dict[str, Any]:
    """Columns classified, tags suggested and failed tables per scan (oldest first), with the
    duration on a second axis. `scans` come newest first, as ScanRun's ordering gives them."""
    oldest_first = list(reversed(scans))

    def label(scan: ScanRun) -> str:
        when = scan.created_at.strftime("%Y-%m-%d")
        return (
            f"#{scan.pk} {scan.datasource.name} {when}" if name_datasource else f"#{scan.pk} {when}"
        )

    return {
        "type": "line",
        "data": {
            "labels": [label(scan) for scan in oldest_first],
            "datasets": [
                {
                    "label": "columns classified",
                    "data": [scan.columns_classified for scan in oldest_first],
                    "borderColor": "#2f5bea",
                    "yAxisID": "y",
                },
                {
                    "label": "tags suggested",
                    "data": [scan.tags_suggested for scan in oldest_first],
                    "borderColor": "#1c8a4a",
                    "yAxisID": "y",
                },
                {
                    "label": "tables failed",
                    "data": [scan.tables_failed for scan in oldest_first],
                    "borderColor": "#c53030",
                    "yAxisID": "y",
                },
                {
                    "label": "duration (s)",
                    "data": [round(scan.duration_seconds or 0, 1) for scan in oldest_first],
                    "borderColor": "#d97706",
                    "yAxisID": "y1",
                },
            ],
        },
        "options": {
            "plugins": {"legend": {"display": True, "position": "bottom"}},
            "scales": {"y1": {"position": "right", "title": {"display": True, "text": "s"}}},
        },
    }
