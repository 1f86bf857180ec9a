"""A TCP relay that stands in for a hung database server: the connections it is told to
hold are accepted and never answered, as a hung server or a stalled network path would
leave them; every other connection is relayed to the real server."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from typing import Any


class HangingRelay:
    """A TCP relay to a database server that accepts the connections it is told to hold
    and never answers them; every other connection is relayed to the server both ways."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.hold = 0  # how many of the next connections to leave unanswered
        self.held: list[socket.socket] = []
        self.relayed = 0
        self._sockets: list[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            if self.hold:
                self.hold -= 1
                self.held.append(client)
                continue
            server = socket.create_connection(self.target)
            self._sockets += (client, server)
            self.relayed += 1
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()
        for sock in self.held + self._sockets:
            sock.close()


# Each round: one more login waits on its upstream (they pile up), then a login of another
# user and one of the hung user's own token each reach the control plane and run a statement.
ROUNDS = [("alice", "bob"), ("carol", "dave"), ("root", "bot")]
PROMPTLY = 10.0  # seconds; a login here takes milliseconds, a held one its login deadline


def assert_logins_beside_hung_ones(
    relay: HangingRelay,
    control_plane: Any,
    hang: Callable[[str], None],
    log_in: Callable[[str], None],
    forget_logins: Callable[[], None],
) -> None:
    """Run ``ROUNDS``: ``hang(user)`` (in a thread) is held by the relay, and meanwhile
    ``log_in(user)`` of others and of the hung user's own token (its cached answer
    forgotten, as another worker would not have it) reach the control plane and finish
    within ``PROMPTLY``; the held logins are still waiting at the end."""
    relayed = relay.relayed
    hung: list[threading.Thread] = []
    for hung_user, other in ROUNDS:
        relay.hold += 1
        hung.append(threading.Thread(target=hang, args=(hung_user,), daemon=True))
        hung[-1].start()
        deadline = time.monotonic() + PROMPTLY
        while len(relay.held) < len(hung):
            assert time.monotonic() < deadline, f"{hung_user}'s login never reached the relay"
            time.sleep(0.01)
        forget_logins()  # the hung login's answer is cached by now: it is past it
        for user in (other, hung_user):
            checked = control_plane.auth_calls
            started = time.monotonic()
            log_in(user)
            took = time.monotonic() - started
            assert took < PROMPTLY, f"{user}'s login beside {hung_user}'s took {took:.1f} s"
            assert control_plane.auth_calls == checked + 1, user  # not a cached answer
            forget_logins()
    assert all(thread.is_alive() for thread in hung)  # still waiting on their upstream
    assert relay.relayed == relayed + 2 * len(ROUNDS)
