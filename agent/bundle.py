"""Policy bundle: signature verification, indexing, on-disk last-good copy and polling.

Trust: the Ed25519 public keys come from ``--bundle-public-key`` (comma-separated: current
and next during a rotation) or the control plane's key is fetched once and pinned in the
state dir (trust on first use).  A bundle that fails verification is rejected and the last
good bundle stays in force, also across restarts.

Rotation: while the control plane holds a next key, its envelopes name it
(``next_key_id``) and its public-key answer carries it with an endorsement, a signature by
the current key.  The agent adds a key endorsed by one it already trusts (and keeps it in
the state dir), so bundles signed by the next key are accepted once it is promoted; a key
nobody it trusts endorsed is never accepted.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
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


class UnknownSigningKey(BundleRejected):
    """The bundle names a signing key this agent does not (yet) trust."""


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

    version: str
    datasource_name: str
    default_action: str
    default_method: str
    levels: list[str]
    columns: dict[tuple[str, str, str], ColumnInfo]
    columns_by_table: dict[tuple[str, str], list[ColumnInfo]]
    schemas_by_table: dict[str, set[str]]
    rules: list[dict[str, Any]]
    guardrails: list[dict[str, Any]]
    grants: list[dict[str, Any]]
    loaded_at: float = field(default_factory=time.time)
    # The masking key the bundle's hash masks are meant to use (the key itself never leaves
    # the agents): "" when the bundle does not say.
    masking_key_id: str = ""

    def without_keyed_masks(self) -> Bundle:
        """This bundle with every ``hash`` mask made ``redact``: for an agent that does not
        hold the key it names (an unkeyed or wrong-keyed hash would give tokens anyone could
        confirm guesses against, or that do not join with other agents')."""
        rules = [
            {**rule, "mask_method": "redact"} if rule.get("mask_method") == "hash" else rule
            for rule in self.rules
        ]
        default = "redact" if self.default_method == "hash" else self.default_method
        return replace(self, default_method=default, rules=rules)

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
            version=str(document.get("version", "")),
            datasource_name=datasource.get("name", ""),
            default_action=datasource.get("default_sensitive_action", "mask"),
            default_method=datasource.get("default_mask_method", "redact"),
            levels=list(document.get("sensitivity_levels", [])),
            columns=columns,
            columns_by_table=by_table,
            schemas_by_table=schemas_by_table,
            rules=sorted(document.get("rules", []), key=lambda r: -int(r.get("priority", 0))),
            guardrails=list(document.get("guardrails", [])),
            grants=list(document.get("grants", [])),
            masking_key_id=str(document.get("masking_key_id") or ""),
        )


def format_major(bundle_format: object) -> int | None:
    """The major version of a bundle's ``format`` (1 and "1.2" are major 1); None if
    it is not a version."""
    if isinstance(bundle_format, int) and not isinstance(bundle_format, bool):
        return bundle_format
    if isinstance(bundle_format, str) and bundle_format.split(".", 1)[0].isdigit():
        return int(bundle_format.split(".", 1)[0])
    return None


def key_id_for(public_key_b64: str) -> str:
    """A signing key's id: the first 8 bytes (hex) of the SHA-256 of its base64 public key."""
    return hashlib.sha256(public_key_b64.encode()).hexdigest()[:16]


def endorsement_payload(key_id: str, public_key_b64: str) -> bytes:
    """What the current key signs to vouch for the next one."""
    return canonical_json(
        {"type": "warden.signing-key", "key_id": key_id, "public_key": public_key_b64}
    )


def load_public_key(b64: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(b64))


def _signature_valid(key: Ed25519PublicKey, signature_b64: str, payload: bytes) -> bool:
    try:
        key.verify(base64.b64decode(signature_b64), payload)
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


class KeyRing:
    """The signing keys an agent trusts, by key id; endorsed ones with their endorsement."""

    def __init__(self, public_keys: Iterable[str] = ()) -> None:
        self.keys: dict[str, Ed25519PublicKey] = {}
        self.endorsed: dict[str, dict[str, str]] = {}
        for public_key in public_keys:
            self.add(public_key)

    def __bool__(self) -> bool:
        return bool(self.keys)

    def __contains__(self, key_id: object) -> bool:
        return key_id in self.keys

    def add(self, public_key_b64: str) -> str:
        key_id = key_id_for(public_key_b64)
        self.keys[key_id] = load_public_key(public_key_b64)
        return key_id

    def endorse(self, candidate: object) -> bool:
        """Trust ``candidate`` ({key_id, public_key, endorsement}) if a trusted key signed it."""
        if not isinstance(candidate, dict):
            return False
        public_key, endorsement = candidate.get("public_key"), candidate.get("endorsement")
        if not isinstance(public_key, str) or not isinstance(endorsement, str):
            return False
        key_id = key_id_for(public_key)
        if key_id in self.keys:
            return False
        payload = endorsement_payload(key_id, public_key)
        if not any(_signature_valid(key, endorsement, payload) for key in self.keys.values()):
            return False
        try:
            self.add(public_key)
        except ValueError:  # endorsed, yet not an Ed25519 key: nothing to trust
            return False
        self.endorsed[key_id] = {"public_key": public_key, "endorsement": endorsement}
        return True

    def candidates(self, key_id: object) -> list[Ed25519PublicKey]:
        """The keys that may have signed an envelope naming ``key_id`` (all when unnamed)."""
        if key_id is None:
            return list(self.keys.values())
        return [self.keys[key_id]] if isinstance(key_id, str) and key_id in self.keys else []


def verify_envelope(envelope: dict[str, Any], trusted: KeyRing) -> Bundle:
    try:
        document = envelope["bundle"]
        signature = envelope["signature"]
    except (KeyError, TypeError) as exc:
        raise BundleRejected(f"malformed bundle envelope: {exc!r}") from exc
    key_id = envelope.get("key_id")
    candidates = trusted.candidates(key_id)
    if not candidates:
        raise UnknownSigningKey(
            f"bundle signed with key {key_id!r}, which this agent does not trust "
            f"(trusted: {', '.join(sorted(trusted.keys)) or 'none'})"
        )
    payload = canonical_json(document)
    if not any(_signature_valid(key, signature, payload) for key in candidates):
        raise BundleRejected("bundle signature does not verify against the trusted key")
    return Bundle.from_document(document)


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
        self.etag: str | None = None
        self.current: Bundle | None = None
        self.last_success: float = 0.0
        # Why the latest bundle offered was refused ("" once one is accepted): the
        # heartbeat and /readyz report it while the last good bundle stays in force.
        self.rejection = ""
        self.listeners: list[Any] = []
        self.configured = [key.strip() for key in (public_key_b64 or "").split(",") if key.strip()]
        self.keyring = KeyRing(self.configured)
        self._pinned: dict[str, str] | None = None
        if self.key_path.exists():
            self._load_pinned(json.loads(self.key_path.read_text()))

    def _load_pinned(self, stored: dict[str, Any]) -> None:
        if not self.configured and stored.get("public_key"):
            self._pinned = {"key_id": stored.get("key_id", ""), "public_key": stored["public_key"]}
            self.keyring.add(stored["public_key"])
        # Endorsed keys are checked again: only those a key trusted now vouched for count.
        for key_id, endorsed in stored.get("endorsed", {}).items():
            if not self.keyring.endorse(endorsed):
                log.warning("ignoring stored key %s: no trusted key endorses it", key_id)

    def _save_keys(self) -> None:
        payload: dict[str, Any] = dict(self._pinned or {})
        if self.keyring.endorsed:
            payload["endorsed"] = self.keyring.endorsed
        _write_atomic(self.key_path, json.dumps(payload).encode())

    def pin_key(self, key_id: str, public_key_b64: str) -> None:
        self.keyring.add(public_key_b64)
        self._pinned = {"key_id": key_id, "public_key": public_key_b64}
        self._save_keys()

    def learn_keys(self, published: list[Any]) -> list[str]:
        """Add the published keys a trusted key endorses; returns their ids."""
        learned = [key_id_for(key["public_key"]) for key in published if self.keyring.endorse(key)]
        if learned:
            self._save_keys()
            log.warning("now trusting signing key(s) %s (endorsed)", ", ".join(learned))
        return learned

    def load_from_disk(self) -> None:
        if not self.keyring or not self.bundle_path.exists():
            return
        try:
            stored = json.loads(self.bundle_path.read_text())
            self.install(verify_envelope(stored["envelope"], self.keyring), None)
            self.etag = stored.get("etag")
        except (BundleRejected, ValueError, KeyError) as exc:
            log.error("stored bundle rejected: %s", exc)

    def accept(self, envelope: dict[str, Any], etag: str | None) -> Bundle:
        """Verify, install and persist the envelope (``adopt`` then ``persist``)."""
        bundle = self.adopt(envelope, etag)
        self.persist(envelope, etag)
        return bundle

    def adopt(self, envelope: dict[str, Any], etag: str | None) -> Bundle:
        """Verify the envelope and put its bundle in force; ``persist`` keeps it on disk."""
        if not self.keyring:
            raise BundleRejected("no public key pinned")
        bundle = verify_envelope(envelope, self.keyring)
        self.install(bundle, etag)
        self.rejection = ""
        return bundle

    def persist(self, envelope: dict[str, Any], etag: str | None) -> None:
        """The last good copy for a restart (an fsync: callers on the loop use a thread)."""
        _write_atomic(self.bundle_path, json.dumps({"envelope": envelope, "etag": etag}).encode())

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
        # Writes of the last good copy, in the order the bundles were installed (FIFO lock).
        self._persisting = asyncio.Lock()
        self._persists: set[asyncio.Task[None]] = set()

    async def ensure_key(self) -> None:
        if self.store.keyring:
            return
        body = await self.client.fetch_public_key()
        self.store.pin_key(body["key_id"], body["public_key"])
        log.warning("pinned control plane bundle key %s (trust on first use)", body["key_id"])

    async def learn_keys(self) -> list[str]:
        """Fetch the published keys and trust those a trusted key endorses."""
        body = await self.client.fetch_public_key()
        published = body.get("keys")
        return self.store.learn_keys(published if isinstance(published, list) else [])

    async def poll_once(self) -> None:
        """Fetch the bundle; a new, verified one is put in force, then kept on disk."""
        async with self._polling:
            adopted = await self._fetch_and_adopt()
        if adopted is not None:
            await self._persist(*adopted)

    async def _fetch_and_adopt(self) -> tuple[dict[str, Any], str | None] | None:
        """Fetch the bundle and put a new, verified one in force; returns what to persist."""
        await self.ensure_key()
        response = await self.client.fetch_bundle(self.datasource, self.store.etag)
        self.store.last_success = time.time()
        if response.not_modified or response.envelope is None:
            return None
        envelope = response.envelope
        next_key_id = envelope.get("next_key_id")
        if next_key_id and next_key_id not in self.store.keyring:
            await self.learn_keys()
        try:
            try:
                bundle = self.store.adopt(envelope, response.etag)
            except UnknownSigningKey:
                if not await self.learn_keys():
                    raise
                bundle = self.store.adopt(envelope, response.etag)
            log.info("installed bundle version %s", bundle.version)
        except BundleRejected as exc:
            self.store.rejection = str(exc)
            log.error("rejected bundle: %s; keeping the last good one", exc)
            return None
        return envelope, response.etag

    async def _persist(self, envelope: dict[str, Any], etag: str | None) -> None:
        # In a thread: an fsync on the loop would stall every session for milliseconds.
        async with self._persisting:
            await asyncio.to_thread(self.store.persist, envelope, etag)

    async def refresh_now(self) -> Bundle | None:
        """Poll at once instead of waiting for the next interval (e.g. a grant was just
        approved).  Polls are serialised, so one that started before the approval cannot
        overwrite this one's answer; an unchanged bundle costs a 304.  Returns once the
        bundle is in force: a held statement does not wait for its copy on disk.  Raises
        ControlPlaneUnavailable."""
        async with self._polling:
            adopted = await self._fetch_and_adopt()
        if adopted is not None:
            task = asyncio.create_task(self._persist(*adopted))
            self._persists.add(task)  # a reference, so the task is not collected midway
            task.add_done_callback(self._persisted)
        return self.store.current

    def _persisted(self, task: asyncio.Task[None]) -> None:
        self._persists.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("could not keep the bundle on disk: %s", task.exception())

    async def run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except ControlPlaneUnavailable as exc:
                log.warning("control plane unavailable: %s", exc)
            except Exception:
                log.exception("bundle poll failed")
            await asyncio.sleep(self.interval)
