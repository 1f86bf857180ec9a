"""Bundle → decision for one (identity, statement): allow, mask, deny or hold.

Precedence everywhere: deny > require_approval (hold) > mask > allow.  Per column the
matching rules decide; a sensitive column no rule matches gets the datasource default.
Grants are checked against the local clock, so an expired grant stops working even if
no new bundle arrives.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import datetime
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
from agent.bundle import Bundle, ColumnInfo
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
    RULE_ACTIONS,
    Decision,
    Identity,
    RowLimit,
    Verdict,
)


def _granted(verdict: Verdict) -> bool:
    """Whether a verdict rests on a grant (it ends, or it counts runs)."""
    return verdict.counted_grant is not None or verdict.valid_until != float("inf")


def _stronger(a: Verdict, b: Verdict) -> Verdict:
    return b if ACTION_STRENGTH[b.action] > ACTION_STRENGTH[a.action] else a


def _parse_time(text: str | None) -> float:
    if not text:
        return float("inf")
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _rule_label(rule: dict[str, Any], prefix: str = "rule") -> str:
    return f"{prefix}:{rule.get('id')}:{rule.get('name', '')}"


def _row_limit(guardrail: dict[str, Any], action: str) -> RowLimit:
    """A bundle without a usable max_rows (an older control plane) limits to 0 rows: the
    guardrail fails closed rather than letting every write through."""
    max_rows = guardrail.get("max_rows")
    return RowLimit(
        max_rows if isinstance(max_rows, int) and max_rows >= 0 else 0,
        action,
        _rule_label(guardrail, "guardrail"),
        str(guardrail.get("name", guardrail.get("id"))),
    )


class PolicyEngine:
    """Decisions for one bundle; memoises per identity, invalidated with the bundle."""

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
            return Verdict(DENY, rule=_rule_label(rule))
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
        best = Verdict(ALLOW, rule=_rule_label(matched[0]))
        for rule in matched:  # sorted by priority: first of equal strength wins
            action = RULE_ACTIONS.get(rule.get("action", ""), DENY)
            if ACTION_STRENGTH[action] > ACTION_STRENGTH[best.action]:
                best = Verdict(
                    action,
                    rule.get("mask_method") or self.bundle.default_method,
                    rule.get("mask_param"),
                    _rule_label(rule),
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
            expires = _parse_time(grant.get("expires_at"))
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
            verdict = _stronger(verdict, column)
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
            verdict = _stronger(
                verdict, self.relation_verdict(identity, schema, table, None, now)[0]
            )
        for rule in self.bundle.rules:
            if rule.get("action") in ("deny", "mask", "require_approval") and self.subject_matches(
                rule.get("subjects", {}), identity
            ):
                verdict = _stronger(verdict, Verdict(MASK, rule=_rule_label(rule)))
        return verdict

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
                    worst = _stronger(worst, Verdict(DENY, rule=verdict.rule))
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
                else _parse_time(lifting.get("expires_at"))
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
                worst = Verdict(action, rule=_rule_label(guardrail, "guardrail"))
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
            if (
                grant.get("identity") != identity.name
                or _parse_time(grant.get("expires_at")) <= now
            ):
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
