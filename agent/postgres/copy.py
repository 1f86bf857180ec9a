"""COPY … TO STDOUT with masking: the rows of a COPY's text or CSV output, masked per column
with the same methods and decisions as a SELECT's DataRows.

PostgreSQL sends one CopyData message per row (the HEADER line first, when asked).  A row
is split into fields by the rules of its format (PostgreSQL documentation, "COPY", File
Formats), the masked fields decoded, masked and encoded again, the others kept as bytes:

text  fields end at the delimiter (default tab), the row at ``\\n``; the NULL string
      (default ``\\N``) is compared before de-escaping; backslash escapes ``\\b \\f \\n \\r
      \\t \\v \\\\``, octal ``\\NNN``, hex ``\\xHH`` and any other ``\\c`` = ``c``.  Output
      escapes as the server does (CopyAttributeOutText): backslash, the delimiter and the
      control characters above.
csv   fields end at the delimiter (default ``,``) outside quotes; a quoted field doubles its
      quote character (or precedes it, and the escape character, with ESCAPE); an unquoted
      field equal to the NULL string (default empty) is NULL.  A masked value is quoted when
      it was quoted, or holds the delimiter, quote, escape, CR or LF, or equals the NULL
      string (as the server quotes).

Binary COPY carries no text to mask and is refused when a column is masked (42501); so is
an ENCODING other than UTF8 (the methods work on UTF-8 text).  The native data path runs
the same algorithm in C (fastpath/copy.c); tests/agent/test_copy.py compares the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pglast import ast
from pglast.stream import RawStream

from agent import masking
from agent.postgres.state import MaskSpec

_TEXT_ESCAPES = {ord("b"): 8, ord("f"): 12, ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("v"): 11}
_TEXT_OUT = {8: b"\\b", 12: b"\\f", 10: b"\\n", 13: b"\\r", 9: b"\\t", 11: b"\\v", 92: b"\\\\"}


@dataclass(frozen=True, slots=True)
class CopyFormat:
    """How a COPY … TO STDOUT writes its rows, and the query whose shape they have."""

    describe_sql: str
    csv: bool = False
    binary: bool = False
    delimiter: bytes = b"\t"
    null: bytes = b"\\N"
    quote: bytes = b'"'
    escape: bytes = b'"'
    header: bool = False
    encoding: str | None = None

    def refusal(self) -> str | None:
        """Why rows in this format cannot be masked, or None."""
        if self.binary:
            return "binary COPY output cannot be masked; use FORMAT text or csv"
        if self.encoding is not None and self.encoding.replace("-", "").upper() != "UTF8":
            return f"COPY ENCODING {self.encoding} cannot be masked; use UTF8"
        if len(self.delimiter) != 1 or len(self.quote) != 1 or len(self.escape) != 1:
            return "COPY with a multi-byte delimiter, quote or escape cannot be masked"
        return None

    def native(self) -> tuple[bool, bytes, bytes, bytes, bytes]:
        """The format as fastpath.mask_copy_rows takes it."""
        return (self.csv, self.delimiter, self.null, self.quote, self.escape)


def _option(value: Any) -> Any:
    if isinstance(value, ast.String):
        return value.sval
    if isinstance(value, ast.Boolean):
        return value.boolval
    if isinstance(value, ast.Integer):
        return value.ival
    return value


def copy_format(node: ast.CopyStmt) -> CopyFormat:
    """The output format of ``COPY … TO STDOUT`` from its options (old and new syntax)."""
    options = {o.defname: _option(o.arg) for o in node.options or ()}
    form = str(options.get("format", "text")).lower()
    csv = form == "csv"
    if node.relation is not None:
        names = [c.sval or "" for c in node.attlist or ()]
        columns = ", ".join('"' + n.replace('"', '""') + '"' for n in names) or "*"
        describe = f"SELECT {columns} FROM {RawStream()(node.relation)}"
    else:
        assert node.query is not None  # COPY names a relation or a query
        describe = RawStream()(node.query)
    header = options.get("header", False)
    quote = str(options.get("quote", '"'))
    return CopyFormat(
        describe_sql=describe,
        csv=csv,
        binary=form == "binary",
        delimiter=str(options.get("delimiter", "," if csv else "\t")).encode(),
        null=str(options.get("null", "" if csv else "\\N")).encode(),
        quote=quote.encode(),
        escape=str(options.get("escape", quote)).encode(),
        header=header is None or (header is not False and str(header).lower() != "false"),
        encoding=None if options.get("encoding") is None else str(options["encoding"]),
    )


# ------------------------------------------------------------------ text format


def _text_fields(line: bytes, delimiter: int) -> list[bytes]:
    fields, start, i = [], 0, 0
    while i < len(line):
        c = line[i]
        if c == 92:  # backslash: the next byte is escaped, never a delimiter
            i += 2
            continue
        if c == delimiter:
            fields.append(line[start:i])
            start = i + 1
        i += 1
    fields.append(line[start:])
    return fields


def _text_decode(field: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(field):
        c = field[i]
        if c != 92 or i + 1 == len(field):
            out.append(c)
            i += 1
            continue
        n = field[i + 1]
        if 48 <= n <= 55:  # \NNN octal, up to 3 digits
            j = i + 1
            while j < len(field) and j < i + 4 and 48 <= field[j] <= 55:
                j += 1
            out.append(int(field[i + 1 : j], 8) & 255)
            i = j
        elif n == ord("x") and i + 2 < len(field) and chr(field[i + 2]) in "0123456789abcdefABCDEF":
            j = i + 2
            while j < len(field) and j < i + 4 and chr(field[j]) in "0123456789abcdefABCDEF":
                j += 1
            out.append(int(field[i + 2 : j], 16))
            i = j
        else:
            out.append(_TEXT_ESCAPES.get(n, n))
            i += 2
    return bytes(out)


def _text_encode(value: bytes, delimiter: int) -> bytes:
    out = bytearray()
    for c in value:
        escaped = _TEXT_OUT.get(c)
        if escaped is not None:
            out += escaped
        elif c == delimiter:
            out += b"\\" + bytes([c])
        else:
            out.append(c)
    return bytes(out)


# ------------------------------------------------------------------ csv format


def _csv_fields(line: bytes, form: CopyFormat) -> list[tuple[bytes, bool]]:
    """(decoded value, was quoted) per field."""
    delimiter, quote, escape = form.delimiter[0], form.quote[0], form.escape[0]
    fields: list[tuple[bytes, bool]] = []
    value = bytearray()
    quoted = in_quotes = False
    i = 0
    while i < len(line):
        c = line[i]
        if in_quotes:
            if c == escape and i + 1 < len(line) and line[i + 1] in (quote, escape):
                value.append(line[i + 1])
                i += 2
                continue
            if c == quote:
                in_quotes = False
            else:
                value.append(c)
        elif c == quote:
            in_quotes = quoted = True
        elif c == delimiter:
            fields.append((bytes(value), quoted))
            value, quoted = bytearray(), False
        else:
            value.append(c)
        i += 1
    fields.append((bytes(value), quoted))
    return fields


def _csv_encode(value: bytes, quoted: bool, form: CopyFormat) -> bytes:
    quote, escape = form.quote, form.escape
    special = (form.delimiter, quote, escape, b"\r", b"\n")
    if not (quoted or value == form.null or any(s in value for s in special)):
        return value
    out = bytearray(quote)
    for c in value:
        if c == quote[0] or c == escape[0]:
            out += escape
        out.append(c)
    return bytes(out + quote)


# ------------------------------------------------------------------ rows


def mask_copy_row(
    line: bytes, row_mask: list[tuple[int, MaskSpec]], form: CopyFormat, key: bytes
) -> bytes:
    """One row of COPY output (with its ``\\n``) with its masked columns rewritten."""
    body, newline = (line[:-1], line[-1:]) if line.endswith(b"\n") else (line, b"")
    delimiter = form.delimiter
    if form.csv:
        cells = _csv_fields(body, form)
        raw = _raw_csv_fields(body, form)
    else:
        raw = _text_fields(body, delimiter[0])
    out = list(raw)
    for index, (method, param, type_oid, binary) in row_mask:
        if index >= len(raw):
            break
        if form.csv:
            value, quoted = cells[index]
            if not quoted and value == form.null:
                continue  # NULL stays NULL
        else:
            if raw[index] == form.null:
                continue
            value, quoted = _text_decode(raw[index]), False
        masked = masking.mask_wire_value(method, value, type_oid, param, key, binary)
        if masked is None:
            out[index] = form.null
        elif form.csv:
            out[index] = _csv_encode(masked, quoted, form)
        else:
            out[index] = _text_encode(masked, delimiter[0])
    return delimiter.join(out) + newline


def _raw_csv_fields(line: bytes, form: CopyFormat) -> list[bytes]:
    """The fields as written (quotes and all), to keep unmasked ones byte for byte."""
    delimiter, quote, escape = form.delimiter[0], form.quote[0], form.escape[0]
    fields, start, in_quotes, i = [], 0, False, 0
    while i < len(line):
        c = line[i]
        if in_quotes and c == escape and i + 1 < len(line) and line[i + 1] in (quote, escape):
            i += 2
            continue
        if c == quote:
            in_quotes = not in_quotes
        elif c == delimiter and not in_quotes:
            fields.append(line[start:i])
            start = i + 1
        i += 1
    fields.append(line[start:])
    return fields
