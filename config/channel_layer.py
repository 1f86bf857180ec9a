"""The Redis channel layer Warden runs on, shared by the settings module and the tests.

channels-redis waits for a consumer's next message with a blocking pop of
``brpop_timeout`` (5 s) and loops; redis-py 8 bounds every socket read by 5 s by default.
With both at 5 s an idle consumer's pop races the read bound, and on a busy host the read
loses: ``redis.exceptions.TimeoutError`` inside the consumer, its websocket dropped. The
pop here is shorter than the read bound, so the server always answers (nil) first, while a
dead Redis is still noticed within the bound.
"""

from __future__ import annotations

from typing import Any

from channels_redis.core import RedisChannelLayer as _RedisChannelLayer

BLOCKING_POP_SECONDS = 2
SOCKET_READ_SECONDS = 30.0


class RedisChannelLayer(_RedisChannelLayer):
    brpop_timeout = BLOCKING_POP_SECONDS


def redis_channel_layer(url: str, **config: Any) -> dict[str, Any]:
    """A ``CHANNEL_LAYERS`` entry for Redis at ``url`` (``config``: e.g. ``prefix``)."""
    return {
        "BACKEND": "config.channel_layer.RedisChannelLayer",
        "CONFIG": {"hosts": [{"address": url, "socket_timeout": SOCKET_READ_SECONDS}], **config},
    }
