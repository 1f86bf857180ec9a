"""Parallel writers (threads, each with its own connection) still make one gap-free chain."""

from __future__ import annotations

import threading

from django.db import connection

from audit.models import AuditEvent
from audit.services import event_record, events_append
from audit.verification import chain_walk

WRITERS = 6
EVENTS_PER_WRITER = 15


def test_parallel_writers_keep_one_valid_gap_free_chain(transactional_db):
    start = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def writer(number: int) -> None:
        try:
            start.wait()
            for index in range(EVENTS_PER_WRITER):
                if index % 5 == 0:
                    events_append(
                        entries=[
                            {"actor": f"writer{number}", "actor_kind": "agent", "action": "batch"}
                            for _ in range(3)
                        ]
                    )
                else:
                    event_record(actor=f"writer{number}", action="test.write", details={"i": index})
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors, errors
    expected = WRITERS * (EVENTS_PER_WRITER + 3 * 2)
    sequences = list(AuditEvent.objects.values_list("sequence", flat=True))
    assert sequences == list(range(1, expected + 1))
    report = chain_walk()
    assert report.ok, report.summary()
    assert report.checked == expected
