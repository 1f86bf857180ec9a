"""PostgreSQL's normalized statement text: the core's remembered normalizer
(``agent/normalize.py``) with pglast's parser."""

from __future__ import annotations

import pglast

from agent.normalize import Normalizer, template_key

__all__ = ["postgres_normalizer", "template_key"]


def postgres_normalizer(*, max_entries: int = 20_000) -> Normalizer:
    """Normalizes with PostgreSQL's own parser; raises ``pglast.parser.ParseError``."""
    return Normalizer(pglast.parser.normalize, max_entries=max_entries)
