"""Secrets at rest (Fernet) and the control plane's Ed25519 signing keys.

Both rotate (docs/deployment.md, key management):

- Field encryption: WARDEN_FIELD_ENCRYPTION_KEY lists Fernet keys newest first. The newest
  encrypts; all of them decrypt (MultiFernet) until ``field_secrets_rotate`` has re-encrypted
  every stored secret under the newest, after which the older ones can be dropped.
- Signing: WARDEN_SIGNING_KEY signs; WARDEN_SIGNING_KEY_NEXT is published to agents, endorsed
  by the current key, before it signs anything; retired keys' public halves
  (WARDEN_SIGNING_KEYS_RETIRED) still verify the checkpoints they signed. A key's id is the
  first 8 bytes (16 hex digits) of the SHA-256 of its base64 public key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# The agent checks key ids and endorsements with these very functions.
from agent.bundle import endorsement_payload, key_id_for

# ----------------------------------------------------------------------------- field encryption


@lru_cache(maxsize=4)
def _field_keys(keys: tuple[str, ...], secret_key: str) -> tuple[Fernet, MultiFernet]:
    """(the newest Fernet, a MultiFernet of all): the configured keys, then the embedded
    default derived from SECRET_KEY, so secrets stored before a key was configured stay
    readable until they are rotated."""
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key.encode()))
        except (ValueError, binascii.Error) as exc:
            raise ImproperlyConfigured(
                f"WARDEN_FIELD_ENCRYPTION_KEY: key {position} is not a Fernet key "
                "(32 url-safe base64-encoded bytes; make one with `warden keys new-field-key`)"
            ) from exc
    derived = hashlib.sha256(b"warden-field-encryption:" + secret_key.encode()).digest()
    fernets.append(Fernet(base64.urlsafe_b64encode(derived)))
    return fernets[0], MultiFernet(fernets)


def _field_cipher() -> tuple[Fernet, MultiFernet]:
    return _field_keys(tuple(settings.FIELD_ENCRYPTION_KEYS), settings.SECRET_KEY)


def new_field_key() -> str:
    return Fernet.generate_key().decode()


def encrypt_secret(plaintext: str) -> str:
    if not plaintext:
        return ""
    return _field_cipher()[0].encrypt(plaintext.encode()).decode()


def decrypt_secret(ciphertext: str) -> str:
    if not ciphertext:
        return ""
    try:
        return _field_cipher()[1].decrypt(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise ValueError(
            "Stored secret cannot be decrypted with any WARDEN_FIELD_ENCRYPTION_KEY: "
            "a key it was encrypted with was removed?"
        ) from exc


def secret_is_current(ciphertext: str) -> bool:
    """Whether ``ciphertext`` is empty or already encrypted under the newest key."""
    if not ciphertext:
        return True
    try:
        _field_cipher()[0].decrypt(ciphertext.encode())
    except InvalidToken:
        return False
    return True


def secret_reencrypt(ciphertext: str) -> str:
    """``ciphertext`` encrypted again under the newest key; ValueError if no key reads it."""
    try:
        return _field_cipher()[1].rotate(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("no configured key decrypts this secret") from exc


# ----------------------------------------------------------------------------- signing keys


def private_key_load(raw_b64: str, setting: str) -> Ed25519PrivateKey:
    try:
        return Ed25519PrivateKey.from_private_bytes(base64.b64decode(raw_b64, validate=True))
    except (ValueError, binascii.Error) as exc:
        raise ImproperlyConfigured(
            f"{setting} is not an Ed25519 private key (base64 of 32 raw bytes; make one with "
            "`warden keys new-signing-key`)"
        ) from exc


@lru_cache(maxsize=1)
def signing_key() -> Ed25519PrivateKey:
    """The bundle/checkpoint signing key: from settings, else generated once into DATA_DIR."""
    raw_b64 = settings.SIGNING_KEY
    if not raw_b64:
        path = settings.SIGNING_KEY_PATH
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # Written once, readable only by the owner.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(new_signing_key())
        raw_b64 = path.read_text().strip()
    return private_key_load(raw_b64, "WARDEN_SIGNING_KEY")


@lru_cache(maxsize=1)
def next_signing_key() -> Ed25519PrivateKey | None:
    """The key that will sign after the rotation (published, not yet signing)."""
    if not settings.SIGNING_KEY_NEXT:
        return None
    return private_key_load(settings.SIGNING_KEY_NEXT, "WARDEN_SIGNING_KEY_NEXT")


def signing_keys_cache_clear() -> None:
    """Forget the loaded keys (tests, and a process whose key settings changed)."""
    signing_key.cache_clear()
    next_signing_key.cache_clear()


def new_signing_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def public_key_of(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def public_key_b64() -> str:
    return public_key_of(signing_key())


def signing_key_id() -> str:
    return key_id_for(public_key_b64())


def sign(payload: bytes) -> str:
    return base64.b64encode(signing_key().sign(payload)).decode()


def next_signing_key_id() -> str | None:
    upcoming = next_signing_key()
    return None if upcoming is None else key_id_for(public_key_of(upcoming))


def published_keys() -> list[dict[str, str]]:
    """The keys agents may trust: the current one, then the next one with the current
    key's endorsement (an agent that trusts the current key learns the next from it)."""
    current = public_key_b64()
    keys = [{"key_id": key_id_for(current), "public_key": current}]
    upcoming = next_signing_key()
    if upcoming is not None:
        public = public_key_of(upcoming)
        key_id = key_id_for(public)
        endorsement = sign(endorsement_payload(key_id, public))
        keys.append({"key_id": key_id, "public_key": public, "endorsement": endorsement})
    return keys


def trusted_public_keys() -> dict[str, str]:
    """key id → public key of every key whose signatures this control plane accepts on its
    own records (checkpoints): current, next and retired."""
    public_keys = [key["public_key"] for key in published_keys()]
    public_keys += settings.SIGNING_KEYS_RETIRED
    return {key_id_for(public): public for public in public_keys}
