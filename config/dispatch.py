"""Enqueue Celery tasks after commit; in the embedded default run them in a background thread.

With CELERY_TASK_ALWAYS_EAGER a `.delay()` would run inside the web request, so a scan started
from the browser would block the page and its progress bar could never be seen moving. The
embedded default therefore runs eager tasks on a daemon thread (WARDEN_EAGER_IN_THREAD).
"""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.db import close_old_connections, transaction


def _run_in_thread(task: Any, args: tuple) -> None:
    def target() -> None:
        try:
            task.apply(args=args, throw=False)
        finally:
            close_old_connections()

    threading.Thread(target=target, name=f"warden-{task.name}", daemon=True).start()


def task_send(task: Any, *args: Any) -> None:
    """Send `task` now: to the broker, or (embedded default) onto a background thread."""
    if settings.CELERY_TASK_ALWAYS_EAGER and settings.EAGER_IN_THREAD:
        _run_in_thread(task, args)
    else:
        task.delay(*args)


def enqueue_on_commit(task: Any, *args: Any) -> None:
    transaction.on_commit(lambda: task_send(task, *args))
