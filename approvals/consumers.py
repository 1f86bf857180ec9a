"""The live approvals inbox: the consumer only joins groups and forwards messages."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from approvals.notifications import AUDITORS_GROUP, datasource_group, user_group
from approvals.selectors import reviewable_datasource_ids
from governance.mfa import mfa_session_refusal
from governance.models import Role


def _groups_for(user: Any) -> list[str]:
    """A person's own group, their datasources' reviewer groups, auditors' alerts."""
    groups = [user_group(user.pk)]
    groups += [datasource_group(pk) for pk in sorted(reviewable_datasource_ids(user))]
    if user.has_role(Role.AUDITOR):
        groups.append(AUDITORS_GROUP)
    return groups


class ApprovalsConsumer(AsyncWebsocketConsumer):
    groups_joined: list[str]

    async def connect(self) -> None:
        self.groups_joined = []
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        if await database_sync_to_async(mfa_session_refusal)(user, self.scope.get("session")):
            await self.close(code=4403)  # the pages send them to set up or prove MFA first
            return
        self.groups_joined = await database_sync_to_async(_groups_for)(user)
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def approvals_message(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])
