"""Scan progress over websockets: the consumer only moves messages."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string

from classification.progress import scan_group_name
from classification.selectors import scan_live
from governance.permissions import CATALOG_READERS, user_has_any_role


def _render_progress(scan_run_id: int) -> str:
    return render_to_string("classification/_scan_progress.html", scan_live(scan_run_id))


class ScanProgressConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        allowed = await database_sync_to_async(user_has_any_role)(user, CATALOG_READERS)
        if not allowed:
            await self.close(code=4403)
            return
        self.scan_run_id = int(self.scope["url_route"]["kwargs"]["pk"])
        self.group = scan_group_name(self.scan_run_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.scan_progress({"scan_run_id": self.scan_run_id})

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def scan_progress(self, event: dict[str, Any]) -> None:
        html = await database_sync_to_async(_render_progress)(event["scan_run_id"])
        await self.send(text_data=html)
