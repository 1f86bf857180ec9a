"""Live pushes and notifications, scheduled by services to run after their commit.

Websocket groups: ``approvals_ds_<id>`` (the datasource's reviewers), ``approvals_user_<id>``
(one person's own requests and grants), ``approvals_auditors`` (break-glass alerts).
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections, transaction
from django.template.loader import render_to_string

from approvals import push

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
    from approvals.selectors import request_detail

    access_request = request_detail(pk=request_id)
    if access_request is None:
        return
    common = {
        "kind": "request",
        "event": event,
        "id": access_request.pk,
        "state": access_request.state,
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
    from approvals.models import Grant

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


def _send_task(task: Any, *args: Any) -> None:
    """Send now (we are after the commit), the way config.dispatch.enqueue_on_commit would."""
    if settings.CELERY_TASK_ALWAYS_EAGER and getattr(settings, "EAGER_IN_THREAD", False):

        def run() -> None:
            try:
                task.apply(args=args, throw=False)
            finally:
                close_old_connections()

        threading.Thread(target=run, name=f"warden-{task.name}", daemon=True).start()
    else:
        task.delay(*args)


def _enqueue(task: Any, *args: Any) -> None:
    # Not enqueue_on_commit itself: with eager Celery and no thread (tests) a webhook that
    # keeps failing would raise into the caller's request. _safely shields the flow.
    transaction.on_commit(lambda: _safely(_send_task, task, *args))


def request_notify(request_id: int, event: str) -> None:
    """After commit: push the row live, then webhook and email (Celery, with retries)."""
    from approvals.tasks import EXTERNAL_EVENTS, email_send_task, webhook_deliver_task

    transaction.on_commit(lambda: _safely(request_broadcast, request_id, event))
    transaction.on_commit(lambda: _safely(push.decision_push, request_id, event))
    if event in EXTERNAL_EVENTS:
        _enqueue(webhook_deliver_task, request_id, event)
        _enqueue(email_send_task, request_id, event)
