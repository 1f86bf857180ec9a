"""PII.IPAddress: IPv4/IPv6 parsed with ``ipaddress``, minus version strings."""

from __future__ import annotations

import ipaddress
import re

from .base import MEDIUM, STRONG, Finding, PreparedColumn, count_matches, has_hint
from .masking import mask_generic

_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_IPV6_CHARS = re.compile(r"[0-9A-Fa-f:.]+(?:%\w+)?")
_HINT_TOKENS = ("ip", "ipv4", "ipv6", "ipaddr", "ipaddress", "addr", "host", "remote", "peer")
_HINT_PHRASES = ("ipaddress", "clientaddr", "remoteaddr", "sourceip", "lastlogin ip")
_NEGATIVE_TOKENS = ("version", "ver", "release", "build", "revision", "semver", "firmware")


def _is_ip(text: str) -> bool:
    if _IPV4.fullmatch(text) is None and (":" not in text or not _IPV6_CHARS.fullmatch(text)):
        return False
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _looks_like_versions(texts: list[str]) -> bool:
    """Dotted quads whose parts are all small (1.2.3.4, 10.0.12.3) read as versions."""
    quads = [t for t in texts if _IPV4.fullmatch(t)]
    if not quads:
        return False
    small = sum(1 for t in quads if max(int(part) for part in t.split(".")) < 32)
    return small / len(quads) >= 0.9


def detect_ip_address(column: PreparedColumn) -> list[Finding]:
    if column.type_family not in ("text", "json", "binary") and "inet" not in column.data_type:
        return []
    matched, checked, examples = count_matches(column.texts, _is_ip, mask_generic)
    hint = has_hint(column, _HINT_TOKENS, _HINT_PHRASES)
    versions = _looks_like_versions(column.texts[:50])
    return [
        Finding(
            tag="PII.IPAddress",
            detector="ip_address",
            matched=matched,
            checked=checked,
            strength=MEDIUM if versions and not hint else STRONG,
            examples=examples,
            name_hint=hint,
            negative_hint=has_hint(column, _NEGATIVE_TOKENS) or (versions and not hint),
            extra={"version_like": versions},
        )
    ]
