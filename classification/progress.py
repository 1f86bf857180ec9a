"""Push a scan run's progress to the browsers watching it (group `scan.<id>`)."""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)


def scan_group_name(scan_run_id: int) -> str:
    return f"scan.{scan_run_id}"


def scan_progress_broadcast(*, scan_run_id: int) -> None:
    """Best effort: a channel layer outage must never fail the scan itself."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(
            scan_group_name(scan_run_id), {"type": "scan.progress", "scan_run_id": scan_run_id}
        )
    except Exception:
        logger.warning("could not broadcast progress of scan %s", scan_run_id, exc_info=True)
