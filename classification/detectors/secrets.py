"""Secret.Credential: known token formats, password hashes, PEM keys, JWTs; generic
high-entropy strings only under a secret-like column name. Content digests (a sha256 of a
file in a ``checksum`` column) are not secrets.
"""

from __future__ import annotations

import math
import re
from collections import Counter

from .base import MEDIUM, STRONG, Finding, PreparedColumn, has_hint
from .masking import mask_prefix

_KNOWN_FORMATS = re.compile(
    r"(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}|https://hooks\.slack\.com/services/\S+"
    r"|[sr]k_(?:live|test)_[0-9A-Za-z]{16,}|AIza[0-9A-Za-z_-]{35}"
    r"|glpat-[0-9A-Za-z_-]{20}|npm_[A-Za-z0-9]{36}"
    r"|eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"
    r"|-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*"
    r"|\$2[abxy]?\$\d{2}\$[./A-Za-z0-9]{53}"
    r"|(?:argon2\$)?\$argon2(?:id|i|d)\$v=\d+\$m=\d+,t=\d+,p=\d+\$\S+"
    r"|\$scrypt\$\S+|\$7\$\S{20,}|scrypt\$\S+"
    r"|pbkdf2_sha(?:1|256|512)\$\d+\$\S+|\$pbkdf2(?:-sha\d+)?\$\d+\$\S+"
    r"|bcrypt(?:_sha256)?\$\$2[abxy]\$\S+|\$[156]\$[./A-Za-z0-9]{1,16}\$[./A-Za-z0-9]{22,86}"
)
_HINT_TOKENS = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "apikey",
    "credential",
    "credentials",
    "privatekey",
    "auth",
    "bearer",
)
_HINT_PHRASES = (
    "apikey",
    "accesskey",
    "secretkey",
    "clientsecret",
    "privatekey",
    "authtoken",
    "accesstoken",
    "refreshtoken",
    "password",
    "passwd",
    "secret",
)
_NEGATIVE_TOKENS = (
    "checksum",
    "sha256",
    "sha1",
    "md5",
    "digest",
    "etag",
    "fingerprint",
    "file",
    "content",
    "hash",
    "idempotency",
    "public",
    "publickey",
    "cache",
)
_NO_SPACE = re.compile(r"\S{8,512}")


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _is_generic_secret(text: str) -> bool:
    """One unbroken, varied string: an API key, a token, or a plaintext password.

    The entropy bar scales with length (a 10-character password cannot reach 3 bits/char
    of a 40-character key) so ``K#8sjd@1Lq`` counts and ``aaaaaaaaaa`` does not.
    """
    if _NO_SPACE.fullmatch(text) is None:
        return False
    return _entropy(text) >= min(3.0, 0.8 * math.log2(len(text)))


def detect_credential(column: PreparedColumn) -> list[Finding]:
    if column.type_family not in ("text", "json", "binary"):
        return []
    hinted = has_hint(column, _HINT_TOKENS, _HINT_PHRASES)
    if hinted and column.name_tokens & {"id", "type", "name", "expires", "at", "count", "hint"}:
        hinted = False  # token_id, key_type, password_expires_at describe, not hold, secrets
    known = generic = checked = 0
    examples: list[str] = []
    for text in column.texts:
        if checked == 25 and known + generic == 0:
            break
        checked += 1
        if _KNOWN_FORMATS.fullmatch(text):
            known += 1
        elif hinted and _is_generic_secret(text):
            generic += 1
        else:
            continue
        if len(examples) < 3:
            examples.append(mask_prefix(text, 4))
    matched = known + generic
    return [
        Finding(
            tag="Secret.Credential",
            detector="secret_formats",
            matched=matched,
            checked=checked,
            strength=STRONG if matched and known / matched >= 0.5 else MEDIUM,
            examples=examples,
            name_hint=hinted,
            negative_hint=has_hint(column, _NEGATIVE_TOKENS) and not hinted,
            extra={"known_formats": known, "high_entropy": generic},
        )
    ]
