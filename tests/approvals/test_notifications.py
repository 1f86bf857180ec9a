"""Webhooks (to a real local HTTP server) and emails for new requests and decisions."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core import mail

from approvals import services

pytestmark = pytest.mark.django_db


class Receiver:
    """A webhook receiver on 127.0.0.1 that fails the first `failures` deliveries with 500."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.bodies: list[dict[str, Any]] = []
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.attempts += 1
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.attempts <= receiver.failures:
                    self.send_response(500)
                else:
                    receiver.bodies.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.close()


def test_a_new_request_posts_json_to_the_datasource_webhook_and_emails_reviewers(
    shop, admin, reviewer, file_request, receiver, django_capture_on_commit_callbacks
):
    services.review_policy_set(
        actor=admin, datasource=shop, webhook_url=receiver.url, notify_emails=["dpo@example.com"]
    )
    with django_capture_on_commit_callbacks(execute=True):
        access_request = file_request()
    [body] = receiver.bodies
    assert body["event"] == "access_request.created"
    assert body["request_id"] == access_request.pk
    assert body["datasource"] == "shop" and body["level"] == "read_unmasked"
    assert body["risk"]["tags"] == {"PII.Email": 1, "PII.PersonName": 1}
    [message] = mail.outbox
    assert set(message.to) == {"dpo@example.com", reviewer.email}
    assert f"#{access_request.pk}" in message.subject


def test_a_slack_compatible_webhook_gets_a_text_payload_on_the_decision(
    shop, admin, reviewer, requester, file_request, receiver, django_capture_on_commit_callbacks
):
    access_request = file_request()
    services.review_policy_set(
        actor=admin, datasource=shop, webhook_url=receiver.url, webhook_slack=True
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.request_approve(actor=reviewer, access_request=access_request)
    [body] = receiver.bodies
    assert list(body) == ["text"]
    assert f"#{access_request.pk} approved" in body["text"]
    assert requester.email in mail.outbox[-1].to


def test_a_failing_webhook_is_retried_with_backoff_until_it_succeeds(
    shop, admin, file_request, monkeypatch
):
    from approvals.tasks import webhook_deliver_task
    from config.celery import app

    # Eager retries chain through apply(), which re-raises when eager tasks propagate errors.
    monkeypatch.setitem(app.conf, "task_eager_propagates", False)

    flaky = Receiver(failures=2)
    try:
        services.review_policy_set(actor=admin, datasource=shop, webhook_url=flaky.url)
        access_request = file_request()
        # apply() runs the task the way a worker does, retries included (eagerly, no countdown).
        result = webhook_deliver_task.apply(args=[access_request.pk, "created"], throw=False)
    finally:
        flaky.close()
    assert result.successful() and result.result == 204
    assert flaky.attempts == 3
    assert len(flaky.bodies) == 1


def test_a_webhook_that_never_answers_never_blocks_the_request_flow(
    shop, admin, reviewer, file_request, django_capture_on_commit_callbacks
):
    dead = Receiver(failures=1000)
    try:
        services.review_policy_set(actor=admin, datasource=shop, webhook_url=dead.url)
        with django_capture_on_commit_callbacks(execute=True):
            access_request = file_request()
        with django_capture_on_commit_callbacks(execute=True):
            services.request_approve(actor=reviewer, access_request=access_request)
    finally:
        dead.close()
    access_request.refresh_from_db()
    assert access_request.state == "approved"
    assert dead.attempts >= 2  # tried on both events, failed, and the flow went on


def test_webhook_retry_policy_is_exponential_and_bounded() -> None:
    from approvals.tasks import webhook_deliver_task

    assert webhook_deliver_task.retry_backoff and webhook_deliver_task.max_retries == 6
    assert webhook_deliver_task.autoretry_for


def test_break_glass_emails_every_reviewer_and_auditor(
    shop, admin, reviewer, auditor, requester, django_capture_on_commit_callbacks
):
    services.review_policy_set(actor=admin, datasource=shop, break_glass_enabled=True)
    with django_capture_on_commit_callbacks(execute=True):
        services.break_glass_use(
            actor=requester,
            datasource=shop,
            scope={"tables": ["public.orders"]},
            level="read",
            reason="P1 outage",
        )
    [message] = mail.outbox
    assert {reviewer.email, auditor.email} <= set(message.to)
    assert "BREAK-GLASS" in message.subject


@pytest.fixture
def tasks_run() -> Iterator[list[tuple[str, tuple]]]:
    """The Celery tasks that run (eager in tests), by name and arguments."""
    from celery.signals import task_prerun

    ran: list[tuple[str, tuple]] = []

    def record(sender: Any = None, args: tuple = (), **kwargs: Any) -> None:
        ran.append((sender.name, tuple(args)))

    task_prerun.connect(record, weak=False)
    yield ran
    task_prerun.disconnect(record)


def test_a_decision_with_nowhere_to_send_queues_no_webhook_or_email_task(
    shop, reviewer, requester, file_request, tasks_run, django_capture_on_commit_callbacks
):
    requester.email = ""
    requester.save(update_fields=["email"])
    approved, denied = file_request(), file_request(level="read")
    tasks_run.clear()  # the new requests' own (the reviewers have addresses)
    with django_capture_on_commit_callbacks(execute=True):
        services.request_approve(actor=reviewer, access_request=approved)
    with django_capture_on_commit_callbacks(execute=True):
        services.request_deny(actor=reviewer, access_request=denied)
    assert tasks_run == []  # the tasks would only have found nothing to do


def test_a_decision_queues_the_webhook_and_the_email_the_policy_names(
    shop,
    admin,
    reviewer,
    requester,
    file_request,
    receiver,
    tasks_run,
    django_capture_on_commit_callbacks,
):
    requester.email = ""
    requester.save(update_fields=["email"])
    services.review_policy_set(
        actor=admin, datasource=shop, webhook_url=receiver.url, notify_emails=["dpo@example.com"]
    )
    access_request = file_request()
    tasks_run.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.request_deny(actor=reviewer, access_request=access_request)
    assert sorted(name for name, _args in tasks_run) == [
        "approvals.email_send",
        "approvals.webhook_deliver",
    ]
    assert receiver.bodies[-1]["event"] == "access_request.denied"
    assert mail.outbox[-1].to == ["dpo@example.com"]


def test_a_decision_emails_the_requester_without_a_webhook(
    shop, reviewer, requester, file_request, tasks_run, django_capture_on_commit_callbacks
):
    access_request = file_request()
    tasks_run.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.request_approve(actor=reviewer, access_request=access_request)
    assert tasks_run == [("approvals.email_send", (access_request.pk, "approved"))]
    assert mail.outbox[-1].to == [requester.email]
