"""Warden's MCP server: governed queries, catalog and approvals for AI agents.

One implementation (``warden_mcp.server``) behind two transports: streamable HTTP mounted
on the control plane at ``/mcp/`` (``warden_mcp.http``), and stdio for a client that
launches ``python -m warden_mcp --control-plane URL --token T``. Either way the tools are a
client of the control plane's API (with the caller's token) and of the datasource's agent
(logged in as the caller), never of a customer database, so guardrails, masking, holds
and audit are the agent's, exactly as for psql. No Django here: it runs anywhere.
"""
