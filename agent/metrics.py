"""Prometheus metrics, in a registry per agent so several agents can share a process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class AgentMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.connections_open = Gauge(
            "warden_agent_connections_open", "Client connections open now", registry=self.registry
        )
        self.connections_total = Counter(
            "warden_agent_connections",
            "Client connections accepted",
            ["outcome"],
            registry=self.registry,
        )
        self.statements = Counter(
            "warden_agent_statements",
            "Statements by decision",
            ["decision"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "warden_agent_statement_seconds",
            "Statement latency through the agent",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5),
            registry=self.registry,
        )
        self.bundle_info = Gauge(
            "warden_agent_bundle_info",
            "Installed bundle version",
            ["version"],
            registry=self.registry,
        )
        self.bundle_loaded_timestamp = Gauge(
            "warden_agent_bundle_loaded_timestamp_seconds",
            "When the bundle was installed",
            registry=self.registry,
        )
        self.bundle_last_poll_timestamp = Gauge(
            "warden_agent_bundle_last_successful_poll_timestamp_seconds",
            "Last successful bundle poll (age = now - this)",
            registry=self.registry,
        )
        self.audit_spooled = Gauge(
            "warden_agent_audit_spooled_events",
            "Audit events waiting in the spool",
            registry=self.registry,
        )
        self._allow = self.statements.labels("allow")
        self.decision_counters = {
            d: self.statements.labels(d) for d in ("allow", "mask", "deny", "hold")
        }

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        start_http_server(port, addr=addr, registry=self.registry)

    def bundle_installed(self, version: str, loaded_at: float) -> None:
        self.bundle_info.clear()
        self.bundle_info.labels(version).set(1)
        self.bundle_loaded_timestamp.set(loaded_at)
