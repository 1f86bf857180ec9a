"""Two topologies running at once (two engineers, or CI beside them) each get a Redis
database of their own: their Celery workers never take each other's tasks."""

from __future__ import annotations

import redis

from tests.redis_claim import REDIS_CLAIM_KEY, redis_database_claim


def test_two_topologies_never_share_a_redis_database() -> None:
    with redis_database_claim() as first, redis_database_claim() as second:
        assert first != second
        assert redis.Redis.from_url(first).exists(REDIS_CLAIM_KEY)
        for url in (first, second):
            redis.Redis.from_url(url).set("leftover-of-a-killed-run", "1")
    # Released: the next run may take the database again, and finds it empty but for its claim.
    with redis_database_claim() as again:
        keys = redis.Redis.from_url(again).keys()
        assert keys == [REDIS_CLAIM_KEY.encode()]
