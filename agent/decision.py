"""Bundle → decision for one (identity, statement): allow, mask, deny or hold.

Precedence everywhere: deny > require_approval (hold) > mask > allow.  Per column the
matching rules decide (agent/column_verdicts.py); the statement's decision combines its
columns' verdicts with how each is used, the tables it writes, guardrails and grants.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from agent import relations
from agent.analysis import (
    COPY,
    DERIVED,
    OUTPUT,
    PLAN,
    PREDICATE,
    TARGET,
    WRITE,
    Analysis,
    ColumnUse,
    Relation,
)
from agent.column_verdicts import ColumnVerdicts, parse_time, rule_label, stronger
from agent.relations import Created, ViewDeps
from agent.verdicts import (
    ACTION_STRENGTH,
    ALLOW,
    ALLOWED,
    DECISION_TTL,
    DENY,
    HOLD,
    MASK,
    ROWS_OVER_LIMIT,
    Decision,
    Identity,
    RowLimit,
    Verdict,
)


def _row_limit(guardrail: dict[str, Any], action: str) -> RowLimit:
    """A bundle without a usable max_rows (an older control plane) limits to 0 rows: the
    guardrail fails closed rather than letting every write through."""
    max_rows = guardrail.get("max_rows")
    return RowLimit(
        max_rows if isinstance(max_rows, int) and max_rows >= 0 else 0,
        action,
        rule_label(guardrail, "guardrail"),
        str(guardrail.get("name", guardrail.get("id"))),
    )


class PolicyEngine(ColumnVerdicts):
    """Decisions for one bundle's statements; memoises per identity, invalidated with the bundle."""

    # ------------------------------------------------------------ per statement

    def schemas_for(self, relation: Relation, search_path: list[str] | None) -> list[str]:
        if relation.schema is not None:
            return [relation.schema]
        schemas = set(self.bundle.schemas_by_table.get(relation.name, ()))
        schemas.update(s for s in (search_path or ["public"]) if not s.startswith("$"))
        return sorted(schemas)

    def decide(
        self,
        identity: Identity,
        analysis: Analysis,
        *,
        fingerprint: str,
        search_path: list[str] | None = None,
        views: Mapping[Relation, ViewDeps] | None = None,
        created: Created | None = None,
        unresolved: Mapping[Relation, str] | None = None,
        now: float | None = None,
    ) -> Decision:
        """``views``: the catalog's views among the relations, with what they read;
        ``created``: the relations the session created each name may be; ``unresolved``:
        the names that are neither, with why (see agent/relations.py)."""
        now = time.time() if now is None else now
        decision = Decision(ALLOW, kind=analysis.kind, valid_until=now + DECISION_TTL)
        decision.tables_read = sorted(r.label() for r in analysis.relations)
        decision.tables_written = sorted(r.label() for r in analysis.written)
        worst = ALLOWED
        reason = ""
        columns_read: set[str] = set()
        masked: set[str] = set()
        derived: set[int] | None = set()
        direct: set[int] | None = set()
        restricted_use = False  # any column restricted for this identity, in any role
        counted: set[int] = set()
        lookups: set[str] = set()
        views, created = views or {}, created or {}
        for statement in analysis.statements:
            if statement.search_path is not None:
                decision.search_path = statement.search_path
            decision.depends_on_literals |= statement.depends_on_literals
            if statement.refusal is not None and worst.action != DENY:
                worst, reason = Verdict(DENY, rule="pinned_setting"), statement.refusal
            if statement.opaque:
                verdict = self.any_restricted(identity, now)
                if verdict.action != ALLOW:
                    worst = stronger(worst, Verdict(DENY, rule=verdict.rule))
                    reason = (
                        "statement runs code or SQL the agent cannot inspect while "
                        "sensitive columns are restricted for you"
                    )
            for use in relations.expanded_uses(statement, views, created):
                for label, verdict in self._use_verdicts(
                    identity, use, fingerprint, search_path, now
                ):
                    columns_read.add(label)
                    restricted_use = restricted_use or verdict.action != ALLOW
                    decision.valid_until = min(decision.valid_until, verdict.valid_until)
                    if verdict.counted_grant is not None:
                        counted.add(verdict.counted_grant)
                    if verdict.action == ALLOW:
                        continue
                    if use.lookup and use.context == PREDICATE and verdict.lookups:
                        lookups.add(label)  # the rule allows exact lookups: audited as one
                        continue
                    effect, why = self._effect(use, verdict)
                    if effect == MASK:
                        masked.add(label)
                        if use.context == OUTPUT and direct is not None:
                            direct = None if use.position is None else direct | {use.position}
                        if use.context == DERIVED and derived is not None:
                            derived = None if use.position is None else derived | {use.position}
                    if ACTION_STRENGTH[effect] > ACTION_STRENGTH[worst.action]:
                        worst = Verdict(effect, rule=verdict.rule)
                        reason = why.format(column=label)
        reached = relations.relations_reached(analysis, views, created)
        worst, reason = self._table_level(
            identity, reached, fingerprint, search_path, now, worst, reason
        )
        worst, reason = self._private_catalogs(identity, analysis, worst, reason)
        if unresolved:  # it may be created next: never cached
            decision.valid_until = min(decision.valid_until, now)
        unsure = relations.refusal(unresolved or {}, analysis.statements, self.bundle)
        if unsure and worst.action != DENY and self.any_restricted(identity, now).action != ALLOW:
            worst, reason = Verdict(DENY, rule="unresolved_relation"), unsure
        worst, reason, lifting, row_limits = self._guardrails(
            identity, analysis, worst, reason, fingerprint, search_path, now
        )
        decision.row_limits = tuple(row_limits)
        if lifting is not None:  # never cache past the grant's end, nor a counted run
            limit = (
                now
                if lifting.get("max_runs") is not None
                else parse_time(lifting.get("expires_at"))
            )
            decision.valid_until = min(decision.valid_until, limit)
        if lifting is not None and lifting.get("max_runs") is not None:
            counted.add(int(lifting.get("id", 0)))
        if worst.action in (ALLOW, MASK):  # a run is used only by a statement that runs
            for grant_id in counted:
                self.grant_runs[grant_id] = self.grant_runs.get(grant_id, 0) + 1
        else:
            counted = set()
        decision.counted_grants = tuple(sorted(counted))
        decision.touches_restricted = restricted_use or any(
            self.relation_verdict(identity, schema, relation.name, fingerprint, now)[0].action
            != ALLOW
            for relation in reached
            for schema in self.schemas_for(relation, search_path)
        )
        decision.action, decision.rule, decision.message = worst.action, worst.rule, reason
        if worst.action == HOLD:
            decision.request_tables = relations.request_tables(
                analysis,
                reached,
                lambda relation: self.schemas_for(relation, search_path),
                lambda schema, table: any(
                    v.action == HOLD
                    for v in self._table_verdicts(identity, schema, table, fingerprint, now)
                ),
            )
        decision.columns_read = sorted(columns_read)
        decision.masked_columns = sorted(masked)
        decision.derived_positions = None if derived is None else frozenset(derived)
        decision.direct_masked_positions = None if direct is None else frozenset(direct)
        decision.lookups = sorted(lookups)
        if lookups and worst.action in (ALLOW, MASK):
            decision.rule = f"lookup:{','.join(decision.lookups)} {decision.rule}".strip()
        return decision

    def _private_catalogs(
        self, identity: Identity, analysis: Analysis, worst: Verdict, reason: str
    ) -> tuple[Verdict, str]:
        """Catalogs showing other sessions' statements or credentials are refused unless a
        rule allows the identity that catalog (its table, its schema, or the datasource)."""
        for schema, name in sorted(analysis.private_catalogs):
            verdict = self._strongest(
                [
                    rule
                    for rule in self.bundle.rules
                    if self.subject_matches(rule.get("subjects", {}), identity)
                    and self._resource_matches(
                        rule.get("resource", {}), schema, name.removesuffix("()"), None, None
                    )
                ],
                None,
            )
            if verdict.action == ALLOW and verdict.rule:
                continue
            if worst.action != DENY:
                label = name if schema == "pg_catalog" else f"{schema}.{name}"
                worst = Verdict(DENY, rule="private_catalog")
                reason = (
                    f"{label} shows other sessions' statements or credentials; reading it "
                    "needs a Warden rule allowing it"
                )
        return worst, reason

    def _table_level(
        self,
        identity: Identity,
        reached: set[Relation],
        fingerprint: str,
        search_path: list[str] | None,
        now: float,
        worst: Verdict,
        reason: str,
    ) -> tuple[Verdict, str]:
        """A deny or approval rule on a table (or its schema or datasource) covers every
        statement touching it, also those reading no column (`SELECT count(*) FROM t`), and
        those reading it through views (``reached``: see relations.relations_reached)."""
        for relation in sorted(reached, key=Relation.label):
            for schema in self.schemas_for(relation, search_path):
                verdict = self.column_verdict(
                    identity, schema, relation.name, None, fingerprint, now
                )
                if verdict.action not in (DENY, HOLD):
                    continue
                if ACTION_STRENGTH[verdict.action] > ACTION_STRENGTH[worst.action]:
                    worst = Verdict(verdict.action, rule=verdict.rule)
                    what = (
                        "is blocked by policy"
                        if verdict.action == DENY
                        else ("requires an approved access request")
                    )
                    reason = f"access to table {schema}.{relation.name} {what}"
        return worst, reason

    def _effect(self, use: ColumnUse, verdict: Verdict) -> tuple[str, str]:
        if use.context == TARGET and verdict.action not in (DENY, HOLD):
            return ALLOW, ""  # masking protects reads; storing into a masked column is fine
        if verdict.action == DENY:
            return DENY, "access to {column} is blocked by policy"
        if verdict.action == HOLD:
            return HOLD, "access to {column} requires an approved access request"
        if use.context == WRITE:
            return DENY, "masked column {column} cannot be copied into stored data or cursors"
        if use.context == COPY:
            return DENY, "masked column {column} cannot be exported with COPY; use SELECT"
        if use.context == PREDICATE:
            clause = (use.clause or "a filter").replace("{", "{{").replace("}", "}}")
            return DENY, (
                "masked column {column} cannot be used in "
                + clause
                + ": the result would depend on the hidden value"
            )
        if use.context == PLAN:
            return ALLOW, ""  # a plan names the column; it carries no value of it
        return MASK, ""

    def _use_verdicts(
        self,
        identity: Identity,
        use: ColumnUse,
        fingerprint: str,
        search_path: list[str] | None,
        now: float,
    ) -> Iterable[tuple[str, Verdict]]:
        for relation in use.candidates:
            for schema in self.schemas_for(relation, search_path):
                if use.column is None:
                    verdict, flagged = self.relation_verdict(
                        identity, schema, relation.name, fingerprint, now
                    )
                    yield f"{schema}.{relation.name}.*", ALLOWED
                    yield from flagged
                    continue
                known = (schema, relation.name, use.column) in self.bundle.columns
                if not known and len(use.candidates) > 1:
                    # Over-approximate candidate: only tables the bundle knows the column of.
                    table_level = self.column_verdict(
                        identity, schema, relation.name, None, fingerprint, now
                    )
                    if table_level.action == ALLOW:
                        continue
                verdict = self.column_verdict(
                    identity, schema, relation.name, use.column, fingerprint, now
                )
                yield f"{schema}.{relation.name}.{use.column}", verdict

    def _guardrails(
        self,
        identity: Identity,
        analysis: Analysis,
        worst: Verdict,
        reason: str,
        fingerprint: str,
        search_path: list[str] | None,
        now: float,
    ) -> tuple[Verdict, str, dict[str, Any] | None, list[RowLimit]]:
        lifting: dict[str, Any] | None = None
        row_limits: list[RowLimit] = []
        for guardrail in self.bundle.guardrails:
            kinds = analysis.guardrails.intersection(guardrail.get("kinds", ()))
            if not kinds or not self.subject_matches(guardrail.get("subjects", {}), identity):
                continue
            action = DENY if guardrail.get("action") == "block" else HOLD
            if action == HOLD:
                grant = self._approved_write(identity, analysis, fingerprint, search_path, now)
                if grant is not None:
                    lifting = lifting or grant  # its run is counted by decide()
                    continue
            if ROWS_OVER_LIMIT in kinds:  # judged on the estimate, before it runs
                row_limits.append(_row_limit(guardrail, action))
                kinds.discard(ROWS_OVER_LIMIT)
                if not kinds:
                    continue
            # Ties go to the guardrail: its name is the more useful explanation.
            if ACTION_STRENGTH[action] >= ACTION_STRENGTH[worst.action]:
                worst = Verdict(action, rule=rule_label(guardrail, "guardrail"))
                verb = "blocked" if action == DENY else "requires approval"
                reason = (
                    f"{', '.join(sorted(kinds))} {verb} by guardrail "
                    f'"{guardrail.get("name", guardrail.get("id"))}"'
                )
        return worst, reason, lifting, row_limits

    def _approved_write(
        self,
        identity: Identity,
        analysis: Analysis,
        fingerprint: str,
        search_path: list[str] | None,
        now: float,
    ) -> dict[str, Any] | None:
        """The live grant approving this statement despite a require-approval guardrail:
        a grant bound to exactly this statement, or a write grant over every table it touches."""
        touched = analysis.relations | analysis.written
        for grant in self.bundle.grants:
            if grant.get("identity") != identity.name or parse_time(grant.get("expires_at")) <= now:
                continue
            max_runs = grant.get("max_runs")
            if max_runs is not None and self.grant_runs.get(grant.get("id", 0), 0) >= max_runs:
                continue
            bound = grant.get("statement_fingerprint")
            if bound:
                if bound == fingerprint:
                    return grant
                continue
            tables = set(grant.get("scope", {}).get("tables", ()))
            if (
                grant.get("level") == "write"
                and touched
                and all(
                    any(
                        f"{schema}.{relation.name}" in tables
                        for schema in self.schemas_for(relation, search_path)
                    )
                    for relation in touched
                )
            ):
                return grant
        return None
