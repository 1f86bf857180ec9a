"""The "affects more than N rows" guardrail: an UPDATE, DELETE or MERGE the planner expects
to change more rows than a guardrail's ``max_rows`` is blocked or held for approval.

The policy engine cannot know the estimate (it depends on the literals and on the data), so
it only attaches the limits that apply to the identity (``Decision.row_limits``); before the
statement runs, the protocol's session asks the upstream planner (EXPLAIN, never the
statement itself) and ``limit_refusal`` turns an estimate above a limit into a refusal.  A
decision with limits is never reused without a new estimate (no native ticket, no cached
plain pass), and an estimate that cannot be taken refuses the statement (fails closed).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from agent.verdicts import ALLOW, DENY, HOLD, MASK, ROWS_OVER_LIMIT, Decision, RowLimit

__all__ = ["ROWS_OVER_LIMIT", "EstimateError", "RowLimit", "judged"]


class EstimateError(Exception):
    """The planner's estimate could not be taken; the text says why (shown to the caller)."""


async def judged(decision: Decision, estimate: Callable[[], Awaitable[int]]) -> Decision:
    """The decision, or its refusal when ``estimate()`` (the rows the statement would change,
    by the upstream planner) exceeds a rows_over_limit guardrail in force; a failed
    estimate refuses (fails closed)."""
    if not decision.row_limits or decision.action not in (ALLOW, MASK):
        return decision
    try:
        rows = await estimate()
    except EstimateError as exc:
        return estimate_failed(decision, str(exc))
    return limit_refusal(decision, rows) or decision


def limit_refusal(decision: Decision, estimate: int) -> Decision | None:
    """The refusal for an estimate above one of the decision's limits (the strictest action
    wins, then the lowest limit), else None."""
    exceeded = [limit for limit in decision.row_limits if estimate > limit.max_rows]
    if not exceeded:
        return None
    limit = min(exceeded, key=lambda x: (x.action != DENY, x.max_rows))
    verb = "blocked" if limit.action == DENY else "requires approval"
    return _refused(
        decision,
        limit.action,
        limit.rule,
        f'{ROWS_OVER_LIMIT} {verb} by guardrail "{limit.name}": the planner estimates '
        f"{estimate} rows changed, more than its limit of {limit.max_rows}",
    )


def estimate_failed(decision: Decision, why: str) -> Decision:
    """Fail closed: without an estimate the strictest limit refuses the statement."""
    limit = min(decision.row_limits, key=lambda x: (x.action != DENY, x.max_rows))
    return _refused(
        decision,
        limit.action,
        limit.rule,
        f'{ROWS_OVER_LIMIT}: guardrail "{limit.name}" needs the planner\'s estimate of the rows '
        f"changed, and it could not be taken ({why}); the statement was not run",
    )


def _refused(decision: Decision, action: str, rule: str, message: str) -> Decision:
    assert action in (DENY, HOLD)
    return Decision(
        action,
        rule=rule,
        message=message,
        kind=decision.kind,
        tables_read=decision.tables_read,
        tables_written=decision.tables_written,
        columns_read=decision.columns_read,
        masked_columns=decision.masked_columns,
        fingerprint=decision.fingerprint,
        statement=decision.statement,
        statements=decision.statements,
        kinds=decision.kinds,
        touches_restricted=decision.touches_restricted,
        valid_until=0.0,  # its estimate holds for this run only
    )
