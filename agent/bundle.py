"""Policy bundle: signature verification, indexing, on-disk last-good copy and polling.

Trust: the Ed25519 public key comes from ``--bundle-public-key`` or is fetched once and
pinned in the state dir (trust on first use).  A bundle that fails verification is
rejected and the last good bundle stays in force, also across restarts.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.controlplane import ControlPlaneClient, ControlPlaneUnavailable

log = logging.getLogger("agent.bundle")

SENSITIVE_LEVELS = frozenset({"confidential", "restricted"})
# The bundle format's major version this agent reads ("format": 1, or "1.N" for additions
# an agent of major 1 may ignore). Another major keeps the last good bundle in force.
BUNDLE_FORMAT_MAJOR = 1


class BundleRejected(Exception):
    """The bundle's signature or format is not acceptable."""


def canonical_json(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class ColumnInfo:
    schema: str
    table: str
    column: str
    tags: frozenset[str]
    sensitivity: str | None
    sensitive: bool


@dataclass
class Bundle:
    """A verified bundle with lookup indexes."""

    document: dict[str, Any]
    version: str
    datasource_name: str
    default_action: str
    default_method: str
    masking_key_id: str | None
    levels: list[str]
    columns: dict[tuple[str, str, str], ColumnInfo]
    columns_by_table: dict[tuple[str, str], list[ColumnInfo]]
    schemas_by_table: dict[str, set[str]]
    rules: list[dict[str, Any]]
    guardrails: list[dict[str, Any]]
    grants: list[dict[str, Any]]
    loaded_at: float = field(default_factory=time.time)

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> Bundle:
        if format_major(document.get("format")) != BUNDLE_FORMAT_MAJOR:
            raise BundleRejected(
                f"unsupported bundle format {document.get('format')!r}: this agent reads "
                f"format {BUNDLE_FORMAT_MAJOR} (upgrade the agent)"
            )
        datasource = document.get("datasource", {})
        columns: dict[tuple[str, str, str], ColumnInfo] = {}
        by_table: dict[tuple[str, str], list[ColumnInfo]] = {}
        schemas_by_table: dict[str, set[str]] = {}
        for entry in document.get("columns", []):
            info = ColumnInfo(
                entry["schema"],
                entry["table"],
                entry["column"],
                frozenset(entry.get("tags", [])),
                entry.get("sensitivity"),
                entry.get("sensitivity") in SENSITIVE_LEVELS,
            )
            columns[(info.schema, info.table, info.column)] = info
            by_table.setdefault((info.schema, info.table), []).append(info)
            schemas_by_table.setdefault(info.table, set()).add(info.schema)
        for rule in document.get("rules", []):
            resource = rule.get("resource", {})
            if resource.get("kind") in ("table", "column"):
                schemas_by_table.setdefault(resource["table"], set()).add(resource["schema"])
        return cls(
            document=document,
            version=str(document.get("version", "")),
            datasource_name=datasource.get("name", ""),
            default_action=datasource.get("default_sensitive_action", "mask"),
            default_method=datasource.get("default_mask_method", "redact"),
            masking_key_id=document.get("masking_key_id"),
            levels=list(document.get("sensitivity_levels", [])),
            columns=columns,
            columns_by_table=by_table,
            schemas_by_table=schemas_by_table,
            rules=sorted(document.get("rules", []), key=lambda r: -int(r.get("priority", 0))),
            guardrails=list(document.get("guardrails", [])),
            grants=list(document.get("grants", [])),
        )


def format_major(bundle_format: object) -> int | None:
    """The major version of a bundle's ``format`` (1 and "1.2" are major 1); None if
    it is not a version."""
    if isinstance(bundle_format, int) and not isinstance(bundle_format, bool):
        return bundle_format
    if isinstance(bundle_format, str) and bundle_format.split(".", 1)[0].isdigit():
        return int(bundle_format.split(".", 1)[0])
    return None


def verify_envelope(envelope: dict[str, Any], public_key: Ed25519PublicKey) -> Bundle:
    try:
        document = envelope["bundle"]
        signature = base64.b64decode(envelope["signature"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleRejected(f"malformed bundle envelope: {exc!r}") from exc
    try:
        public_key.verify(signature, canonical_json(document))
    except InvalidSignature as exc:
        raise BundleRejected("bundle signature does not verify against the pinned key") from exc
    return Bundle.from_document(document)


def load_public_key(b64: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(b64))


def _write_atomic(path: Path, data: bytes) -> None:
    # Per process: workers sharing the state directory write the same files (workers.py).
    tmp = path.with_suffix(f"{path.suffix}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class BundleStore:
    """Holds the current bundle; persists the last good envelope in the state dir."""

    def __init__(self, state_dir: Path, public_key_b64: str | None) -> None:
        self.state_dir = state_dir
        self.bundle_path = state_dir / "bundle.json"
        self.key_path = state_dir / "public_key.json"
        self.public_key: Ed25519PublicKey | None = None
        self.key_id: str | None = None
        self.etag: str | None = None
        self.current: Bundle | None = None
        self.last_success: float = 0.0
        # Why the latest bundle offered was refused ("" once one is accepted): the
        # heartbeat and /readyz report it while the last good bundle stays in force.
        self.rejection = ""
        self.listeners: list[Any] = []
        if public_key_b64:
            self.public_key = load_public_key(public_key_b64)
        elif self.key_path.exists():
            pinned = json.loads(self.key_path.read_text())
            self.public_key = load_public_key(pinned["public_key"])
            self.key_id = pinned.get("key_id")

    def pin_key(self, key_id: str, public_key_b64: str) -> None:
        self.public_key = load_public_key(public_key_b64)
        self.key_id = key_id
        payload = {"key_id": key_id, "public_key": public_key_b64}
        _write_atomic(self.key_path, json.dumps(payload).encode())

    def load_from_disk(self) -> None:
        if self.public_key is None or not self.bundle_path.exists():
            return
        try:
            stored = json.loads(self.bundle_path.read_text())
            self.install(verify_envelope(stored["envelope"], self.public_key), None)
            self.etag = stored.get("etag")
        except (BundleRejected, ValueError, KeyError) as exc:
            log.error("stored bundle rejected: %s", exc)

    def accept(self, envelope: dict[str, Any], etag: str | None) -> Bundle:
        if self.public_key is None:
            raise BundleRejected("no public key pinned")
        if self.key_id and envelope.get("key_id") not in (None, self.key_id):
            raise BundleRejected(
                f"bundle signed with key {envelope.get('key_id')!r}, pinned {self.key_id!r}"
            )
        bundle = verify_envelope(envelope, self.public_key)
        _write_atomic(self.bundle_path, json.dumps({"envelope": envelope, "etag": etag}).encode())
        self.install(bundle, etag)
        self.rejection = ""
        return bundle

    def install(self, bundle: Bundle, etag: str | None) -> None:
        self.current = bundle
        self.etag = etag
        for listener in self.listeners:
            listener(bundle)


class BundlePoller:
    def __init__(
        self,
        store: BundleStore,
        client: ControlPlaneClient,
        datasource: str,
        interval: float,
    ) -> None:
        self.store = store
        self.client = client
        self.datasource = datasource
        self.interval = interval
        self._polling = asyncio.Lock()

    async def ensure_key(self) -> None:
        if self.store.public_key is not None:
            return
        body = await self.client.fetch_public_key()
        self.store.pin_key(body["key_id"], body["public_key"])
        log.warning("pinned control plane bundle key %s (trust on first use)", body["key_id"])

    async def poll_once(self) -> None:
        await self.ensure_key()
        response = await self.client.fetch_bundle(self.datasource, self.store.etag)
        self.store.last_success = time.time()
        if response.not_modified or response.envelope is None:
            return
        try:
            bundle = self.store.accept(response.envelope, response.etag)
            log.info("installed bundle version %s", bundle.version)
        except BundleRejected as exc:
            self.store.rejection = str(exc)
            log.error("rejected bundle: %s; keeping the last good one", exc)

    async def refresh_now(self) -> Bundle | None:
        """Poll at once instead of waiting for the next interval (e.g. a grant was just
        approved).  Polls are serialised, so one that started before the approval cannot
        overwrite this one's answer; an unchanged bundle costs a 304.  Raises
        ControlPlaneUnavailable."""
        async with self._polling:
            await self.poll_once()
        return self.store.current

    async def run(self) -> None:
        while True:
            try:
                async with self._polling:
                    await self.poll_once()
            except ControlPlaneUnavailable as exc:
                log.warning("control plane unavailable: %s", exc)
            except Exception:
                log.exception("bundle poll failed")
            await asyncio.sleep(self.interval)
