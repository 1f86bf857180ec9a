"""One date format for every page: relative words, the exact UTC time on hover."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django import template
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timesince import timesince, timeuntil

from audit.selectors import DECISION_LABELS

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


DECISION_WORDS = {**DECISION_LABELS, "require_approval": "Requires approval"}


@register.filter
def decision_label(decision: str | None) -> str:
    """One vocabulary: a stored "deny" reads "Blocked" (as on the audit dashboard)."""
    return DECISION_WORDS.get(decision or "", decision or "")


@register.filter
def rule_ref(reference: str | None, roles: Any = ()) -> SafeString | str:
    """The agent's label of a rule ("rule:7:mask-pii") as its name, linked to its form for
    admins (who alone may open it)."""
    kind, _, rest = (reference or "").partition(":")
    rule_id, _, name = rest.partition(":")
    if kind not in RULE_FORMS or not rule_id.isdigit():
        return reference or ""
    label = f"{name or kind} (#{rule_id})"
    if "admin" not in (roles or ()):
        return label
    return format_html('<a href="{}">{}</a>', reverse(RULE_FORMS[kind], args=[rule_id]), label)


RULE_FORMS = {"rule": "policy_edit", "guardrail": "guardrail_edit"}
