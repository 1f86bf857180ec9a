"""A Redis database of one's own for tests that run real Celery workers or channel layers on
the machine's Redis (the production settings test, the topology): two runs at once, two
engineers or CI beside them, never share one."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import redis

REDIS_DATABASES = range(8, 16)
# The key's name predates other users than the topology; kept so that runs of older
# checkouts and of this one still see each other's claims.
REDIS_CLAIM_KEY = "warden-tests:topology-claim"
REDIS_CLAIM_SECONDS = 2 * 3600


@contextmanager
def redis_database_claim() -> Iterator[str]:
    """A Redis database (indexes 8-15) the caller has to itself while it runs; its URL.

    Celery's queues, its broadcast channels (prefixed with the database number) and the
    channel layer's groups all live in that database: two runs sharing one would consume
    each other's tasks (a scan of one run executed against the other's database), so a
    database is claimed with SET NX (released at the end; it expires should a run be
    killed), not picked from the pid, and emptied of what a killed run left.  Other tests
    use database 0 under prefixes of their own (tests/live.py).
    """
    owner = secrets.token_hex(8)
    for index in REDIS_DATABASES:
        client = redis.Redis(host="127.0.0.1", port=6379, db=index)
        try:
            claimed = client.set(REDIS_CLAIM_KEY, owner, nx=True, ex=REDIS_CLAIM_SECONDS)
        except redis.ConnectionError as exc:
            raise AssertionError(f"Redis must run on 127.0.0.1:6379: {exc}") from exc
        if not claimed:
            continue
        try:
            for key in client.scan_iter(count=1000):  # what a killed run left behind
                if key != REDIS_CLAIM_KEY.encode():
                    client.delete(key)
            yield f"redis://127.0.0.1:6379/{index}"
        finally:
            if client.get(REDIS_CLAIM_KEY) == owner.encode():
                client.delete(REDIS_CLAIM_KEY)
        return
    raise AssertionError(
        f"every Redis database {REDIS_DATABASES.start}-{REDIS_DATABASES.stop - 1} is claimed "
        f"by another test run ({REDIS_CLAIM_KEY})"
    )
