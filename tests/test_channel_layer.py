"""An idle consumer outlives channels-redis's blocking pop against the real Redis.

The race: channels-redis pops with a server-side timeout (5 s stock) under a client-side
socket read bound (redis-py 8: 5 s). The tests tighten the read bound to 3 s so the stock
layer loses every time (the control), then show Warden's layer, whose pop is shorter than
the bound, waits idle past several pops and still delivers the next message. (Warden also
raises the bound to 30 s, for event loops that are busy for seconds.)
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import redis
from channels_redis.core import RedisChannelLayer as StockRedisChannelLayer

from config.channel_layer import BLOCKING_POP_SECONDS, RedisChannelLayer, redis_channel_layer
from tests.live import REDIS_URL

READ_BOUND_SECONDS = 3.0
IDLE_SECONDS = 4.5


def _host() -> dict[str, object]:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        raise AssertionError(f"Redis must be running at {REDIS_URL} for this test: {exc}") from exc
    return {"address": REDIS_URL, "socket_timeout": READ_BOUND_SECONDS}


async def _idle_then_send(layer: StockRedisChannelLayer) -> tuple[dict[str, object], float]:
    channel = await layer.new_channel()
    started = time.monotonic()

    async def send_late() -> None:
        await asyncio.sleep(IDLE_SECONDS)
        await layer.send(channel, {"type": "row.added", "id": 7})

    sender = asyncio.ensure_future(send_late())
    try:
        message = await layer.receive(channel)
    finally:
        sender.cancel()
        await layer.flush()
    return message, time.monotonic() - started


def test_the_stock_layer_loses_an_idle_pop_to_the_read_bound() -> None:
    layer = StockRedisChannelLayer(hosts=[_host()], prefix=f"t-{uuid.uuid4().hex[:8]}")
    with pytest.raises(redis.exceptions.TimeoutError):
        asyncio.run(_idle_then_send(layer))


def test_an_idle_consumer_outlives_the_pop_and_gets_the_next_message() -> None:
    assert BLOCKING_POP_SECONDS < READ_BOUND_SECONDS
    layer = RedisChannelLayer(hosts=[_host()], prefix=f"t-{uuid.uuid4().hex[:8]}")
    message, waited = asyncio.run(_idle_then_send(layer))
    assert message == {"type": "row.added", "id": 7}
    assert waited >= IDLE_SECONDS  # idle past two pops and the read bound


def test_the_settings_use_this_layer() -> None:
    entry = redis_channel_layer("redis://cache.internal:6379/0", prefix="p")
    assert entry == {
        "BACKEND": "config.channel_layer.RedisChannelLayer",
        "CONFIG": {
            "hosts": [{"address": "redis://cache.internal:6379/0", "socket_timeout": 30.0}],
            "prefix": "p",
        },
    }
