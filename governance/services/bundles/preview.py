""" "What would happen": the agent's own decision engine run on a freshly built bundle."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agent.analysis import SqlError
from agent.bundle import Bundle
from agent.decision import PolicyEngine
from agent.postgres.sql import analyze
from agent.postgres.sql import fingerprint as sql_fingerprint
from agent.verdicts import Identity
from config.errors import InvalidInput
from governance.models import DataSource, User
from governance.services.bundles.build import policy_bundle_build


def _label_parts(label: str, known: dict[str, tuple[str, str, str]]) -> tuple[str, str, str]:
    if label in known:
        return known[label]
    schema, table, column = [*label.split(".", 2), "", ""][:3]
    return schema, table, column


def bundle_preview_decision(
    bundle: dict[str, Any],
    identity: str,
    groups: Iterable[str],
    sql: str,
    *,
    kind: str = "user",
) -> dict[str, Any]:
    """Run the agent's own decision engine on a bundle document, as the agent would.

    Raises InvalidInput when the SQL does not parse.
    """
    try:
        analysis = analyze(sql)
        fingerprint = sql_fingerprint(sql)
    except SqlError as exc:
        raise InvalidInput(f"The statement does not parse as PostgreSQL: {exc}") from exc
    engine = PolicyEngine(Bundle.from_document(bundle))
    who = Identity(name=identity, kind=kind, groups=frozenset(groups))
    decision = engine.decide(who, analysis, fingerprint=fingerprint)
    known = {
        f"{c['schema']}.{c['table']}.{c['column']}": (c["schema"], c["table"], c["column"])
        for c in bundle.get("columns", [])
    }
    masked = []
    for label in decision.masked_columns:
        schema, table, column = _label_parts(label, known)
        verdict = engine.column_verdict(
            who, schema, table, None if column == "*" else column, fingerprint
        )
        masked.append(
            {
                "column": label,
                "method": verdict.method,
                "param": verdict.param,
                "rule": verdict.rule,
            }
        )
    derived = decision.derived_positions
    return {
        "action": decision.action,
        "rule": decision.rule,
        "message": decision.message,
        "statement_kind": decision.kind,
        "guardrail_kinds": sorted(analysis.guardrails),
        "tables_read": list(decision.tables_read),
        "tables_written": list(decision.tables_written),
        "columns_read": list(decision.columns_read),
        "masked_columns": masked,
        # Masked columns compared for equality under a rule allowing exact lookups.
        "lookups": list(decision.lookups),
        # Result columns (1-based) computed from masked columns: redacted whole ("all" = any).
        "derived_outputs_redacted": "all" if derived is None else sorted(p + 1 for p in derived),
        "bundle_version": bundle.get("version", ""),
    }


def policy_preview(*, datasource: DataSource, subject: User, sql: str) -> dict[str, Any]:
    """What the agent would decide for ``subject`` running ``sql`` on ``datasource`` now."""
    if not sql.strip():
        raise InvalidInput("Enter a SQL statement to preview.")
    groups = sorted(subject.groups.values_list("name", flat=True))
    kind = "service_account" if subject.is_service_account else "user"
    preview = bundle_preview_decision(
        policy_bundle_build(datasource=datasource), subject.get_username(), groups, sql, kind=kind
    )
    return {
        **preview,
        "identity": subject.get_username(),
        "identity_kind": kind,
        "groups": groups,
        "datasource": datasource.name,
    }
