"""Celery tasks: expiry (beat), webhooks and emails (with retries). JSON arguments only."""

from __future__ import annotations

import logging
from typing import Any

import httpx
from celery import shared_task
from django.core.mail import send_mail

from approvals import notifications, selectors, services
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
    payload = notifications.webhook_payload(access_request, event, policy.webhook_slack)
    response = httpx.post(policy.webhook_url, json=payload, timeout=WEBHOOK_TIMEOUT_SECONDS)
    if response.status_code >= 300:
        raise WebhookFailed(f"{policy.webhook_url} answered {response.status_code}")
    return response.status_code


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
    recipients = notifications.email_recipients(access_request, event)
    if not recipients:
        return 0
    payload = notifications.webhook_payload(access_request, event, slack=True)
    flag = "[BREAK-GLASS] " if access_request.is_break_glass else ""
    words = notifications.event_words(event)
    subject = f"{flag}[Warden] access request #{access_request.pk} {words}"
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
