"""The Redis channel layer's settings, shared by the settings module and the tests."""

from __future__ import annotations

from typing import Any

# channels-redis waits for a message with a blocking pop of up to 5 s (brpop_timeout), and
# redis-py 8 bounds every socket read by 5 s unless told otherwise: an idle consumer's pop
# then races the read timeout, and on a loaded host the read loses, raising TimeoutError
# inside the consumer and dropping its websocket. Reads get a bound well past the pop.
SOCKET_TIMEOUT_SECONDS = 30.0


def redis_channel_layer(url: str, **config: Any) -> dict[str, Any]:
    """A ``CHANNEL_LAYERS`` entry for channels-redis at ``url`` (extra ``config``: prefix...)."""
    return {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [{"address": url, "socket_timeout": SOCKET_TIMEOUT_SECONDS}],
            **config,
        },
    }
