"""The Agents page: every registered agent's health (admins may forget stale ones)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from governance.agent_selectors import agent_statuses
from governance.models import AgentInstance, Role
from governance.permissions import AuthenticatedRequest, role_required
from governance.services.agents import agent_forget


@role_required(Role.ADMIN, Role.REVIEWER)
def agent_list(request: AuthenticatedRequest) -> HttpResponse:
    return render(
        request,
        "governance/agent_list.html",
        {"statuses": agent_statuses(), "can_manage": request.user.has_role(Role.ADMIN)},
    )


@role_required(Role.ADMIN)
@require_POST
def agent_forget_view(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    agent = get_object_or_404(AgentInstance, pk=pk)
    agent_forget(actor=request.user, agent=agent)
    messages.success(request, f"Agent {agent.address} removed.")
    return redirect("agent_list")
