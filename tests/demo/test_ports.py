"""The launcher's port choice: the default when free, any free port when it is taken."""

from __future__ import annotations

import socket

from warden_demo.launcher import port_choose


def _listening() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    return server


def test_a_free_default_port_is_kept():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    assert port_choose(free) == free


def test_a_taken_default_port_gives_way_to_a_free_one():
    with _listening() as taken:
        port = taken.getsockname()[1]
        chosen = port_choose(port)
        assert chosen != port
        with socket.socket() as again:  # and the chosen one is really free
            again.bind(("127.0.0.1", chosen))


def test_port_zero_asks_the_kernel():
    assert port_choose(0) > 0
