"""The native path of a MySQL session (agent/fastpath/mysql_session.c): a repeated COM_QUERY
(``commands._repeat_now``'s check, the same C code) sent upstream and its answer, one text
result set (``results.Results._whole_result``'s C code), relayed and audited without
entering Python.  Everything else, and an answer the C code does not finish, runs the
Python path; the C code holds no decision of its own, only the session's caches read here.

``Bridge`` is the contract with the C object (its fields are read once, at construction):
bump ``agent.extension.ABI_VERSION`` with any change to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.audit import BATCH_SIZE
from agent.extension import ABI_VERSION, native_function
from agent.relay_core import socket_fd

if TYPE_CHECKING:
    from agent.mysql.session import MySqlSession

# None without the extension (or for another ABI): the pure-Python path.
MySqlPath: Any = native_function("MySqlPath")


class Bridge:
    """What the C object reads of one session: its relays, buffers, caches and sinks (each
    direction's transport ``write``, and ``*_fd``, ``*_pending``, ``*_closing`` as the
    PostgreSQL Bridge's: see agent.relay_core.socket_fd), the Python ``data_received`` for
    what it does not handle, and ``hand_back``."""

    abi_version = ABI_VERSION

    def __init__(self, session: MySqlSession) -> None:
        client_relay, upstream_relay = session.to_upstream, session.to_client
        assert client_relay is not None
        self.agent = session.agent
        self.session = session
        self.client_relay, self.upstream_relay = client_relay, upstream_relay
        self.commands, self.upstream_packets = session.commands, session.upstream_packets
        self.upstream_write, self.client_write = client_relay.sink.write, upstream_relay.sink.write
        # a plain TCP transport's socket (else -1), sent on in C while the transport is open
        # and holds nothing (sink.c sink_write, as the PostgreSQL Bridge's)
        self.upstream_fd = socket_fd(client_relay.sink)
        self.client_fd = socket_fd(upstream_relay.sink)
        for side, sink in (("upstream", client_relay.sink), ("client", upstream_relay.sink)):
            setattr(self, f"{side}_pending", sink.get_write_buffer_size)
            setattr(self, f"{side}_closing", sink.is_closing)
        self.repeats, self.masks = session._repeats, session._masks
        self.masking_key = session.agent.config.masking_key
        self.audit = session.audit
        shipper = session.agent.audit
        self.fragments = session._fragments
        self.audit_queue, self.audit_wakeup = shipper.queued, shipper.wake
        self.audit_journal = shipper.journal
        # its fd, mark and first seq: one array, updated in place (agent/journal.py)
        self.journal_state = None if shipper.journal is None else shipper.journal.state
        self.batch_size = BATCH_SIZE
        self.observe = session.agent.metrics.statements.observe
        self.client_python, self.upstream_python = (
            client_relay.data_received,
            upstream_relay.data_received,
        )
        self.client_failed, self.upstream_failed = client_relay.finish, upstream_relay.finish
        self.hand_back = session.native_hand_back
        self.decision = None


def install(session: MySqlSession) -> Any:
    """The session's C path as both relays' ``data_received`` (before they are attached),
    or None when the native path is off or not built."""
    if MySqlPath is None or not session.native_results:
        return None
    path = MySqlPath(Bridge(session))
    assert session.to_upstream is not None
    session.to_upstream.data_received = path.client_received  # type: ignore[method-assign]
    session.to_client.data_received = path.upstream_received  # type: ignore[method-assign]
    return path
