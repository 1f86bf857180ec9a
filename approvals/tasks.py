"""Celery tasks: expiry (beat), webhooks and emails (with retries). JSON arguments only."""

from __future__ import annotations

import logging
from typing import Any

import httpx
from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse

from approvals import selectors, services
from approvals.models import AccessRequest, Grant

logger = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_SECONDS = 5
# Webhooks and emails go out for new requests and decisions, not for every partial review.
EXTERNAL_EVENTS = {"created", "approved", "denied"}


class WebhookFailed(Exception):
    pass


@shared_task(name="approvals.expire_due", acks_late=True)
def expire_due_task() -> dict[str, Any]:
    """Beat, every minute: expire pending requests, record expired grants, warn grantees."""
    return {
        "requests_expired": services.requests_expire_due(),
        "grants_expired": services.grants_expire_due(),
        "grants_warned": len(services.grants_warn_expiring()),
    }


def _review_url(access_request: AccessRequest) -> str:
    base = getattr(settings, "WARDEN_BASE_URL", "").rstrip("/")
    return base + reverse("approvals:detail", args=[access_request.pk])


def webhook_payload(access_request: AccessRequest, event: str, slack: bool) -> dict[str, Any]:
    risk = access_request.risk or {}
    tags = ", ".join(risk.get("tags", {})) or "no tagged columns"
    flag = "BREAK-GLASS " if access_request.is_break_glass else ""
    text = (
        f"{flag}Access request #{access_request.pk} {event}: "
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


@shared_task(
    name="approvals.webhook_deliver",
    acks_late=True,
    autoretry_for=(httpx.HTTPError, WebhookFailed),
    retry_backoff=2,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=6,
)
def webhook_deliver_task(request_id: int, event: str) -> int | None:
    """POST the datasource's webhook; non-2xx and network errors retry with backoff."""
    if event not in EXTERNAL_EVENTS:
        return None
    access_request = AccessRequest.objects.select_related("requester", "datasource").get(
        pk=request_id
    )
    policy = selectors.review_policy_for(access_request.datasource)
    if not policy.webhook_url:
        return None
    payload = webhook_payload(access_request, event, policy.webhook_slack)
    response = httpx.post(policy.webhook_url, json=payload, timeout=WEBHOOK_TIMEOUT_SECONDS)
    if response.status_code >= 300:
        raise WebhookFailed(f"{policy.webhook_url} answered {response.status_code}")
    return response.status_code


def _recipients(access_request: AccessRequest, event: str) -> list[str]:
    policy = selectors.review_policy_for(access_request.datasource)
    emails = set(policy.notify_emails or [])
    if event == "created":
        emails.update(u.email for u in selectors.reviewers_of(access_request.datasource))
        if access_request.is_break_glass:
            emails.update(u.email for u in selectors.auditors())
    else:
        emails.add(access_request.requester.email)
    return sorted(email for email in emails if email)


@shared_task(
    name="approvals.email_send",
    acks_late=True,
    autoretry_for=(OSError,),
    retry_backoff=5,
    max_retries=5,
)
def email_send_task(request_id: int, event: str) -> int:
    if event not in EXTERNAL_EVENTS:
        return 0
    access_request = AccessRequest.objects.select_related("requester", "datasource").get(
        pk=request_id
    )
    recipients = _recipients(access_request, event)
    if not recipients:
        return 0
    payload = webhook_payload(access_request, event, slack=True)
    flag = "[BREAK-GLASS] " if access_request.is_break_glass else ""
    subject = f"{flag}[Warden] access request #{access_request.pk} {event}"
    return send_mail(subject, payload["text"], None, recipients)


@shared_task(
    name="approvals.grant_warning_email",
    acks_late=True,
    autoretry_for=(OSError,),
    retry_backoff=5,
    max_retries=5,
)
def grant_warning_email_task(grant_id: int) -> int:
    grant = Grant.objects.select_related("grantee", "datasource").get(pk=grant_id)
    if not grant.grantee.email:
        return 0
    text = (
        f"Your {grant.level} grant #{grant.pk} on {grant.datasource.name} expires at "
        f"{grant.expires_at:%Y-%m-%d %H:%M} UTC. Ask for an extension in Warden if you need more "
        "time."
    )
    return send_mail(f"[Warden] grant #{grant.pk} expires soon", text, None, [grant.grantee.email])
