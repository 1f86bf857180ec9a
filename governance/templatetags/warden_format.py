"""One date format for every page: relative words, the exact UTC time on hover."""

from __future__ import annotations

from datetime import UTC, datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timesince import timesince, timeuntil

register = template.Library()


@register.filter
def when(moment: datetime | None) -> SafeString | str:
    """`<time title="2026-11-20 10:00 UTC">3 hours ago</time>` (or "in 2 hours")."""
    if not moment:
        return "—"
    now = timezone.now()
    if abs((now - moment).total_seconds()) < 60:
        words = "just now"
    elif moment <= now:
        words = f"{timesince(moment, now, depth=1)} ago"
    else:
        words = f"in {timeuntil(moment, now, depth=1)}"
    exact = moment.astimezone(UTC)
    return format_html(
        '<time datetime="{}" title="{} UTC">{}</time>',
        exact.isoformat(),
        exact.strftime("%Y-%m-%d %H:%M:%S"),
        words.replace("\xa0", " "),
    )
