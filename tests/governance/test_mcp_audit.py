"""MCP tool calls in the audit trail: channel mcp, SQL literals redacted, filterable."""

from __future__ import annotations

from rest_framework.test import APIClient

from audit.models import AuditEvent
from audit.services import event_record
from governance.services.mcp import mcp_call_record


def test_auditors_filter_the_trail_by_channel_and_sql_values_are_not_kept(
    auditor, ai_agent, admin, outsider
):
    mcp_call_record(
        actor=ai_agent,
        tool="run_query",
        arguments={
            "datasource": "shop",
            "sql": "SELECT * FROM customers WHERE ssn = '123-45-6789'",
        },
    )
    mcp_call_record(actor=ai_agent, tool="run_query", arguments={"sql": "SELEC 'secret'"})
    event_record(actor=admin, action="policy.created", details={"name": "channel mcp"})

    client = APIClient()
    client.force_authenticate(auditor)
    listed = client.get("/api/v1/audit/events/", {"channel": "mcp"}).json()
    events = listed.get("results", listed)
    assert [event["details"]["tool"] for event in events] == ["run_query", "run_query"]
    stored = " ".join(str(e.details) for e in AuditEvent.objects.filter(action="mcp.tool_called"))
    assert "123-45-6789" not in stored and "secret" not in stored
    assert "SELECT * FROM customers WHERE ssn = $1" in stored
    assert "<statement that does not parse, 14 characters>" in stored
    everything = client.get("/api/v1/audit/events/").json()
    assert len(everything.get("results", everything)) > len(events)  # the filter narrows

    client.force_authenticate(outsider)
    assert client.get("/api/v1/audit/events/", {"channel": "mcp"}).status_code == 403
