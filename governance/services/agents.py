"""Agent registration and heartbeats: the only writes to AgentInstance.

A heartbeat is an upsert keyed by (datasource, address). Registration (the first
heartbeat) and restarts (a new ``started_at``) are audited; ordinary heartbeats are not,
they would drown the trail in one event per agent every few seconds.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from audit.services import event_record
from config.errors import InvalidInput, NotAllowed
from governance.models import AccessToken, AgentInstance, DataSource, Role, User

_UNSPECIFIED_HOSTS = {"", "0.0.0.0", "::", "[::]", "*"}


def agent_address_normalise(*, address: str, source_address: str) -> str:
    """host:port as a client reaches it: an agent listening on every interface (0.0.0.0)
    is reached at the address its heartbeat came from."""
    host, separator, port = address.strip().rpartition(":")
    if not separator or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInput(f"address must be host:port, not {address!r}", field="address")
    if host in _UNSPECIFIED_HOSTS:
        if not source_address:
            raise InvalidInput(
                "the agent listens on every interface and its address is unknown", field="address"
            )
        host = source_address
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    return f"{host}:{port}"


def agent_heartbeat_record(
    *,
    token: AccessToken,
    datasource: DataSource,
    address: str,
    version: str,
    bundle_version: str,
    started_at: datetime,
    open_connections: int,
    statements_per_second: float,
    bundle_rejection: str = "",
    masking_problem: str = "",
    trusted_key_ids: list[str] | None = None,
    source_address: str = "",
) -> AgentInstance:
    address = agent_address_normalise(address=address, source_address=source_address)
    fields = {
        "token": token,
        "version": version[:50],
        "bundle_version": bundle_version[:64],
        "bundle_rejection": bundle_rejection[:300],
        "masking_problem": masking_problem[:300],
        "trusted_key_ids": sorted(trusted_key_ids or []),
        "started_at": started_at,
        "last_seen_at": timezone.now(),
        "open_connections": max(0, open_connections),
        "statements_per_second": max(0.0, statements_per_second),
    }
    with transaction.atomic():
        previous = (
            AgentInstance.objects.select_for_update()
            .filter(datasource=datasource, address=address)
            .first()
        )
        agent, _ = AgentInstance.objects.update_or_create(
            datasource=datasource, address=address, defaults=fields
        )
        if previous is None or previous.started_at != started_at:
            event_record(
                actor=token.user,
                action="agent.registered" if previous is None else "agent.restarted",
                target=agent,
                datasource=datasource,
                details={"address": address, "version": agent.version},
                source_address=source_address,
            )
    return agent


def agent_forget(*, actor: User, agent: AgentInstance) -> None:
    """Remove an agent's row (a stale leftover); a live agent registers again on its next
    heartbeat."""
    if not actor.has_role(Role.ADMIN):
        raise NotAllowed("Only admins remove agents.")
    with transaction.atomic():
        event_record(
            actor=actor,
            action="agent.forgotten",
            target=agent,
            datasource=agent.datasource,
            details={"address": agent.address},
        )
        agent.delete()
