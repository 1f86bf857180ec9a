"""The benchmarks' tiny control plane: a signed bundle, token checks and verifiers, and an
audit sink that counts events and stores nothing (it shares the benchmark's cores with the
agent).  Used by bench/proxy.py and the other agent benchmarks."""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from scramp import ScramMechanism

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from agent.bundle import key_id_for  # noqa: E402


def canonical(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


PG_GUARDRAIL_KINDS = [
    "drop",
    "truncate",
    "delete_without_where",
    "update_without_where",
    "copy_program",
    "server_file_functions",
    "do_block",
]


def bundle_document(
    *,
    engine: str,
    version: str,
    columns: list[dict[str, Any]],
    rules: list[dict[str, Any]],
    guardrails: list[dict[str, Any]],
) -> dict[str, Any]:
    """A signed-bundle document for the benchmarks' one datasource ``bench``."""
    return {
        "format": 1,
        "version": version,
        "generated_at": "2026-11-24T00:00:00Z",
        "datasource": {
            "id": 1,
            "name": "bench",
            "engine": engine,
            "default_sensitive_action": "mask",
            "default_mask_method": "redact",
        },
        "masking_key_id": "k1",
        "sensitivity_levels": ["public", "internal", "confidential", "restricted"],
        "columns": columns,
        "rules": rules,
        "guardrails": guardrails,
        "grants": [],
    }


def bench_bundle(
    *,
    engine: str = "postgresql",
    schema: str = "public",
    table: str = "pgbench_accounts",
    guardrail_kinds: list[str] = PG_GUARDRAIL_KINDS,
) -> dict[str, Any]:
    """``table.filler`` masked (``partial``) for everyone, destructive statements blocked."""
    everyone = {"everyone": True, "users": [], "groups": []}
    return bundle_document(
        engine=engine,
        version=f"bench-{engine}-1",
        columns=[
            {
                "schema": schema,
                "table": table,
                "column": "filler",
                "tags": ["PII.Note"],
                "sensitivity": "confidential",
            }
        ],
        rules=[
            {
                "id": 1,
                "name": "mask notes",
                "priority": 10,
                "subjects": everyone,
                "resource": {"kind": "tag", "tag": "PII.Note"},
                "action": "mask",
                "mask_method": "partial",
                "mask_param": 4,
            }
        ],
        guardrails=[
            {
                "id": 1,
                "name": "no destructive statements",
                "subjects": everyone,
                "kinds": guardrail_kinds,
                "action": "block",
            }
        ],
    )


BENCH_TOKEN = "wdn_bench"


def bench_verifiers(token: str) -> dict[str, Any]:
    """GET agent/verifiers' answer for every identity: the one bench token's verifiers."""
    salt, stored, server, iterations = ScramMechanism().make_auth_info(token, 4096)
    return {
        "kind": "user",
        "groups": [],
        "scram": {"salt": base64.b64encode(salt).decode(), "iterations": iterations},
        "tokens": [
            {
                "id": 1,
                "scram_stored_key": base64.b64encode(stored).decode(),
                "scram_server_key": base64.b64encode(server).decode(),
                "mysql_native": hashlib.sha1(hashlib.sha1(token.encode()).digest()).hexdigest(),
            }
        ],
    }


class TinyControlPlane:
    def __init__(self, document: dict[str, Any] | None = None) -> None:
        key = Ed25519PrivateKey.generate()
        document = document or bench_bundle()
        raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public_key = base64.b64encode(raw).decode()
        self.envelope = {
            "bundle": document,
            "key_id": key_id_for(self.public_key),  # the agent trusts keys by this id
            "signature": base64.b64encode(key.sign(canonical(document))).decode(),
        }
        self.audit_events = 0
        self.verifiers = bench_verifiers(BENCH_TOKEN)
        plane = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if "/agent/verifiers" in self.path:
                    identity = parse_qs(self.path.partition("?")[2])["identity"][0]
                    self._send({**plane.verifiers, "identity": identity})
                    return
                if self.headers.get("If-None-Match") == '"b1"':
                    self.send_response(304)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self._send(plane.envelope, {"ETag": '"b1"'})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path.endswith("/authenticate") or self.path.endswith("/logins"):
                    body = json.loads(raw)
                    self._send({"identity": body["identity"], "kind": "user", "groups": []})
                elif self.path.rstrip("/").endswith("/heartbeat"):
                    self._send({})
                else:
                    # A sink on the same two cores as the agent: count events, store nothing.
                    count = len(json.loads(raw).get("events", ()))  # heartbeats carry none
                    plane.audit_events += count
                    self._send({"accepted": count, "duplicates": 0})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
