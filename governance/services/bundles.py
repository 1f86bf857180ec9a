"""The policy bundle: everything the agent needs to decide on its own, for one datasource.

Format 1 (the agent in ``agent/bundle.py`` is written against it)::

    {"format": 1, "version": <sha256 hex>, "generated_at": <iso8601>,
     "datasource": {...}, "masking_key_id": ..., "sensitivity_levels": [...],
     "columns": [...], "rules": [...], "guardrails": [...], "grants": [...]}

``version`` is the SHA-256 of the canonical JSON of everything except ``version`` and
``generated_at``: it changes when a tag, rule, guardrail, grant or the datasource's defaults
change, and only then, so agents can poll with ETag/If-None-Match cheaply.

The envelope ``{"bundle", "signature", "key_id"}`` carries an Ed25519 signature over the
canonical JSON of the whole bundle (``canonical_json``).

Polls are answered from a per-process cache of the last signed envelope
(``policy_bundle_served``): it is reused while the ``BundleGeneration`` counter, which every
committed write to a bundle input moves (``bundle_inputs_changed``, called by the services'
bulk writes and by the signals in ``governance.signals``), has not moved, no grant in it has
expired and it is younger than ``WARDEN_BUNDLE_CACHE_SECONDS`` (the bound on how late a write
that bypassed both, say raw SQL, reaches the agents).
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.services import event_record
from governance.crypto import sign, signing_key_id
from governance.models import (
    AccessToken,
    BundleGeneration,
    ColumnTag,
    DataSource,
    GuardrailRule,
    PolicyRule,
    Sensitivity,
    User,
)
from governance.services.policies import resource_snapshot, subjects_snapshot
from governance.tokens import token_authenticate

BUNDLE_FORMAT = 1
SENSITIVITY_LEVELS = [label for _value, label in Sensitivity.choices]
DEFAULT_MASKING_KEY_ID = "k1"
ENGINE_UNAVAILABLE = "agent decision engine unavailable"


class PreviewUnavailable(RuntimeError):
    """The agent's decision engine could not be imported in this process."""


def canonical_json(document: Any) -> bytes:
    """The exact bytes that are hashed and signed (the agent re-serialises the same way)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# ---------------------------------------------------------------- parts of the bundle


def _bundle_columns(datasource: DataSource) -> list[dict[str, Any]]:
    """Columns with at least one active tag: one query, however large the catalog."""
    # "Not rejected" (= suggested or confirmed) rather than state IN (...): right after a scan
    # the planner's statistics can be stale, and an IN on the state index then turns into a
    # per-column bitmap AND over every tag row (minutes at 100k columns instead of a second).
    rows = (
        ColumnTag.objects.filter(
            column__table__datasource=datasource,
            column__dropped_at__isnull=True,
            column__table__dropped_at__isnull=True,
        )
        .exclude(state=ColumnTag.State.REJECTED)
        .order_by()
        .values_list(
            "column__table__schema_name",
            "column__table__name",
            "column__name",
            "tag__name",
            "tag__sensitivity",
        )
    )
    by_column: dict[tuple[str, str, str], tuple[set[str], int]] = {}
    for schema, table, column, tag, level in rows.iterator(chunk_size=10_000):
        tags, highest = by_column.get((schema, table, column), (set(), -1))
        tags.add(tag)
        by_column[(schema, table, column)] = (tags, max(highest, level))
    return [
        {
            "schema": schema,
            "table": table,
            "column": column,
            "tags": sorted(tags),
            "sensitivity": SENSITIVITY_LEVELS[highest],
        }
        for (schema, table, column), (tags, highest) in sorted(by_column.items())
    ]


def _bundle_rules(datasource: DataSource) -> list[dict[str, Any]]:
    rules = (
        PolicyRule.objects.filter(datasource=datasource, enabled=True)
        .select_related("tag")
        .prefetch_related("users", "groups")
        .order_by("-priority", "id")
    )
    return [
        {
            "id": rule.pk,
            "name": rule.name,
            "priority": rule.priority,
            "subjects": subjects_snapshot(rule),
            "resource": resource_snapshot(rule),
            "action": rule.action,
            "mask_method": rule.mask_method or None,
            "mask_param": rule.mask_param,
            "allow_exact_lookups": rule.allow_exact_lookups,
        }
        for rule in rules
    ]


def _bundle_guardrails(datasource: DataSource) -> list[dict[str, Any]]:
    guardrails = (
        GuardrailRule.objects.filter(
            Q(datasource=datasource) | Q(datasource__isnull=True), enabled=True
        )
        .prefetch_related("users", "groups")
        .order_by("id")
    )
    return [
        {
            "id": guardrail.pk,
            "name": guardrail.name,
            "kinds": sorted(guardrail.kinds),
            "subjects": subjects_snapshot(guardrail),
            "action": guardrail.action,
        }
        for guardrail in guardrails
    ]


def _bundle_grants(datasource: DataSource) -> list[dict[str, Any]]:
    """Live grants from the approvals app, in bundle shape.

    ``approvals.selectors.grants_for_bundle(datasource=...)`` is written in parallel; until it
    exists (ImportError) or while it lacks that function (AttributeError) a bundle carries no
    grants, which only ever denies/masks more, never less.
    """
    try:
        selectors = importlib.import_module("approvals.selectors")
        grants_for_bundle = selectors.grants_for_bundle
    except (ImportError, AttributeError):
        return []
    grants = list(grants_for_bundle(datasource=datasource))
    # A stable order, so the version only moves when a grant does.
    return sorted(grants, key=lambda grant: (int(grant.get("id") or 0), canonical_json(grant)))


def _masking_key_id() -> str:
    return str(getattr(settings, "MASKING_KEY_ID", DEFAULT_MASKING_KEY_ID))


# ---------------------------------------------------------------- build and sign


def policy_bundle_build(*, datasource: DataSource) -> dict[str, Any]:
    """Compile the versioned (unsigned) bundle for one datasource."""
    content: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "datasource": {
            "id": datasource.pk,
            "name": datasource.name,
            "engine": datasource.engine,
            "default_sensitive_action": datasource.default_sensitive_action,
            "default_mask_method": datasource.default_mask_method,
        },
        "masking_key_id": _masking_key_id(),
        "sensitivity_levels": list(SENSITIVITY_LEVELS),
        "columns": _bundle_columns(datasource),
        "rules": _bundle_rules(datasource),
        "guardrails": _bundle_guardrails(datasource),
        "grants": _bundle_grants(datasource),
    }
    version = hashlib.sha256(canonical_json(content)).hexdigest()
    return {**content, "version": version, "generated_at": timezone.now().isoformat()}


def policy_bundle_sign(*, bundle: dict[str, Any]) -> dict[str, Any]:
    """The signed envelope the agent verifies with the control plane's public key."""
    return {"bundle": bundle, "signature": sign(canonical_json(bundle)), "key_id": signing_key_id()}


def policy_bundle_envelope(*, datasource: DataSource) -> dict[str, Any]:
    return policy_bundle_sign(bundle=policy_bundle_build(datasource=datasource))


# ---------------------------------------------------------------- serving polls cheaply


def bundle_inputs_changed() -> None:
    """Move the bundle generation once the current transaction commits (once per transaction).

    After the commit, not inside it: the counter row is never locked by a long transaction,
    and a poll that sees the new value also sees the write.
    """
    connection = transaction.get_connection()
    if any(callback is _generation_bump for _ids, callback, _robust in connection.run_on_commit):
        return
    # robust: the write has committed; a failed bump only delays agents (the cache bound).
    transaction.on_commit(_generation_bump, robust=True)


def _generation_bump() -> None:
    if not BundleGeneration.objects.filter(pk=1).update(value=F("value") + 1):
        # The row is made by a migration; a flushed test database lacks it.
        BundleGeneration.objects.bulk_create([BundleGeneration(pk=1)], ignore_conflicts=True)
        BundleGeneration.objects.filter(pk=1).update(value=F("value") + 1)


def bundle_generation() -> int:
    return BundleGeneration.objects.filter(pk=1).values_list("value", flat=True).first() or 0


@dataclass(frozen=True)
class _ServedBundle:
    generation: int
    fresh_until: datetime
    envelope: dict[str, Any]


_served: dict[int, _ServedBundle] = {}


def _fresh_until(bundle: dict[str, Any], now: datetime) -> datetime:
    """When a cached bundle goes stale on its own: the cache bound, or a grant's expiry."""
    until = now + timedelta(seconds=settings.WARDEN_BUNDLE_CACHE_SECONDS)
    for grant in bundle["grants"]:
        try:
            expires = datetime.fromisoformat(grant["expires_at"])
        except (KeyError, TypeError, ValueError):
            return now  # an unreadable expiry: never reuse this bundle
        until = min(until, expires)
    return until


def bundle_cache_clear() -> None:
    """Forget every cached envelope (tests; a process whose signing key changed)."""
    _served.clear()


def policy_bundle_served(*, datasource: DataSource) -> dict[str, Any]:
    """The signed envelope for an agent's poll: compiled again only when an input changed."""
    generation = bundle_generation()  # read before compiling: a later write moves it past us
    cached = _served.get(datasource.pk)
    now = timezone.now()
    if cached is not None and cached.generation == generation and now < cached.fresh_until:
        return cached.envelope
    envelope = policy_bundle_envelope(datasource=datasource)
    _served[datasource.pk] = _ServedBundle(
        generation, _fresh_until(envelope["bundle"], now), envelope
    )
    return envelope


def bundle_etag(version: str) -> str:
    return f'"{version}"'


def etag_matches(if_none_match: str, version: str) -> bool:
    """RFC 9110 If-None-Match (weak comparison, lists and ``*``) against a bundle version."""
    candidates = [part.strip() for part in if_none_match.split(",") if part.strip()]
    return any(
        candidate == "*" or candidate.removeprefix("W/") == bundle_etag(version)
        for candidate in candidates
    )


# ---------------------------------------------------------------- "what would happen"


def _engine_modules() -> tuple[Any, Any, Any]:
    try:
        bundle_module = importlib.import_module("agent.bundle")
        decision_module = importlib.import_module("agent.decision")
        sql_module = importlib.import_module("agent.sql")
    except ImportError as exc:
        raise PreviewUnavailable(f"{ENGINE_UNAVAILABLE}: {exc}") from exc
    return bundle_module, decision_module, sql_module


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

    Assumes the agent interface: ``agent.bundle.Bundle.from_document(document)``,
    ``agent.decision.PolicyEngine(bundle).decide(Identity(name, kind, groups), analysis,
    fingerprint=...)`` → ``Decision`` and ``agent.sql.analyze(sql)`` / ``fingerprint(sql)``
    raising ``agent.sql.SqlError``. Raises PreviewUnavailable when the agent package cannot
    be imported, ValueError when the SQL does not parse.
    """
    bundle_module, decision_module, sql_module = _engine_modules()
    try:
        analysis = sql_module.analyze(sql)
        fingerprint = sql_module.fingerprint(sql)
    except sql_module.SqlError as exc:
        raise ValueError(f"The statement does not parse as PostgreSQL: {exc}") from exc
    engine = decision_module.PolicyEngine(bundle_module.Bundle.from_document(bundle))
    who = decision_module.Identity(name=identity, kind=kind, groups=frozenset(groups))
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
        "lookups": list(getattr(decision, "lookups", ())),
        # Result columns (1-based) computed from masked columns: redacted whole ("all" = any).
        "derived_outputs_redacted": "all" if derived is None else sorted(p + 1 for p in derived),
        "bundle_version": bundle.get("version", ""),
    }


def policy_preview(*, datasource: DataSource, subject: User, sql: str) -> dict[str, Any]:
    """What the agent would decide for ``subject`` running ``sql`` on ``datasource`` now."""
    if not sql.strip():
        raise ValueError("Enter a SQL statement to preview.")
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


# ---------------------------------------------------------------- agent logins
# (Client logins through the agent; would sit better in a services/agents.py module.)


@dataclass(frozen=True)
class AgentLogin:
    ok: bool
    identity: str
    kind: str = "user"
    groups: list[str] = field(default_factory=list)
    reason: str = ""


def _login_failure(secret: str, identity: str) -> tuple[str, str]:
    """(reason for the client, cause for the audit trail) of a failed login.

    Unknown identities and wrong tokens get the same reason so the agent cannot be used to
    probe which usernames exist; revoked/expired are only told to whoever holds the secret.
    """
    generic = "invalid identity or token"
    user = User.objects.filter(username=identity).first()
    if user is None:
        return generic, "unknown identity"
    if not user.is_active:
        return generic, "inactive user"
    digest = hashlib.sha256(secret.encode()).hexdigest()  # as governance.tokens stores it
    token = AccessToken.objects.filter(token_hash=digest, user=user).first()
    if token is None:
        return generic, "wrong token"
    if token.revoked_at is not None:
        return "token has been revoked", "revoked token"
    if token.expires_at is not None and token.expires_at <= timezone.now():
        return "token has expired", "expired token"
    return generic, "token rejected"


@transaction.atomic
def agent_login_check(
    *,
    agent_token: AccessToken,
    datasource: DataSource,
    identity: str,
    secret: str,
    source_address: str = "",
    application: str = "",
) -> AgentLogin:
    """Check a client's Warden identity and personal access token; audit either way."""
    agent_name = agent_token.user.get_username()
    token = token_authenticate(secret=secret, username=identity)
    if token is None:
        reason, cause = _login_failure(secret, identity)
        event_record(
            actor=agent_token.user,
            action="auth.agent_login_failed",
            datasource=datasource,
            decision="deny",
            source_address=source_address,
            details={
                "identity": identity,
                "reason": cause,
                "agent": agent_name,
                "application": application,
            },
        )
        return AgentLogin(ok=False, identity=identity, reason=reason)
    user = token.user
    kind = "service_account" if user.is_service_account else "user"
    groups = sorted(user.groups.values_list("name", flat=True))
    event_record(
        actor=user,
        action="auth.agent_login",
        target=token,
        datasource=datasource,
        decision="allow",
        source_address=source_address,
        details={
            "identity": user.get_username(),
            "kind": kind,
            "agent": agent_name,
            "token": token.prefix,
            "application": application,
        },
    )
    return AgentLogin(ok=True, identity=user.get_username(), kind=kind, groups=groups)
