"""Enforcement agents as the control plane sees them: one row per agent listener.

An agent registers by its first heartbeat and refreshes the row every few seconds, so the
control plane knows where each datasource's agents listen (the MCP server routes callers'
statements there) and the Agents page shows their health.
"""

from __future__ import annotations

from django.db import models

from governance.models.catalog import AccessToken, DataSource


class AgentInstance(models.Model):
    datasource = models.ForeignKey(DataSource, on_delete=models.CASCADE, related_name="agents")
    # host:port clients (and the MCP server) connect to; unique per datasource.
    address = models.CharField(max_length=300)
    token = models.ForeignKey(
        AccessToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    version = models.CharField(max_length=50, blank=True)
    bundle_version = models.CharField(max_length=64, blank=True)
    # Why the agent refused the latest bundle offered (it keeps its last good one); "" if none.
    bundle_rejection = models.CharField(max_length=300, blank=True, default="")
    # Why the agent redacts the bundle's hash masks (no key, or not the one it names).
    masking_problem = models.CharField(max_length=300, blank=True, default="")
    # Ids of the signing keys the agent accepts bundles from (a rotation waits for them).
    trusted_key_ids = models.JSONField(default=list, blank=True)
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(db_index=True)
    open_connections = models.PositiveIntegerField(default=0)
    statements_per_second = models.FloatField(default=0.0)
    registered_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["datasource__name", "address"]
        constraints = [
            models.UniqueConstraint(fields=["datasource", "address"], name="agent_address_unique"),
            models.CheckConstraint(
                condition=models.Q(statements_per_second__gte=0), name="agent_rate_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"agent {self.address} ({self.datasource_id})"
