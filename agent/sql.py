"""Former home of the PostgreSQL analyser, kept only so ``governance/services/bundles.py``
(which imports ``agent.sql`` by name for policy previews) keeps working until it imports
``agent.postgres.sql`` and ``agent.analysis``; delete this module then."""

from agent.analysis import Analysis, ColumnUse, Relation, SqlError, StatementInfo
from agent.postgres.sql import analyze, fingerprint, normalize

__all__ = [
    "Analysis",
    "ColumnUse",
    "Relation",
    "SqlError",
    "StatementInfo",
    "analyze",
    "fingerprint",
    "normalize",
]
