"""The evidence report as PDF (ReportLab platypus; charts with reportlab.graphics)."""

from __future__ import annotations

import json
import re
from typing import Any, BinaryIO
from xml.sax.saxutils import escape

from reportlab.graphics.charts.barcharts import HorizontalBarChart, VerticalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import (
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from audit.report_sections import TABLE_SECTIONS, Section, cell_text

DECISION_COLOURS = {
    "allow": colors.HexColor("#16a34a"),
    "mask": colors.HexColor("#f59e0b"),
    "deny": colors.HexColor("#dc2626"),
    "hold": colors.HexColor("#6366f1"),
}
PDF_ROWS = 200  # rows per table in the PDF; the CSV/JSON carry the rest
MARGIN = 12 * mm
PAGE_WIDTH = landscape(A4)[0] - 2 * MARGIN
_styles = getSampleStyleSheet()
_cell = ParagraphStyle("cell", parent=_styles["BodyText"], fontSize=7.5, leading=9)
_small = ParagraphStyle("small", parent=_styles["BodyText"], fontSize=8, leading=10)


def _p(value: Any, style: ParagraphStyle = _cell) -> Paragraph:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return Paragraph(escape(text or ""), style)


def _table(header: list[str], rows: list[list[Any]], widths: list[float] | None = None) -> Table:
    data = [[_p(cell) for cell in header]] + [[_p(cell) for cell in row] for row in rows[:PDF_ROWS]]
    if len(rows) > PDF_ROWS:
        data.append([_p(f"… {len(rows) - PDF_ROWS} more rows in the CSV/JSON export")])
    table = Table(data, colWidths=widths, repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e5e7eb")),
                ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#9ca3af")),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    return table


def _section_title(section: Section, report: dict[str, Any]) -> str:
    return f"{section.title} ({section.total(report)})" if section.total else section.title


_ISO_TIME = re.compile(r"^(\d{4}-\d\d-\d\d)T(\d\d:\d\d)[0-9:.]*(Z|[+-]00:00)$")


def _pdf_cell(value: Any) -> str:
    """cell_text, with timestamps shortened to minutes (UTC) so they fit a table cell."""
    return _ISO_TIME.sub(r"\1 \2", cell_text(value))


def _section_table(section: Section, report: dict[str, Any]) -> Table:
    rows = [
        [_pdf_cell(field.worded(row.get(field.key))) for field in section.fields]
        for row in section.rows(report)
    ]
    widths = None
    if section.widths:
        unit = PAGE_WIDTH / sum(section.widths)
        widths = [weight * unit for weight in section.widths]
    return _table(section.headings, rows, widths)


def _section(title: str, *flowables: Any) -> list[Any]:
    return [Spacer(1, 5 * mm), Paragraph(escape(title), _styles["Heading2"]), *flowables]


def queries_per_day_chart(per_day: dict[str, dict[str, int]]) -> Drawing:
    drawing = Drawing(250 * mm, 70 * mm)
    drawing.add(String(0, 66 * mm, "Queries per day by decision", fontSize=10))
    days = sorted(per_day)
    if not days:
        drawing.add(String(10, 30 * mm, "No queries in this period.", fontSize=9))
        return drawing
    chart = VerticalBarChart()
    chart.x, chart.y, chart.width, chart.height = 15 * mm, 12 * mm, 190 * mm, 48 * mm
    decisions = list(DECISION_COLOURS)
    chart.data = [[per_day[day].get(decision, 0) for day in days] for decision in decisions]
    chart.categoryAxis.categoryNames = [day[5:] for day in days]
    chart.categoryAxis.labels.fontSize = 6
    chart.categoryAxis.labels.angle = 45 if len(days) > 10 else 0
    chart.categoryAxis.style = "stacked"
    chart.valueAxis.valueMin = 0
    chart.valueAxis.labels.fontSize = 7
    for index, decision in enumerate(decisions):
        chart.bars[index].fillColor = DECISION_COLOURS[decision]
    drawing.add(chart)
    legend = Legend()
    legend.x, legend.y = 212 * mm, 55 * mm
    legend.fontSize = 7
    legend.colorNamePairs = [(DECISION_COLOURS[d], d) for d in decisions]
    drawing.add(legend)
    return drawing


def sensitive_reads_chart(reads: dict[str, int]) -> Drawing:
    names = list(reads)[:15]
    height = max(30, 8 * len(names) + 20) * mm / 2
    drawing = Drawing(250 * mm, height + 10 * mm)
    drawing.add(String(0, height + 5 * mm, "Sensitive reads per identity", fontSize=10))
    if not names:
        drawing.add(String(10, 10, "No reads of tagged columns in this period.", fontSize=9))
        return drawing
    chart = HorizontalBarChart()
    chart.x, chart.y, chart.width, chart.height = 40 * mm, 5 * mm, 150 * mm, height - 5 * mm
    chart.data = [[reads[name] for name in reversed(names)]]
    chart.categoryAxis.categoryNames = list(reversed(names))
    chart.categoryAxis.labels.fontSize = 7
    chart.valueAxis.valueMin = 0
    chart.valueAxis.labels.fontSize = 7
    chart.bars[0].fillColor = colors.HexColor("#2563eb")
    drawing.add(chart)
    return drawing


def _verification(report: dict[str, Any]) -> list[Any]:
    result = report["verification"]
    status = "VERIFIED" if result["ok"] else f"BROKEN ({result['kind']})"
    lines = [
        f"Chain status: {status}. {result['checked']} events checked "
        f"(#{result['first_sequence']}..#{result['last_sequence']}) from {result['started_from']}; "
        f"{result['checkpoints_checked']} checkpoints matched; head {result['head_hash']}.",
    ]
    if not result["ok"]:
        where = (
            f"event #{result['broken_sequence']} {result['broken_event_id']}: "
            if result["broken_sequence"] is not None
            else ""
        )
        lines.append(f"First broken link: {where}{result['problem']}")
    checkpoint = report.get("checkpoint") or {}
    if checkpoint:
        lines.append(
            f"Signed checkpoint: sequence {checkpoint['sequence']}, "
            f"head {checkpoint['head_hash']}, "
            f"at {checkpoint['created_at']}, key {checkpoint['key_id']}, "
            f"signature {checkpoint['signature']}"
        )
    return [_p(line, _small) for line in lines]


def _page_footer(period: dict[str, Any]) -> Any:
    """Draws "Warden evidence <period> · page N" at the foot of every page."""
    label = f"Warden evidence {period['from'] or 'start'} to {period['to'] or 'now'}"

    def draw(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 8)
        width = doc.pagesize[0]
        canvas.drawString(MARGIN, MARGIN / 2, label)
        canvas.drawRightString(width - MARGIN, MARGIN / 2, f"page {doc.page}")
        canvas.restoreState()

    return draw


def report_pdf_write(*, stream: BinaryIO, report: dict[str, Any]) -> None:
    doc = SimpleDocTemplate(
        stream,
        pagesize=landscape(A4),
        title=report["title"],
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN,
    )
    period = report["period"]
    story: list[Any] = [
        Paragraph(escape(report["title"]), _styles["Title"]),
        _p(
            f"Period {period['from'] or 'start'} to {period['to'] or 'now'} · "
            f"generated {report['generated_at']} · {report['event_count']} events"
            + (f" · filters {cell_text(report['filters'])}" if report["filters"] else ""),
            _small,
        ),
    ]
    story += _section("Chain verification", *_verification(report))
    charts = report["charts"]
    story += _section(
        "Activity",
        queries_per_day_chart(charts["queries_per_day"]),
        sensitive_reads_chart(charts["sensitive_reads_per_identity"]),
    )
    for section in TABLE_SECTIONS:
        story += _section(_section_title(section, report), _section_table(section, report))
    footer = _page_footer(period)
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
