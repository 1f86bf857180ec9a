"""Shared fixtures: the named people of every permission test, and real-service checks."""

from __future__ import annotations

import pytest

# Django is imported lazily: the agent's tests run without Django (`-p no:django`).


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test's report carries what its agent subprocesses printed (their logs
    are the only account of why a client lost its connection)."""
    report = yield
    if report.failed:
        from tests.live import RUNNING_AGENTS

        for agent in list(RUNNING_AGENTS):
            if not agent.log.closed:
                report.sections.append((f"agent on port {agent.port}", agent.output()[-20000:]))
    return report


def _user(**fields):
    from tests.factories import UserFactory

    return UserFactory(**fields)


@pytest.fixture
def admin(db):
    return _user(username="ada_admin", roles=["admin"])


@pytest.fixture
def reviewer(db):
    return _user(username="rex_reviewer", roles=["reviewer"])


@pytest.fixture
def auditor(db):
    return _user(username="aud_auditor", roles=["auditor"])


@pytest.fixture
def requester(db):
    return _user(username="req_requester", roles=["requester"])


@pytest.fixture
def outsider(db):
    return _user(username="otto_outsider")


@pytest.fixture
def ai_agent(db):
    return _user(username="copilot_bot", is_service_account=True, roles=["requester"])


@pytest.fixture
def ai_agent_token(ai_agent) -> str:
    from governance.tokens import token_create

    _token, secret = token_create(actor=ai_agent, user=ai_agent, name="copilot")
    return secret


@pytest.fixture(autouse=True)
def _no_bundle_from_another_test():
    """Signed bundles are cached per process, keyed by datasource id and bundle generation;
    a rolled-back test leaves both where the next test may find them again."""
    import sys

    bundles = sys.modules.get("governance.services.bundles")
    if bundles is not None:
        bundles.bundle_cache_clear()
    selectors = sys.modules.get("governance.selectors")
    if selectors is not None:  # the dashboard's catalog figures, kept the same way
        selectors.catalog_summary_cache_clear()


def _set_audit_truncate_trigger(enabled: bool) -> None:
    from django.db import connection

    verb = "ENABLE" if enabled else "DISABLE"
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE audit_auditevent {verb} TRIGGER audit_event_no_truncate")


def _ensure_reference_data() -> None:
    """The taxonomy and role groups come from a data migration; a transactional test's flush
    empties them, so the tests after it get them back."""
    from django.contrib.auth.models import Group

    from governance.models import Role, Tag
    from governance.taxonomy import taxonomy_load

    if not Tag.objects.exists():
        taxonomy_load(Tag)
    for role in Role.values:
        Group.objects.get_or_create(name=role)


@pytest.fixture(autouse=True)
def _audit_trigger_on_except_during_flush(request):
    """TransactionTestCase flushes with TRUNCATE, which the audit trigger refuses by design.

    The trigger is switched off only for the flush that ends a transactional test; every test
    body (and production) runs with it on.
    """
    names = set(request.fixturenames)
    marker = request.node.get_closest_marker("django_db")
    marked_transactional = bool(
        marker and (marker.kwargs.get("transaction") or (marker.args and marker.args[0]))
    )
    transactional = marked_transactional or bool({"transactional_db", "live_server"} & names)
    if not (transactional or marker or "db" in names):
        yield
        return
    from django.db import connection

    if connection.vendor != "postgresql":
        yield
        return
    request.getfixturevalue("transactional_db" if transactional else "db")
    _set_audit_truncate_trigger(True)
    _ensure_reference_data()
    yield
    if transactional:
        _set_audit_truncate_trigger(False)
