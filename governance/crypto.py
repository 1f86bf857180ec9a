"""Secrets at rest (Fernet) and the control plane's Ed25519 signing key."""

from __future__ import annotations

import base64
import hashlib
import os
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings


@lru_cache(maxsize=4)
def _fernet(key_material: str, secret_key: str) -> Fernet:
    if key_material:
        return Fernet(key_material.encode())
    # Embedded default: derive a stable key from SECRET_KEY so restarts can still decrypt.
    derived = hashlib.sha256(b"warden-field-encryption:" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt_secret(plaintext: str) -> str:
    if not plaintext:
        return ""
    fernet = _fernet(settings.FIELD_ENCRYPTION_KEY, settings.SECRET_KEY)
    return fernet.encrypt(plaintext.encode()).decode()


def decrypt_secret(ciphertext: str) -> str:
    if not ciphertext:
        return ""
    fernet = _fernet(settings.FIELD_ENCRYPTION_KEY, settings.SECRET_KEY)
    try:
        return fernet.decrypt(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise ValueError(
            "Stored secret cannot be decrypted: WARDEN_FIELD_ENCRYPTION_KEY changed?"
        ) from exc


@lru_cache(maxsize=1)
def signing_key() -> Ed25519PrivateKey:
    """The bundle/checkpoint signing key: from settings, else generated once into DATA_DIR."""
    raw_b64 = settings.SIGNING_KEY
    if not raw_b64:
        path = settings.SIGNING_KEY_PATH
        if not path.exists():
            fresh = base64.b64encode(os.urandom(32)).decode()
            path.parent.mkdir(parents=True, exist_ok=True)
            # Written once, readable only by the owner.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(fresh)
        raw_b64 = path.read_text().strip()
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(raw_b64))


def public_key_b64() -> str:
    raw = signing_key().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def signing_key_id() -> str:
    return hashlib.sha256(public_key_b64().encode()).hexdigest()[:16]


def sign(payload: bytes) -> str:
    return base64.b64encode(signing_key().sign(payload)).decode()
