"""Reads of the agent registry: who serves a datasource, and whether each agent is healthy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from governance.models import AgentInstance, DataSource


@dataclass(frozen=True)
class AgentStatus:
    agent: AgentInstance
    is_online: bool
    # Seen so long ago that the row is probably a leftover (a moved or removed agent).
    is_stale: bool
    # None when the current bundle is unknown (not compiled for this listing).
    runs_current_bundle: bool | None


def _status(agent: AgentInstance, now: datetime, current_version: str | None) -> AgentStatus:
    silent = now - agent.last_seen_at
    return AgentStatus(
        agent=agent,
        is_online=silent <= timedelta(seconds=settings.WARDEN_AGENT_OFFLINE_SECONDS),
        is_stale=silent > timedelta(seconds=settings.WARDEN_AGENT_STALE_SECONDS),
        runs_current_bundle=None
        if current_version is None
        else agent.bundle_version == current_version,
    )


def _current_bundle_version(datasource: DataSource) -> str:
    from governance.services.bundles import policy_bundle_served

    return str(policy_bundle_served(datasource=datasource)["bundle"]["version"])


def agents_for_datasource(
    datasource: DataSource, *, with_bundle: bool = False
) -> list[AgentStatus]:
    """The datasource's agents, online ones first, most recently seen first."""
    now = timezone.now()
    version = _current_bundle_version(datasource) if with_bundle else None
    agents = AgentInstance.objects.filter(datasource=datasource).order_by("-last_seen_at")
    statuses = [_status(agent, now, version) for agent in agents]
    return sorted(statuses, key=lambda status: not status.is_online)


def live_agent_for(datasource: DataSource) -> AgentInstance | None:
    """The most recently seen online agent of the datasource (where to send statements)."""
    statuses = agents_for_datasource(datasource)
    return statuses[0].agent if statuses and statuses[0].is_online else None


def agent_statuses() -> list[AgentStatus]:
    """Every registered agent with its health, for the Agents page (one bundle per source)."""
    now = timezone.now()
    agents = list(AgentInstance.objects.select_related("datasource").order_by("datasource__name"))
    versions: dict[int, str] = {}
    for agent in agents:
        if agent.datasource_id not in versions:
            versions[agent.datasource_id] = _current_bundle_version(agent.datasource)
    return [_status(agent, now, versions[agent.datasource_id]) for agent in agents]


def agents_not_trusting(key_id: str) -> list[AgentInstance]:
    """Online agents whose last heartbeat did not list ``key_id`` among the signing keys they
    accept (agents older than key rotation list none): promoting that key would leave them
    refusing every new bundle."""
    since = timezone.now() - timedelta(seconds=settings.WARDEN_AGENT_OFFLINE_SECONDS)
    online = AgentInstance.objects.filter(last_seen_at__gte=since).select_related("datasource")
    return [
        agent
        for agent in online.order_by("datasource__name", "address")
        if key_id not in agent.trusted_key_ids
    ]
