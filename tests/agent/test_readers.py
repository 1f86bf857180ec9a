"""The sockets the native path reads itself sit in one epoll set that is one reader of the
event loop (agent/fastpath/readers.c, ``relay_core.loop_readers``): one loop callback runs
every ready socket's reader, a removed reader is never called again (not even later in the
same wake-up), readiness is level-triggered like the loop's own readers, and the sessions
of a running agent are read through it.  On asyncio's loop and uvloop (production's)."""

from __future__ import annotations

import asyncio
import os
import select
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvloop

from agent import relay_core
from agent.extension import extension

LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


def test_the_extension_is_built() -> None:
    assert extension is not None, "build it: .venv/bin/python setup.py build_ext --inplace"


@pytest.fixture(params=sorted(LOOPS))
def run(request: Any) -> Iterator[Callable[[Any], Any]]:
    loop = LOOPS[request.param]()
    yield loop.run_until_complete
    loop.close()


@pytest.fixture
def pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    made = [socket.socketpair() for _ in range(3)]
    for ours, _ in made:
        ours.setblocking(False)
    yield made
    for ours, theirs in made:
        ours.close()
        theirs.close()


async def _turns(count: int) -> None:
    """Let the loop poll ``count`` times."""
    for _ in range(count):
        await asyncio.sleep(0.01)


def test_one_loop_callback_runs_every_ready_socket(run: Any, pairs: Any) -> None:
    async def scenario() -> tuple[list[bytes], dict[str, int]]:
        readers = relay_core.loop_readers()
        got: list[bytes] = []
        for ours, _ in pairs:
            readers.add_reader(ours.fileno(), lambda ours=ours: got.append(ours.recv(100)))
        before = readers.stats
        for index, (_, theirs) in enumerate(pairs):  # all ready before the loop polls
            theirs.send(b"chunk %d" % index)
        await _turns(3)
        after = readers.stats
        for ours, _ in pairs:
            assert readers.remove_reader(ours.fileno())
        return got, {key: after[key] - before[key] for key in ("calls", "ready")}

    got, counted = run(scenario())
    assert sorted(got) == [b"chunk 0", b"chunk 1", b"chunk 2"]
    assert counted == {"calls": 1, "ready": 3}


def test_a_reader_removed_in_the_same_wake_up_is_not_called(run: Any, pairs: Any) -> None:
    async def scenario() -> list[int]:
        readers = relay_core.loop_readers()
        called: list[int] = []

        def first_removes_the_others(index: int) -> None:
            called.append(index)
            pairs[index][0].recv(100)
            for other, _ in pairs:
                readers.remove_reader(other.fileno())

        for index, (ours, _) in enumerate(pairs):
            readers.add_reader(ours.fileno(), lambda index=index: first_removes_the_others(index))
        for _, theirs in pairs:
            theirs.send(b"x")
        await _turns(3)
        assert readers.stats["readers"] == 0
        return called

    assert len(run(scenario())) == 1


def test_a_socket_left_readable_is_reported_again_until_removed(run: Any, pairs: Any) -> None:
    async def scenario() -> tuple[int, int]:
        readers = relay_core.loop_readers()
        ours, theirs = pairs[0]
        calls = 0

        def reads_nothing() -> None:
            nonlocal calls
            calls += 1

        readers.add_reader(ours.fileno(), reads_nothing)
        theirs.send(b"left unread")
        await _turns(4)
        seen = calls
        assert readers.remove_reader(ours.fileno())
        assert not readers.remove_reader(ours.fileno())  # once only
        await _turns(4)
        return seen, calls

    seen, after = run(scenario())
    assert seen >= 2  # level-triggered, as the loop's own readers
    assert after == seen  # removed: never again


def test_a_replaced_reader_is_the_one_called(run: Any, pairs: Any) -> None:
    async def scenario() -> list[str]:
        readers = relay_core.loop_readers()
        ours, theirs = pairs[0]
        called: list[str] = []
        readers.add_reader(ours.fileno(), lambda: called.append("old"))
        readers.add_reader(ours.fileno(), lambda: (called.append("new"), ours.recv(100)))
        theirs.send(b"x")
        await _turns(3)
        readers.remove_reader(ours.fileno())
        return called

    assert run(scenario()) == ["new"]


def test_bad_arguments_are_refused() -> None:
    assert extension is not None
    readers = extension.Readers()
    with pytest.raises(ValueError, match="file descriptor and a callable"):
        readers.add_reader(-1, print)
    with pytest.raises(ValueError, match="file descriptor and a callable"):
        readers.add_reader(0, "not callable")
    with pytest.raises(TypeError, match="no arguments"):
        extension.Readers(1)
    with pytest.raises(OSError):  # not an open descriptor
        readers.add_reader(999_999, print)
    assert readers.remove_reader(0) is False
    readers.ready()  # nothing to run


def test_a_descriptor_closed_before_its_removal_leaves_the_set_quiet(pairs: Any) -> None:
    """The caller closes its descriptor first while the socket stays open elsewhere (as a
    transport's does): the set watches its own dup, so removing the reader still removes the
    registration, and the set is not readable for ever."""
    assert extension is not None
    readers = extension.Readers()
    ours, theirs = pairs[0]
    dup = os.dup(ours.fileno())
    readers.add_reader(dup, lambda: None)
    os.close(dup)  # the socket stays open through ``ours``
    assert readers.remove_reader(dup)
    theirs.send(b"unread")
    with select.epoll() as outer:
        outer.register(readers.fileno(), select.EPOLLIN)
        assert outer.poll(0.2) == []  # nothing left to report
    readers.ready()
    assert readers.stats["ready"] == 0


def test_each_loop_has_its_own_set(run: Any) -> None:
    async def scenario() -> Any:
        return relay_core.loop_readers()

    first = run(scenario())
    assert run(scenario()) is first  # the same loop: the same set
    other = asyncio.new_event_loop()
    try:
        assert other.run_until_complete(scenario()) is not first
    finally:
        other.close()
