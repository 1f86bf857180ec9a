"""Column definitions and row rewriting, text (COM_QUERY) and binary (COM_STMT_EXECUTE).

Masking methods are the shared ones in ``agent.masking``; this module only knows how MySQL
carries a value: which types hold text a method may replace, and where each binary value
starts and ends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agent.extension import native_function
from agent.masking import mask_text, year
from agent.mysql.packets import lenenc_str, read_lenenc_int, read_lenenc_str

# The native data path for text results (agent/fastpath/mysql.c): a result set
# buffered whole scanned, and a run of rows masked and framed, in one call each.
native_mask_rows: Callable[..., tuple[bytes | None, int, int, int, int]] | None = native_function(
    "mysql_mask_rows"
)
native_scan_result: Callable[..., tuple[bytes, int, int, int, int, bool] | None] | None = (
    native_function("mysql_scan_result")
)
# A text result set buffered whole, its shape cached in the session's masks, relayed at once
# (Results._whole_result, and the C round trip of a repeated query: agent/mysql/native.py).
native_whole_result: Callable[..., tuple[bytes, int, int, int, int, int, int] | None] | None = (
    native_function("mysql_whole_result")
)
# The same for binary protocol rows; its extra argument: bytes(types).
native_mask_binary_rows: Callable[..., tuple[bytes | None, int, int, int, int]] | None = (
    native_function("mysql_mask_binary_rows")
)

NativeMask = list[tuple[int, tuple[str, int | None, int, bool]]]

# Field types (protocol documentation: "Column Types").
TEXT_TYPES = frozenset({15, 245, 247, 248, 249, 250, 251, 252, 253, 254})
DATE_TYPES = frozenset({7, 10, 12})  # timestamp, date, datetime
_FIXED_WIDTH = {1: 1, 2: 2, 13: 2, 3: 4, 9: 4, 4: 4, 5: 8, 8: 8, 6: 0}
_TEMPORAL = frozenset({7, 10, 11, 12})


@dataclass(frozen=True)
class ColumnDef:
    schema: str
    table: str
    org_table: str
    name: str
    org_name: str
    type: int

    @classmethod
    def parse(cls, payload: bytes) -> ColumnDef:
        fields: list[str] = []
        pos = 0
        for _ in range(6):  # catalog, schema, table, org_table, name, org_name
            value, pos = read_lenenc_str(payload, pos)
            fields.append((value or b"").decode(errors="replace"))
        _, pos = read_lenenc_int(payload, pos)  # length of the fixed fields (0x0c)
        column_type = payload[pos + 6]
        return cls(fields[1], fields[2], fields[3], fields[4], fields[5], column_type)


@dataclass(frozen=True)
class Mask:
    method: str
    param: int | None = None


REDACT = Mask("redact")


def mask_value(mask: Mask, column_type: int, text: bytes, key: bytes) -> bytes | None:
    """One masked value in its text form, or None (SQL NULL) when the method cannot
    produce a valid value of the column's type."""
    if mask.method == "null":
        return None
    value = text.decode(errors="replace")
    if column_type in TEXT_TYPES:
        masked = mask_text(mask.method, value, mask.param, key)
        return None if masked is None else masked.encode()
    if mask.method == "year" and column_type in DATE_TYPES:
        truncated = year(value)
        return None if truncated is None else truncated.encode()
    return None


def native_row_mask(masks: list[Mask | None], types: list[int]) -> NativeMask:
    """``masks`` as the native path takes them (``mask_text_row`` and ``mask_binary_row``
    are the reference): the masked columns, each with its method, or NULL (the last field)
    where the method's output would not be a value of the column's type (the type field 0
    lets every method run).  So a binary DATE/DATETIME/TIMESTAMP keeps only ``year``."""
    native: NativeMask = []
    for index, (mask, column_type) in enumerate(zip(masks, types, strict=True)):
        if mask is None:
            continue
        fits = column_type in TEXT_TYPES or (mask.method == "year" and column_type in DATE_TYPES)
        native.append((index, (mask.method if fits else "null", mask.param, 0, not fits)))
    return native


def mask_text_row(payload: bytes, masks: list[Mask | None], types: list[int], key: bytes) -> bytes:
    parts: list[bytes] = []
    pos = 0
    for mask, column_type in zip(masks, types, strict=True):
        start = pos
        value, pos = read_lenenc_str(payload, pos)
        if mask is None or value is None:
            parts.append(payload[start:pos])
            continue
        masked = mask_value(mask, column_type, value, key)
        parts.append(b"\xfb" if masked is None else lenenc_str(masked))
    return b"".join(parts)


def _binary_width(payload: bytes, pos: int, column_type: int) -> int:
    if column_type in _FIXED_WIDTH:
        return _FIXED_WIDTH[column_type]
    if column_type in _TEMPORAL:
        return 1 + payload[pos]
    length, after = read_lenenc_int(payload, pos)
    return after - pos + (length or 0)


def _binary_date(column_type: int, raw: bytes, mask: Mask) -> bytes | None:
    """``year`` on a binary DATE/DATETIME/TIMESTAMP: January 1st of its year."""
    if mask.method != "year" or column_type not in DATE_TYPES or raw[0] < 4:
        return None
    return b"\x04" + raw[1:3] + b"\x01\x01"


def mask_binary_row(
    payload: bytes, masks: list[Mask | None], types: list[int], key: bytes
) -> bytes:
    """A binary protocol row: 0x00, the NULL bitmap (offset 2), then the non-NULL values."""
    count = len(types)
    bitmap = bytearray(payload[1 : 1 + (count + 9) // 8])
    pos = 1 + len(bitmap)
    parts: list[bytes] = []
    for index, (mask, column_type) in enumerate(zip(masks, types, strict=True)):
        bit = index + 2
        if bitmap[bit // 8] & (1 << (bit % 8)):
            continue
        width = _binary_width(payload, pos, column_type)
        raw = payload[pos : pos + width]
        pos += width
        if mask is None:
            parts.append(raw)
            continue
        if column_type in TEXT_TYPES:
            value, _ = read_lenenc_str(raw, 0)
            masked = mask_value(mask, column_type, value or b"", key)
            replacement = None if masked is None else lenenc_str(masked)
        else:
            replacement = _binary_date(column_type, raw, mask)
        if replacement is None:
            bitmap[bit // 8] |= 1 << (bit % 8)
        else:
            parts.append(replacement)
    return b"\x00" + bytes(bitmap) + b"".join(parts)
