"""Live pushes and notifications, scheduled by services to run after their commit, and
what they say: the webhook payload and the email recipients.

Websocket groups: ``approvals_ds_<id>`` (the datasource's reviewers), ``approvals_user_<id>``
(one person's own requests and grants), ``approvals_auditors`` (break-glass alerts).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse

from approvals import push, selectors
from approvals.models import AccessRequest, DatasourceReviewPolicy, Grant
from config.dispatch import task_send

logger = logging.getLogger(__name__)

AUDITORS_GROUP = "approvals_auditors"


def datasource_group(datasource_id: int) -> str:
    return f"approvals_ds_{datasource_id}"


def user_group(user_id: int) -> str:
    return f"approvals_user_{user_id}"


def _group_send(groups: list[str], payload: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "approvals.message", "text": json.dumps(payload)}
    send = async_to_sync(layer.group_send)
    for group in groups:
        try:
            send(group, message)
        except Exception:  # a broken channel layer must not break the request flow
            logger.exception("approvals: websocket broadcast to %s failed", group)


def request_broadcast(request_id: int, event: str) -> None:
    """Push the request's inbox row to its reviewers and its requester."""
    access_request = selectors.request_row(pk=request_id)
    if access_request is None:
        return
    common = {
        "kind": "request",
        "event": event,
        "id": access_request.pk,
        "state": access_request.state,
        "state_label": access_request.get_state_display(),
        "requester_id": access_request.requester_id,
        "datasource": access_request.datasource.name,
        "created_at": access_request.created_at.timestamp(),
        "summary": f"{access_request.requester.get_username()} asks for "
        f"{access_request.level} on {access_request.datasource.name}",
    }
    context = {"access_request": access_request}
    review_html = render_to_string("approvals/_review_row.html", context)
    mine_html = render_to_string("approvals/_mine_row.html", context)
    _group_send(
        [datasource_group(access_request.datasource_id)],
        {**common, "audience": "review", "html": review_html},
    )
    _group_send(
        [user_group(access_request.requester_id)],
        {**common, "audience": "mine", "html": mine_html},
    )
    if access_request.is_break_glass and event == "created":
        alert = render_to_string("approvals/_break_glass_alert.html", context)
        _group_send(
            [datasource_group(access_request.datasource_id), AUDITORS_GROUP],
            {**common, "kind": "break_glass", "html": alert},
        )


def grant_warning_broadcast(grant_id: int) -> None:
    grant = Grant.objects.select_related("datasource").filter(pk=grant_id).first()
    if grant is None:
        return
    html = render_to_string("approvals/_grant_banner.html", {"grant": grant})
    _group_send(
        [user_group(grant.grantee_id)],
        {
            "kind": "grant_warning",
            "id": grant.pk,
            "html": html,
            "summary": f"Your grant on {grant.datasource.name} expires soon",
        },
    )


def _safely(callback: Any, *args: Any) -> None:
    try:
        callback(*args)
    except Exception:  # notifications never block or undo the request flow
        logger.exception("approvals: after-commit notification %s failed", callback)


def _enqueue(task: Any, *args: Any) -> None:
    # With eager Celery and no thread (tests) a webhook that keeps failing would raise into
    # the caller's request; _safely shields the flow.
    transaction.on_commit(lambda: _safely(task_send, task, *args))


def request_notify(
    request_id: int, event: str, *, webhook: bool = True, email: bool = True
) -> None:
    """After commit: wake the decision's waiters, push the row live, then webhook and email
    (Celery, with retries); ``webhook``/``email`` False: the caller knows there is nowhere
    to send it (``decision_notify``)."""
    # The tasks module imports this one for the payloads, so the tasks are looked up late.
    from approvals.tasks import EXTERNAL_EVENTS, email_send_task, webhook_deliver_task

    # A held statement or tool call is waiting on the decision; rendering the reviewers'
    # rows first would keep it waiting for tens of milliseconds.
    transaction.on_commit(lambda: _safely(push.decision_push, request_id, event))
    transaction.on_commit(lambda: _safely(request_broadcast, request_id, event))
    if event in EXTERNAL_EVENTS:
        if webhook:
            _enqueue(webhook_deliver_task, request_id, event)
        if email:
            _enqueue(email_send_task, request_id, event)


def decision_notify(
    access_request: AccessRequest, event: str, policy: DatasourceReviewPolicy
) -> None:
    """``request_notify`` for a decision, from the deciding transaction, which has the
    request (with its requester) and its review policy in hand: the webhook and email tasks
    are queued only when they have somewhere to go. Each is a broker message and a worker's
    queries for nothing otherwise; the tasks still check again when they run."""
    request_notify(
        access_request.pk,
        event,
        webhook=bool(policy.webhook_url),
        email=bool(email_recipients(access_request, event, policy=policy)),
    )


def grant_warning_notify(grant_id: int) -> None:
    """After commit: warn the grantee live and by email that their grant ends soon."""
    from approvals.tasks import grant_warning_email_task

    transaction.on_commit(lambda: _safely(grant_warning_broadcast, grant_id))
    _enqueue(grant_warning_email_task, grant_id)


def _review_url(access_request: AccessRequest) -> str:
    base = settings.WARDEN_BASE_URL.rstrip("/")
    return base + reverse("approvals:detail", args=[access_request.pk])


# The words of a request's events for people; the event names (webhook "event") stay.
EVENT_WORDS = {"denied": "rejected"}


def event_words(event: str) -> str:
    """An access request event as people read it: "denied" reads "rejected"."""
    return EVENT_WORDS.get(event, event)


def webhook_payload(access_request: AccessRequest, event: str, slack: bool) -> dict[str, Any]:
    """The datasource webhook's body (Slack: text only); its text is also the email's body."""
    risk = access_request.risk or {}
    tags = ", ".join(risk.get("tags", {})) or "no tagged columns"
    flag = "BREAK-GLASS " if access_request.is_break_glass else ""
    text = (
        f"{flag}Access request #{access_request.pk} {event_words(event)}: "
        f"{access_request.requester.get_username()} · {access_request.level} on "
        f"{access_request.datasource.name} for {access_request.duration_minutes} min · "
        f"{risk.get('columns', 0)} columns ({tags}) · reason: {access_request.reason} · "
        f"{_review_url(access_request)}"
    )
    if slack:
        return {"text": text}
    return {
        "event": f"access_request.{event}",
        "request_id": access_request.pk,
        "state": access_request.state,
        "requester": access_request.requester.get_username(),
        "datasource": access_request.datasource.name,
        "scope": access_request.scope,
        "level": access_request.level,
        "reason": access_request.reason,
        "duration_minutes": access_request.duration_minutes,
        "statement_fingerprint": access_request.statement_fingerprint or None,
        "risk": risk,
        "break_glass": access_request.is_break_glass,
        "review_url": _review_url(access_request),
        "text": text,
    }


def email_recipients(
    access_request: AccessRequest, event: str, *, policy: DatasourceReviewPolicy | None = None
) -> list[str]:
    """New requests go to the reviewers (and auditors for break-glass), decisions to the
    requester; the policy's extra addresses get both."""
    policy = policy or selectors.review_policy_for(access_request.datasource)
    emails = set(policy.notify_emails or [])
    if event == "created":
        emails.update(u.email for u in selectors.reviewers_of(access_request.datasource))
        if access_request.is_break_glass:
            emails.update(u.email for u in selectors.auditors())
    else:
        emails.add(access_request.requester.email)
    return sorted(email for email in emails if email)
