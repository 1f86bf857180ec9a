"""Prometheus metrics, in a registry per agent so several agents can share a process.

Per-statement figures (decisions, latency) are counted in plain Python numbers and turned
into metric families only when Prometheus scrapes: prometheus_client's locked values cost
about 1.2 µs per statement on the proxy's hot path, these cost a fifth of that.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0)
DECISIONS = ("allow", "mask", "deny", "hold")


class StatementStats:
    """Statements by decision and a latency histogram, updated on the event loop only."""

    __slots__ = (
        "bucket_counts",
        "by_decision",
        "native_handbacks",
        "native_statements",
        "seconds_total",
    )

    def __init__(self) -> None:
        self.by_decision: dict[str, int] = dict.fromkeys(DECISIONS, 0)
        # One slot per bucket bound plus one for +Inf (non-cumulative; summed on scrape).
        self.bucket_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.seconds_total = 0.0
        # Statements finished by the native data path (agent/postgres/fastpath/, which also
        # updates the fields above), and round trips it handed back to Python midway.
        self.native_statements = 0
        self.native_handbacks = 0

    def observe(self, decision: str, seconds: float) -> None:
        by_decision = self.by_decision
        by_decision[decision] = by_decision.get(decision, 0) + 1
        self.bucket_counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.seconds_total += seconds


class _StatementCollector(Collector):
    def __init__(self, stats: StatementStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self.stats
        statements = CounterMetricFamily(
            "warden_agent_statements", "Statements by decision", labels=["decision"]
        )
        for decision, count in sorted(stats.by_decision.items()):
            statements.add_metric([decision], count)
        yield statements
        cumulative, buckets = 0, []
        counts = list(stats.bucket_counts)
        for bound, count in zip((*map(str, LATENCY_BUCKETS), "+Inf"), counts, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        yield HistogramMetricFamily(
            "warden_agent_statement_seconds",
            "Statement latency through the agent",
            buckets=buckets,
            sum_value=stats.seconds_total,
        )
        yield CounterMetricFamily(
            "warden_agent_native_statements",
            "Statements relayed by the native data path (all decisions cached)",
            value=stats.native_statements,
        )
        yield CounterMetricFamily(
            "warden_agent_native_handbacks",
            "Native round trips handed back to the Python path midway (error, new shape...)",
            value=stats.native_handbacks,
        )


class AgentMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.statements = StatementStats()
        self.registry.register(_StatementCollector(self.statements))
        self.connections_open = Gauge(
            "warden_agent_connections_open", "Client connections open now", registry=self.registry
        )
        self.connections_total = Counter(
            "warden_agent_connections",
            "Client connections accepted",
            ["outcome"],
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
        self.cancel_requests = Counter(
            "warden_agent_cancel_requests",
            "Cancel requests: received for this process, or forwarded to the worker whose key "
            "it is",
            ["outcome"],
            registry=self.registry,
        )
        self.audit_spooled = Gauge(
            "warden_agent_audit_spooled_events",
            "Audit events waiting in the spool",
            registry=self.registry,
        )

    def bundle_installed(self, version: str, loaded_at: float) -> None:
        self.bundle_info.clear()
        self.bundle_info.labels(version).set(1)
        self.bundle_loaded_timestamp.set(loaded_at)
