"""Per column: which rules and grants apply to one (identity, column), and the verdict they
give.  ``PolicyEngine`` (agent/decision.py) builds per-statement decisions on top.

Precedence: deny > require_approval (hold) > mask > allow; a sensitive column no rule
matches gets the datasource default.  Grants are checked against the local clock, so an
expired grant stops working even if no new bundle arrives.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from agent.bundle import Bundle, ColumnInfo
from agent.verdicts import (
    ACTION_STRENGTH,
    ALLOW,
    ALLOWED,
    DENY,
    HOLD,
    MASK,
    RULE_ACTIONS,
    Identity,
    Verdict,
)


def _granted(verdict: Verdict) -> bool:
    """Whether a verdict rests on a grant (it ends, or it counts runs)."""
    return verdict.counted_grant is not None or verdict.valid_until != float("inf")


def stronger(a: Verdict, b: Verdict) -> Verdict:
    return b if ACTION_STRENGTH[b.action] > ACTION_STRENGTH[a.action] else a


def parse_time(text: str | None) -> float:
    if not text:
        return float("inf")
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def rule_label(rule: dict[str, Any], prefix: str = "rule") -> str:
    return f"{prefix}:{rule.get('id')}:{rule.get('name', '')}"


class ColumnVerdicts:
    """Column verdicts for one bundle; memoised per identity, invalidated with the bundle."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self._verdicts: dict[tuple[Any, ...], Verdict] = {}
        self.grant_runs: dict[int, int] = {}

    # ------------------------------------------------------------ subjects and resources

    @staticmethod
    def subject_matches(subjects: dict[str, Any], identity: Identity) -> bool:
        if subjects.get("everyone"):
            return True
        if identity.name in subjects.get("users", ()):
            return True
        if identity.name in subjects.get("service_accounts", ()):
            return True
        return bool(identity.groups.intersection(subjects.get("groups", ())))

    def _resource_matches(
        self,
        resource: dict[str, Any],
        schema: str,
        table: str,
        column: str | None,
        info: ColumnInfo | None,
    ) -> bool:
        kind = resource.get("kind")
        if kind == "datasource":
            return True
        if kind == "schema":
            return resource.get("schema") == schema
        if kind == "table":
            return (resource.get("schema"), resource.get("table")) == (schema, table)
        if kind == "column":
            return (resource.get("schema"), resource.get("table"), resource.get("column")) == (
                schema,
                table,
                column,
            )
        if info is None:
            return False
        if kind == "tag":
            return resource.get("tag") in info.tags
        if kind == "sensitivity" and info.sensitivity in self.bundle.levels:
            level = resource.get("level")
            if level not in self.bundle.levels:
                return False
            return self.bundle.levels.index(info.sensitivity) >= self.bundle.levels.index(level)
        return False

    # ------------------------------------------------------------ per column

    def column_verdict(
        self,
        identity: Identity,
        schema: str,
        table: str,
        column: str | None,
        fingerprint: str | None = None,
        now: float | None = None,
    ) -> Verdict:
        """Verdict for one column; ``column=None`` stands for the table's untagged columns."""
        now = time.time() if now is None else now
        key = (identity, schema, table, column, fingerprint)
        cached = self._verdicts.get(key)
        if cached is not None and cached.valid_until > now:
            return cached
        verdict = self._compute_column(identity, schema, table, column, fingerprint, now)
        if len(self._verdicts) > 50_000:
            self._verdicts.clear()
        self._verdicts[key] = verdict
        return verdict

    def _compute_column(
        self,
        identity: Identity,
        schema: str,
        table: str,
        column: str | None,
        fingerprint: str | None,
        now: float,
    ) -> Verdict:
        info = self.bundle.columns.get((schema, table, column or ""))
        matched = [
            rule
            for rule in self.bundle.rules
            if self.subject_matches(rule.get("subjects", {}), identity)
            and self._resource_matches(rule.get("resource", {}), schema, table, column, info)
        ]
        grant, valid_until = self._grant_for(
            identity, schema, table, column, info, fingerprint, now
        )
        actions = {RULE_ACTIONS.get(r.get("action", ""), DENY) for r in matched}
        if DENY in actions:
            rule = next(r for r in matched if RULE_ACTIONS.get(r.get("action", "")) == DENY)
            return Verdict(DENY, rule=rule_label(rule))
        if grant is not None and grant.get("level") in ("read_unmasked", "write"):
            return self._counted(
                Verdict(ALLOW, rule=f"grant:{grant.get('id')}", valid_until=valid_until), grant, now
            )
        if grant is not None:  # level "read": approval no longer needed, masking still applies
            matched = [r for r in matched if r.get("action") != "require_approval"]
        verdict = self._strongest(matched, info)
        if grant is not None and verdict.action == HOLD:
            verdict = Verdict(MASK, self.bundle.default_method, rule=f"grant:{grant.get('id')}")
        if grant is not None:
            verdict = Verdict(
                verdict.action, verdict.method, verdict.param, verdict.rule, valid_until
            )
        return self._counted(verdict, grant, now)

    def _counted(self, verdict: Verdict, grant: dict[str, Any] | None, now: float) -> Verdict:
        """A grant limited to max_runs is never cached: every run is counted (per agent)."""
        if grant is None or grant.get("max_runs") is None:
            return verdict
        return Verdict(
            verdict.action,
            verdict.method,
            verdict.param,
            verdict.rule,
            now,
            int(grant.get("id", 0)),
        )

    def _strongest(self, matched: list[dict[str, Any]], info: ColumnInfo | None) -> Verdict:
        if not matched:
            if info is not None and info.sensitive:
                action = RULE_ACTIONS.get(self.bundle.default_action, MASK)
                return Verdict(action, self.bundle.default_method, rule="default")
            return ALLOWED
        best = Verdict(ALLOW, rule=rule_label(matched[0]))
        for rule in matched:  # sorted by priority: first of equal strength wins
            action = RULE_ACTIONS.get(rule.get("action", ""), DENY)
            if ACTION_STRENGTH[action] > ACTION_STRENGTH[best.action]:
                best = Verdict(
                    action,
                    rule.get("mask_method") or self.bundle.default_method,
                    rule.get("mask_param"),
                    rule_label(rule),
                    lookups=bool(rule.get("allow_exact_lookups")),
                )
        return best

    def _grant_for(
        self,
        identity: Identity,
        schema: str,
        table: str,
        column: str | None,
        info: ColumnInfo | None,
        fingerprint: str | None,
        now: float,
    ) -> tuple[dict[str, Any] | None, float]:
        for grant in self.bundle.grants:
            if grant.get("identity") != identity.name:
                continue
            expires = parse_time(grant.get("expires_at"))
            if expires <= now:
                continue
            wanted_fp = grant.get("statement_fingerprint")
            if wanted_fp and wanted_fp != fingerprint:
                continue
            max_runs = grant.get("max_runs")
            if max_runs is not None and self.grant_runs.get(grant.get("id", 0), 0) >= max_runs:
                continue
            scope = grant.get("scope", {})
            covered = (
                f"{schema}.{table}" in scope.get("tables", ())
                or (column is not None and f"{schema}.{table}.{column}" in scope.get("columns", ()))
                or (info is not None and bool(info.tags.intersection(scope.get("tags", ()))))
            )
            if covered:
                return grant, expires
        return None, float("inf")

    def relation_verdict(
        self,
        identity: Identity,
        schema: str,
        table: str,
        fingerprint: str | None,
        now: float,
    ) -> tuple[Verdict, list[tuple[str, Verdict]]]:
        """Strongest verdict over every column of a table, plus the columns that are not
        plainly allowed (restricted, or allowed by a grant: its end and runs must count)."""
        verdict = self.column_verdict(identity, schema, table, None, fingerprint, now)
        flagged: list[tuple[str, Verdict]] = []
        if verdict.action != ALLOW or _granted(verdict):
            flagged.append((f"{schema}.{table}.*", verdict))
        for info in self.bundle.columns_by_table.get((schema, table), ()):
            column = self.column_verdict(identity, schema, table, info.column, fingerprint, now)
            if column.action != ALLOW or _granted(column):
                flagged.append((f"{schema}.{table}.{info.column}", column))
            verdict = stronger(verdict, column)
        return verdict, flagged

    def _table_verdicts(
        self, identity: Identity, schema: str, table: str, fingerprint: str, now: float
    ) -> list[Verdict]:
        verdict, flagged = self.relation_verdict(identity, schema, table, fingerprint, now)
        return [verdict, *(v for _, v in flagged)]

    def any_restricted(self, identity: Identity, now: float) -> Verdict:
        """Strongest verdict over every column the bundle knows (for opaque statements)."""
        verdict = ALLOWED
        for schema, table in self.bundle.columns_by_table:
            verdict = stronger(
                verdict, self.relation_verdict(identity, schema, table, None, now)[0]
            )
        for rule in self.bundle.rules:
            if rule.get("action") in ("deny", "mask", "require_approval") and self.subject_matches(
                rule.get("subjects", {}), identity
            ):
                verdict = stronger(verdict, Verdict(MASK, rule=rule_label(rule)))
        return verdict
