"""Template words for access terms: a scope in plain words, a level's label."""

from __future__ import annotations

from typing import Any

from django import template

from approvals.models import AccessLevel
from audit.report_sections import cell_text

register = template.Library()


@register.filter
def scope_text(scope: Any) -> str:
    """{"columns": ["public.customers.email"], "tags": ["PII"]} → "columns: …; tags: PII"."""
    return cell_text(scope) or "nothing"


@register.filter
def level_label(level: str) -> str:
    """read_unmasked → "Read unmasked" (the choice's label; the code if unknown)."""
    return dict(AccessLevel.choices).get(level, level)
