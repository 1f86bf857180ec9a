"""Prometheus metrics, in a registry per agent so several agents can share a process.

Per-statement figures (decisions, latency) are counted in plain Python numbers and turned
into metric families only when Prometheus scrapes: prometheus_client's locked values cost
about 1.2 µs per statement on the proxy's hot path, these cost a fifth of that.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0)
DECISIONS = ("allow", "mask", "deny", "hold")


# The native data path's counters (agent/fastpath/roundtrip.c writes them through
# the buffer protocol, so a statement costs it a few increments, no Python object): one slot
# per decision in DECISIONS order, one per latency bucket (+Inf last), then these two.
NATIVE_BUCKETS = len(DECISIONS)
NATIVE_STATEMENTS = NATIVE_BUCKETS + len(LATENCY_BUCKETS) + 1
NATIVE_HANDBACKS = NATIVE_STATEMENTS + 1
NATIVE_SLOTS = NATIVE_HANDBACKS + 1


class StatementStats:
    """Statements by decision and a latency histogram, updated on the event loop only: the
    Python path's in plain numbers, the native path's in ``native`` and ``native_seconds``
    (C doubles and 64-bit integers, read together with the Python ones)."""

    __slots__ = (
        "_bucket_counts",
        "_by_decision",
        "_seconds_total",
        "native",
        "native_seconds",
    )

    def __init__(self) -> None:
        self._by_decision: dict[str, int] = dict.fromkeys(DECISIONS, 0)
        # One slot per bucket bound plus one for +Inf (non-cumulative; summed on scrape).
        self._bucket_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self._seconds_total = 0.0
        self.native = array("q", bytes(8 * NATIVE_SLOTS))
        self.native_seconds = array("d", [0.0])

    def observe(self, decision: str, seconds: float) -> None:
        by_decision = self._by_decision
        by_decision[decision] = by_decision.get(decision, 0) + 1
        self._bucket_counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self._seconds_total += seconds

    @property
    def by_decision(self) -> dict[str, int]:
        merged = dict(self._by_decision)
        for slot, decision in enumerate(DECISIONS):
            merged[decision] += self.native[slot]
        return merged

    @property
    def bucket_counts(self) -> list[int]:
        native = self.native[NATIVE_BUCKETS:NATIVE_STATEMENTS]
        return [a + b for a, b in zip(self._bucket_counts, native, strict=True)]

    @property
    def seconds_total(self) -> float:
        return self._seconds_total + self.native_seconds[0]

    @property
    def native_statements(self) -> int:
        """Statements finished by the native data path (agent/fastpath/; they are
        in the figures above too)."""
        return self.native[NATIVE_STATEMENTS]

    @property
    def native_handbacks(self) -> int:
        """Native round trips handed back to the Python path midway."""
        return self.native[NATIVE_HANDBACKS]


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
        counts = stats.bucket_counts
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
