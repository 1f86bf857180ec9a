"""Fixtures for agent tests: a real PostgreSQL database, a small real control-plane HTTP
server (signed bundles, token checks, audit intake) and agents running in threads.

Self-contained: works with or without pytest-django (run with ``-p no:django``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import psycopg  # noqa: E402
import pytest  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat  # noqa: E402
from scramp import ScramMechanism  # noqa: E402

from agent.audit import expand_batch  # noqa: E402
from agent.bundle import canonical_json, key_id_for  # noqa: E402
from agent.server import AgentConfig, create_agent  # noqa: E402
from agent.upstream import UpstreamConfig  # noqa: E402
from tests.agent.disks import mounted_small_disk  # noqa: E402
from tests.live import AgentSubprocess  # noqa: E402

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_BIN = Path("/usr/lib/postgresql/15/bin")
MASKING_KEY = b"test-masking-key"
SCRAM = ScramMechanism("SCRAM-SHA-256")
SCRAM_ITERATIONS = 4096

TOKENS = {
    "wdn_alice": ("alice", "user", ["analyst"]),
    "wdn_bob": ("bob", "user", []),
    "wdn_root": ("root", "user", ["admins"]),
    "wdn_carol": ("carol", "user", []),
    "wdn_dave": ("dave", "user", ["analyst"]),
    "wdn_bot": ("bot", "service_account", ["ai"]),
}

SCHEMA_SQL = """
CREATE TABLE customers (
    id serial PRIMARY KEY, name text NOT NULL, email text, phone text, card text,
    birth_date date, ssn text, "Secret Note" text, score int
);
CREATE TABLE orders (id serial PRIMARY KEY, customer_id int REFERENCES customers(id),
                     amount numeric(10,2), note text);
CREATE SCHEMA archive;
CREATE TABLE archive.customers (id int, email text);
CREATE VIEW customer_contacts AS SELECT id, name, email FROM customers;
CREATE VIEW contact_domains AS SELECT id, split_part(email, '@', 2) AS domain FROM customers;
CREATE VIEW public_names AS SELECT id, name FROM customers;
CREATE TABLE scratch (id int, v text);
"""


def _fake_rows(count: int) -> list[tuple[Any, ...]]:
    first = ["Ada", "Grace", "Linus", "Edsger", "Barbara", "Ken", "Margaret", "Alan"]
    last = ["Lovelace", "Hopper", "Torvalds", "Dijkstra", "Liskov", "Thompson", "Hamilton"]
    rows = []
    for i in range(1, count + 1):
        name = f"{first[i % len(first)]} {last[i % len(last)]}"
        email = f"{name.split()[0].lower()}.{i}@example.com"
        phone = f"+1 (555) 01{i % 100:02d}-{1000 + i:04d}"
        card = f"4111-1111-1111-{1000 + i:04d}"
        rows.append(
            (
                name,
                email,
                phone,
                card,
                f"19{60 + i % 40}-0{1 + i % 9}-1{i % 10}",
                f"{100 + i:03d}-45-{6000 + i:04d}",
                f"note {i}",
                i * 10,
            )
        )
    return rows


def _fail(message: str) -> None:
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    name = f"warden_agent_test_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(
            host=PG_HOST, port=PG_PORT, user="postgres", dbname="postgres", autocommit=True
        )
    except psycopg.OperationalError as exc:
        _fail(f"PostgreSQL is required on {PG_HOST}:{PG_PORT} (trust auth, user postgres): {exc}")
    admin.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user="postgres", dbname=name, autocommit=True
    ) as conn:
        conn.execute(SCHEMA_SQL)
        with conn.cursor() as cur:
            cur.executemany(
                'INSERT INTO customers (name, email, phone, card, birth_date, ssn, "Secret Note",'
                " score) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                _fake_rows(50),
            )
            cur.execute(
                "INSERT INTO orders (customer_id, amount, note) SELECT id, id * 1.5, "
                "'order ' || id FROM customers"
            )
            cur.execute("INSERT INTO archive.customers SELECT id, email FROM customers")
    try:
        yield name
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def bundle_document(version: str = "v1") -> dict[str, Any]:
    everyone = {"everyone": True, "users": [], "groups": []}
    return {
        "format": 1,
        "version": version,
        "generated_at": "2026-11-24T08:00:00Z",
        "datasource": {
            "id": 1,
            "name": "shop",
            "engine": "postgresql",
            "default_sensitive_action": "mask",
            "default_mask_method": "redact",
        },
        "masking_key_id": "k1",
        "sensitivity_levels": ["public", "internal", "confidential", "restricted"],
        "columns": [
            {
                "schema": "public",
                "table": "customers",
                "column": "email",
                "tags": ["PII.Email"],
                "sensitivity": "confidential",
            },
            {
                "schema": "public",
                "table": "customers",
                "column": "phone",
                "tags": ["PII.Phone"],
                "sensitivity": "confidential",
            },
            {
                "schema": "public",
                "table": "customers",
                "column": "card",
                "tags": ["PCI.Card"],
                "sensitivity": "restricted",
            },
            {
                "schema": "public",
                "table": "customers",
                "column": "birth_date",
                "tags": ["PII.DOB"],
                "sensitivity": "confidential",
            },
            {
                "schema": "public",
                "table": "customers",
                "column": "ssn",
                "tags": ["PII.SSN"],
                "sensitivity": "restricted",
            },
            {
                "schema": "public",
                "table": "customers",
                "column": "Secret Note",
                "tags": ["Internal.Note"],
                "sensitivity": "confidential",
            },
            {
                "schema": "archive",
                "table": "customers",
                "column": "email",
                "tags": ["PII.Email"],
                "sensitivity": "confidential",
            },
        ],
        "rules": [
            {
                "id": 1,
                "name": "admins see everything",
                "priority": 1000,
                "subjects": {"everyone": False, "users": ["root"], "groups": []},
                "resource": {"kind": "datasource"},
                "action": "allow",
                "mask_method": None,
                "mask_param": None,
            },
            {
                "id": 2,
                "name": "nobody reads SSNs",
                "priority": 900,
                "subjects": everyone,
                "resource": {
                    "kind": "column",
                    "schema": "public",
                    "table": "customers",
                    "column": "ssn",
                },
                "action": "deny",
                "mask_method": None,
                "mask_param": None,
            },
            {
                "id": 3,
                "name": "analysts see email domains",
                "priority": 100,
                "subjects": {"everyone": False, "users": [], "groups": ["analyst"]},
                "resource": {"kind": "tag", "tag": "PII.Email"},
                "action": "mask",
                "mask_method": "email",
                "mask_param": None,
            },
            {
                "id": 4,
                "name": "cards partially",
                "priority": 100,
                "subjects": everyone,
                "resource": {"kind": "tag", "tag": "PCI.Card"},
                "action": "mask",
                "mask_method": "partial",
                "mask_param": None,
            },
            {
                "id": 5,
                "name": "phones last 4",
                "priority": 100,
                "subjects": everyone,
                "resource": {"kind": "tag", "tag": "PII.Phone"},
                "action": "mask",
                "mask_method": "last_n",
                "mask_param": 4,
            },
            {
                "id": 6,
                "name": "birth year only",
                "priority": 100,
                "subjects": everyone,
                "resource": {"kind": "tag", "tag": "PII.DOB"},
                "action": "mask",
                "mask_method": "year",
                "mask_param": None,
            },
            {
                "id": 7,
                "name": "carol needs approval for emails",
                "priority": 100,
                "subjects": {"everyone": False, "users": ["carol"], "groups": []},
                "resource": {"kind": "tag", "tag": "PII.Email"},
                "action": "require_approval",
                "mask_method": None,
                "mask_param": None,
            },
            {
                "id": 8,
                "name": "bots get hashed emails",
                "priority": 100,
                "subjects": {"everyone": False, "users": [], "groups": ["ai"]},
                "resource": {"kind": "tag", "tag": "PII.Email"},
                "action": "mask",
                "mask_method": "hash",
                "mask_param": None,
            },
        ],
        "guardrails": [
            {
                "id": 1,
                "name": "no destructive statements",
                "kinds": [
                    "drop",
                    "truncate",
                    "copy_program",
                    "server_file_functions",
                    "do_block",
                    "delete_without_where",
                    "update_without_where",
                    "role",
                    "grant_revoke",
                    "mixed_multi_statement",
                ],
                "subjects": everyone,
                "action": "block",
            },
            {
                "id": 2,
                "name": "schema changes need approval",
                "kinds": ["alter"],
                "subjects": everyone,
                "action": "require_approval",
            },
        ],
        "grants": [],
    }


class ControlPlane:
    """A real HTTP server standing in for the Django control plane's agent API."""

    def __init__(self) -> None:
        self.private_key = Ed25519PrivateKey.generate()
        self.bundle: dict[str, Any] = bundle_document()
        self.tamper = False
        self.down = False
        # Follow-ups (POST agent/logins/abandoned) answered 503 while set: an outage that
        # starts after the login was recorded.
        self.follow_ups_down = False
        self.events: dict[str, dict[str, Any]] = {}
        self.audit_posts = 0
        self.duplicate_events = 0  # events sent again (an id already received)
        self.auth_calls = 0
        self.bundle_polls = 0
        self.revoked: set[str] = set()
        # Challenge-response logins the agent reported (POST agent/logins), in order.
        self.logins: list[dict[str, Any]] = []
        # Accepted logins the agent followed up as never becoming a session, in order;
        # the control plane's sequence of each accepted login's event, by it (as
        # agent/logins and agent/authenticate answer login_sequence).
        self.abandoned_logins: list[dict[str, Any]] = []
        self.accepted_logins: dict[int, dict[str, Any]] = {}
        # Follow-ups that named no accepted login, or one already followed up (404).
        self.refused_follow_ups: list[dict[str, Any]] = []
        # Access requests the agent filed for held statements, by id.
        self.access_requests: dict[int, dict[str, Any]] = {}
        self.filings = 0
        # Runs counted per grant id, as the control plane counts them for all agents.
        self.grant_runs: dict[int, int] = {}
        self.lock = threading.Lock()
        self.decided = threading.Condition(self.lock)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def key_id(self) -> str:
        return key_id_for(self.public_key_b64)

    @property
    def public_key_b64(self) -> str:
        raw = self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    def envelope(self) -> tuple[dict[str, Any], str]:
        document = copy.deepcopy(self.bundle)
        signature = self.private_key.sign(canonical_json(document))
        if self.tamper:
            document["rules"] = []  # content changed after signing
        etag = '"' + hashlib.sha256(canonical_json(document)).hexdigest()[:16] + '"'
        return {
            "bundle": document,
            "signature": base64.b64encode(signature).decode(),
            "key_id": self.key_id,
        }, etag

    def set_bundle(self, bundle: dict[str, Any]) -> None:
        with self.lock:
            self.bundle = bundle

    def review(self, request_id: int, state: str, *, level: str = "read") -> None:
        """Decide a filed request like a reviewer; an approval adds its grant to the bundle.
        Every call (also back to "pending") answers the long-polls waiting on it."""
        with self.decided:
            filed = self.access_requests[request_id]
            filed["state"] = state
            filed["reviews"] = filed.get("reviews", 0) + 1
            if state == "approved":
                filed["grant"] = {
                    "id": 500 + request_id,
                    "identity": filed["identity"],
                    "level": level,
                    # What the agent filed, else (as the control plane takes it from the
                    # statement) the customers table the held statements here read.
                    "scope": filed.get("scope")
                    or {"tables": ["public.customers"], "columns": [], "tags": []},
                    "expires_at": "2099-01-01T00:00:00+00:00",
                    "statement_fingerprint": filed["fingerprint"] or None,
                    "max_runs": None,
                }
                self.bundle = {**self.bundle, "grants": [*self.bundle["grants"], filed["grant"]]}
            self.decided.notify_all()

    def _use_grant_run(self, grant_id: int) -> tuple[int, dict[str, Any]]:
        with self.lock:
            grant = next((g for g in self.bundle["grants"] if g.get("id") == grant_id), None)
            if grant is None:
                return 404, {"detail": f"Grant {grant_id} does not exist for this datasource."}
            limit = grant.get("max_runs")
            used = self.grant_runs.get(grant_id, 0)
            if limit is None or used >= limit:
                return 409, {"detail": f"Grant {grant_id} has used all of its {limit} runs."}
            self.grant_runs[grant_id] = used + 1
            return 200, {"id": grant_id, "runs_used": used + 1, "max_runs": limit}

    def _request_state(self, request_id: int, wait: float) -> dict[str, Any] | None:
        with self.decided:
            filed = self.access_requests.get(request_id)
            if filed is not None and filed["state"] == "pending" and wait:
                reviews = filed.get("reviews", 0)
                self.decided.wait_for(
                    lambda: filed["state"] != "pending" or filed.get("reviews", 0) != reviews,
                    timeout=wait,
                )
            if filed is None:
                return None
            return {
                "id": request_id,
                "state": filed["state"],
                "review_url": f"{self.url}/approvals/{request_id}/",
                "grant": filed.get("grant"),
            }

    def _file_request(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """201 for a new request, 200 when an identical one is still pending."""
        status = 200
        with self.lock:
            self.filings += 1
            request_id = next(
                (
                    request_id
                    for request_id, filed in self.access_requests.items()
                    if filed["state"] == "pending"
                    and filed["identity"] == body["identity"]
                    and filed["fingerprint"] == body["fingerprint"]
                ),
                0,
            )
            if not request_id:
                request_id = len(self.access_requests) + 1
                self.access_requests[request_id] = {**body, "state": "pending"}
                status = 201
        state = self._request_state(request_id, 0)
        assert state is not None
        return status, state

    def verifiers(self, identity: str) -> dict[str, Any]:
        """As the control plane's GET agent/verifiers: one salt per identity, the live
        tokens' SCRAM and mysql_native_password verifiers (never a token)."""
        salt = hashlib.sha256(b"salt:" + identity.encode()).digest()[:16]
        tokens = []
        for token_id, (token, (owner, _kind, _groups)) in enumerate(TOKENS.items(), 1):
            if owner != identity or token in self.revoked:
                continue
            _salt, stored, server, _i = SCRAM.make_auth_info(token, SCRAM_ITERATIONS, salt)
            native = hashlib.sha1(hashlib.sha1(token.encode()).digest()).hexdigest()
            tokens.append(
                {
                    "id": token_id,
                    "scram_stored_key": base64.b64encode(stored).decode(),
                    "scram_server_key": base64.b64encode(server).decode(),
                    "mysql_native": native,
                }
            )
        found = next((found for found in TOKENS.values() if found[0] == identity), None)
        return {
            "identity": identity,
            "kind": found[1] if found else "user",
            "groups": found[2] if found else [],
            "scram": {"salt": base64.b64encode(salt).decode(), "iterations": SCRAM_ITERATIONS},
            "tokens": tokens,
        }

    def login_record(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """As POST agent/logins: the agent reports a challenge-response login."""
        self.auth_calls += 1
        self.logins.append(body)
        tokens = list(TOKENS.items())
        token_id = body.get("token_id")
        if token_id is None or not 1 <= token_id <= len(tokens):
            return 401, {"detail": "unknown or revoked token"}
        token, found = tokens[token_id - 1]
        if found[0] != body["identity"] or token in self.revoked:
            return 401, {"detail": "unknown or revoked token"}
        return 200, self._accepted(body, token_id, found)

    def password_check(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """As POST agent/authenticate: a token the client sent as a cleartext password."""
        self.auth_calls += 1
        found = TOKENS.get(body["token"])
        if found is None or found[0] != body["identity"] or body["token"] in self.revoked:
            return 401, {"detail": "unknown or revoked token"}
        token_id = list(TOKENS).index(body["token"]) + 1
        return 200, self._accepted({**body, "mechanism": "password"}, token_id, found)

    def _accepted(
        self, body: dict[str, Any], token_id: int, found: tuple[str, str, list[str]]
    ) -> dict[str, Any]:
        with self.lock:
            sequence = 1000 + len(self.accepted_logins)
            self.accepted_logins[sequence] = {**body, "token_id": token_id}
        return {
            "identity": found[0],
            "kind": found[1],
            "groups": found[2],
            "token_id": token_id,
            "login_sequence": sequence,
        }

    def follow_up(self, body: dict[str, Any]) -> int:
        """As POST agent/logins/abandoned: 204 for an accepted login named exactly (its
        sequence, token, identity, mechanism), once; else 404."""
        with self.lock:
            login = self.accepted_logins.get(body.get("login_sequence", 0))
            followed = {done["login_sequence"] for done in self.abandoned_logins}
            if (
                login is None
                or body["login_sequence"] in followed
                or any(login[field] != body[field] for field in ("identity", "token_id"))
                or login["mechanism"] != body["mechanism"]
            ):
                self.refused_follow_ups.append(body)
                return 404
            self.abandoned_logins.append(body)
            return 204

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        plane = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(
                self, status: int, body: Any = None, headers: dict[str, str] | None = None
            ) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _authorized(self) -> bool:
                if self.headers.get("Authorization") != "Bearer agent-token":
                    self._send(401, {"detail": "bad agent token"})
                    return False
                return True

            def do_GET(self) -> None:
                if plane.down:
                    self._send(503, {"detail": "down"})
                    return
                if not self._authorized():
                    return
                if self.path.startswith("/api/v1/agent/verifiers"):
                    query = parse_qs(self.path.partition("?")[2])
                    self._send(200, plane.verifiers(query["identity"][0]))
                elif self.path.startswith("/api/v1/agent/public-key"):
                    self._send(200, {"key_id": plane.key_id, "public_key": plane.public_key_b64})
                elif self.path.startswith("/api/v1/agent/access-requests/"):
                    path, _, query = self.path.partition("?")
                    wait = float(parse_qs(query).get("wait", ["0"])[0])
                    state = plane._request_state(int(path.rsplit("/", 1)[1]), min(wait, 60.0))
                    if state is None:
                        self._send(404, {"detail": "no such request"})
                    else:
                        self._send(200, state)
                elif self.path.startswith("/api/v1/agent/bundle"):
                    with plane.lock:
                        plane.bundle_polls += 1
                        envelope, etag = plane.envelope()
                    if self.headers.get("If-None-Match") == etag:
                        self._send(304)
                    else:
                        self._send(200, envelope, {"ETag": etag})
                else:
                    self._send(404, {"detail": "not found"})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                if plane.down:
                    self._send(503, {"detail": "down"})
                    return
                if not self._authorized():
                    return
                body = json.loads(raw) if raw else {}
                path = self.path.split("?", 1)[0]
                if path.startswith("/api/v1/agent/grants/") and path.endswith("/runs"):
                    self._send(*plane._use_grant_run(int(path.split("/")[-2])))
                elif self.path == "/api/v1/agent/authenticate":
                    self._send(*plane.password_check(body))
                elif self.path == "/api/v1/agent/logins":
                    self._send(*plane.login_record(body))
                elif self.path == "/api/v1/agent/logins/abandoned":
                    if plane.follow_ups_down:
                        self._send(503, {"detail": "down"})
                        return
                    follow_up_status = plane.follow_up(body)
                    refusal = {"detail": "no accepted login to follow up", "fields": {}}
                    self._send(follow_up_status, None if follow_up_status == 204 else refusal)
                elif self.path == "/api/v1/agent/access-requests":
                    if body["identity"] not in {found[0] for found in TOKENS.values()}:
                        self._send(400, {"detail": f"Unknown identity {body['identity']!r}."})
                    else:
                        self._send(*plane._file_request(body))
                elif self.path == "/api/v1/agent/audit":
                    accepted = duplicates = 0
                    with plane.lock:
                        plane.audit_posts += 1
                        events = expand_batch(body) if "format" in body else body["events"]
                        for event in events:
                            if event["id"] in plane.events:
                                duplicates += 1
                                plane.duplicate_events += 1
                            else:
                                plane.events[event["id"]] = event
                                accepted += 1
                    self._send(200, {"accepted": accepted, "duplicates": duplicates})
                else:
                    self._send(404, {"detail": "not found"})

        return Handler


@pytest.fixture
def control_plane() -> Iterator[ControlPlane]:
    plane = ControlPlane()
    yield plane
    plane.close()


class RunningAgent:
    """An Agent on its own event loop in a background thread (clients stay synchronous)."""

    def __init__(
        self, config: AgentConfig, new_loop: Callable[[], Any] = asyncio.new_event_loop
    ) -> None:
        self.config = config
        self.loop = new_loop()
        self.agent = create_agent(config)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.call(self.agent.start())

    def call(self, coro: Any, timeout: float = 20) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def port(self) -> int:
        return self.config.listen_port

    def dsn(self, user: str = "alice", token: str | None = None, **extra: Any) -> str:
        password = token if token is not None else f"wdn_{user}"
        dsn = (
            f"host=127.0.0.1 port={self.port} user={user} password={password} "
            f"dbname=shop sslmode=disable connect_timeout=5"
        )
        return dsn + "".join(f" {k}={v}" for k, v in extra.items())

    def connect(self, user: str = "alice", **kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn(user), autocommit=True, **kwargs)

    def flush_audit(self) -> None:
        self.call(self.agent.audit.flush())

    def stop(self) -> None:
        try:
            self.call(self.agent.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()


@pytest.fixture
def agent_factory(pg_database: str, control_plane: ControlPlane, tmp_path: Path) -> Iterator[Any]:
    started: list[RunningAgent] = []

    def start(
        state_dir: Path | None = None, upstream: UpstreamConfig | None = None, **overrides: Any
    ) -> RunningAgent:
        # WARDEN_AGENT_NATIVE=off (the agent's own switch) runs the suite on the pure-Python
        # path, as tests/agent_mysql does; test_native*.py assert the native path itself.
        overrides.setdefault("native", os.environ.get("WARDEN_AGENT_NATIVE", "on") != "off")
        new_loop = overrides.pop("new_loop", asyncio.new_event_loop)  # uvloop.new_event_loop
        overrides.setdefault("masking_key", MASKING_KEY)
        overrides.setdefault("audit_flush_interval", 0.2)
        config = AgentConfig(
            control_plane=overrides.pop("control_plane", control_plane.url),
            token="agent-token",
            datasource="shop",
            listen_port=0,
            upstream=upstream or UpstreamConfig(PG_HOST, PG_PORT, "postgres", "", pg_database),
            state_dir=state_dir or tmp_path / "state",
            poll_interval=0.2,
            **overrides,
        )
        running = RunningAgent(config, new_loop)
        started.append(running)
        return running

    yield start
    for running in started:
        if running.loop.is_running():
            running.stop()


@pytest.fixture
def agent(agent_factory: Any) -> Any:
    return agent_factory()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def private_cluster(
    hba: str,
    settings: str = "",
    files: dict[str, bytes] | None = None,
    setup: tuple[str, ...] = (),
) -> Iterator[dict[str, Any]]:
    """A private PostgreSQL 15 cluster (superuser postgres / superpw) with this pg_hba.conf
    (which must trust local connections), extra postgresql.conf lines, files in its data
    directory, and ``setup`` statements run in one session as postgres."""
    if not (PG_BIN / "initdb").exists():
        _fail(f"PostgreSQL server binaries are required at {PG_BIN}")
    root = Path(tempfile.mkdtemp(prefix="warden-agent-pg-"))
    data = root / "data"
    port = free_port()
    env = {**os.environ, "LC_ALL": "C"}
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(root, "postgres", "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    pwfile = root / "pw"
    pwfile.write_text("superpw\n")
    if run_as:
        shutil.chown(pwfile, "postgres", "postgres")
    initdb = [str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--pwfile", str(pwfile)]
    subprocess.run(
        [*run_as, *initdb, "-A", "scram-sha-256", "-E", "UTF8"],
        check=True,
        capture_output=True,
        env=env,
    )
    (data / "pg_hba.conf").write_text(hba)
    with open(data / "postgresql.conf", "a") as conf:
        conf.write(settings)
    for name, content in (files or {}).items():
        (data / name).write_bytes(content)
        (data / name).chmod(0o600)
        if run_as:
            shutil.chown(data / name, "postgres", "postgres")
    pg_ctl = [*run_as, str(PG_BIN / "pg_ctl"), "-D", str(data)]
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    subprocess.run(
        [*pg_ctl, "-w", "-l", str(root / "log"), "-o", options, "start"],
        check=False,
        capture_output=True,
        env=env,
    )
    try:
        try:
            admin = psycopg.connect(
                host=str(root), port=port, user="postgres", dbname="postgres", autocommit=True
            )
        except psycopg.OperationalError:
            log = (root / "log").read_text() if (root / "log").exists() else ""
            _fail(f"the private PostgreSQL cluster did not start: {log[-2000:]}")
        with admin:
            for statement in setup:
                admin.execute(statement)
        yield {"port": port, "root": root, "socket_dir": str(root)}
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True, env=env)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def auth_cluster() -> Iterator[dict[str, Any]]:
    """A private PostgreSQL 15 cluster whose pg_hba demands scram-sha-256 (and md5)."""
    hba = (
        "local all all trust\n"
        "host all md5user 127.0.0.1/32 md5\n"
        "host all all 127.0.0.1/32 scram-sha-256\n"
    )
    setup = (
        "CREATE ROLE scramuser LOGIN PASSWORD 'scram-secret'",
        "SET password_encryption = 'md5'",
        "CREATE ROLE md5user LOGIN PASSWORD 'md5-secret'",
        "CREATE TABLE t (id int, email text)",
        "INSERT INTO t VALUES (1, 'x@example.com')",
        "GRANT SELECT ON t TO scramuser, md5user",
    )
    with private_cluster(hba, setup=setup) as cluster:
        yield cluster


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError("condition not met in time")


class AgentProcess(AgentSubprocess):
    """``python -m agent`` as a real subprocess (for clients that block the GIL, e.g.
    libpq's PQcancel, and to exercise the command line)."""

    def dsn(self, user: str = "alice") -> str:
        return (
            f"host=127.0.0.1 port={self.port} user={user} password=wdn_{user} dbname=shop "
            "sslmode=disable connect_timeout=5"
        )


@pytest.fixture
def agent_process_factory(
    pg_database: str, control_plane: ControlPlane, tmp_path: Path
) -> Iterator[Any]:
    started: list[AgentProcess] = []

    def start(*extra: str, state_dir: Path | None = None) -> AgentProcess:
        port = free_port()
        args = [
            "--control-plane",
            control_plane.url,
            "--token",
            "agent-token",
            "--listen",
            f"127.0.0.1:{port}",
            "--datasource",
            "shop",
            "--upstream-host",
            PG_HOST,
            "--upstream-port",
            str(PG_PORT),
            "--upstream-user",
            "postgres",
            "--upstream-database",
            pg_database,
            "--state-dir",
            str(state_dir or tmp_path / f"proc-state-{len(started)}"),
            "--poll-interval",
            "0.5",
            "--audit-flush-interval",
            "0.2",
            *extra,
        ]
        env = {
            **os.environ,
            "WARDEN_MASKING_KEY": MASKING_KEY.decode(),
            "PYTHONPATH": str(REPO_ROOT),
        }
        process = AgentProcess(args, env, port)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.process.poll() is None:
            process.stop()


def email_grant(grant_id: int, identity: str = "alice") -> dict[str, Any]:
    """A bundle grant that unmasks public.customers.email for ``identity`` until 2099."""
    return {
        "id": grant_id,
        "identity": identity,
        "level": "read_unmasked",
        "scope": {"tables": [], "columns": ["public.customers.email"], "tags": []},
        "expires_at": "2099-01-01T00:00:00Z",
        "statement_fingerprint": None,
        "max_runs": None,
    }


@pytest.fixture
def make_bundle() -> Any:
    return bundle_document


@pytest.fixture
def wait() -> Any:
    return wait_for


def probe(port: int, path: str) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) of a GET on an agent's metrics port (/healthz, /readyz)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def unused_port() -> int:
    """A free port P whose next few (P+1, P+2… : the workers' metrics ports) are free too."""
    return free_port_block(4)


def free_port_block(count: int) -> int:
    """The first of ``count`` consecutive free ports, below the kernel's ephemeral range: a
    port from bind(0) lies inside it, where any client connection made meanwhile (another
    test's, say) can take P+1 before the agent binds it."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    chooser = secrets.SystemRandom()
    for _ in range(500):
        start = chooser.randrange(10_000, low - count)
        if all(_bindable(port) for port in range(start, start + count)):
            return start
    raise AssertionError(f"no {count} consecutive free ports between 10000 and {low}")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture(params=[True, False], ids=["native", "python"])
def agent_on_both_paths(request: Any, agent_factory: Any) -> Any:
    """An agent with the native data path, and one with the pure-Python path only: suites
    that must hold on both ask for this as their ``agent``."""
    return agent_factory(native=request.param)


@pytest.fixture
def admin(pg_database: str) -> Iterator[psycopg.Connection[Any]]:
    """A direct autocommit connection to the test database as the upstream superuser."""
    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user="postgres", dbname=pg_database, autocommit=True
    ) as conn:
        yield conn


@pytest.fixture
def both(agent_on_both_paths: Any) -> Any:
    return agent_on_both_paths


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with mounted_small_disk(tmp_path) as mount:
        yield mount
