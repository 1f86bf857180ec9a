"""Everything that changes access requests, reviews and grants.

Each service checks who may do it, writes its rows and its audit event in one transaction,
and schedules live pushes, webhooks and emails for after the commit. One module per
responsibility; callers import the services from here.
"""

from approvals.services.break_glass import break_glass_use
from approvals.services.common import RequestStateError
from approvals.services.expiry import (
    grants_expire_due,
    grants_warn_expiring,
    request_expire_if_due,
    requests_expire_due,
)
from approvals.services.grants import grant_extend_request, grant_revoke, grant_run_use
from approvals.services.requests import agent_request_submit, request_cancel, request_create
from approvals.services.reviews import request_approve, request_deny, review_policy_set

__all__ = [
    "RequestStateError",
    "agent_request_submit",
    "break_glass_use",
    "grant_extend_request",
    "grant_revoke",
    "grant_run_use",
    "grants_expire_due",
    "grants_warn_expiring",
    "request_approve",
    "request_cancel",
    "request_create",
    "request_deny",
    "request_expire_if_due",
    "requests_expire_due",
    "review_policy_set",
]
