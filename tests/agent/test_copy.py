"""COPY … TO STDOUT with masking: the native row rewrite (fastpath/copy.c) gives what
agent/postgres/copy.py gives, which decodes fields by PostgreSQL's COPY rules (checked
against the server's own output), and through the agent a governed identity exports
masked rows in text and CSV while binary COPY is refused with the reason."""

from __future__ import annotations

import csv
import io
import os
import random
import struct
import subprocess
from typing import Any

import psycopg
import pytest

from agent import _fastpath, masking
from agent.postgres.copy import CopyFormat, _csv_fields, _text_decode, _text_fields, mask_copy_row
from tests.agent.conftest import MASKING_KEY

KEY = b"copy-test-key"
FORMATS = [
    CopyFormat("q"),
    CopyFormat("q", delimiter=b"|", null=b"NULL"),
    CopyFormat("q", csv=True, delimiter=b",", null=b""),
    CopyFormat("q", csv=True, delimiter=b";", null=b"\\N", quote=b"'", escape=b"\\"),
]


def _text_line(values: list[bytes | None], form: CopyFormat) -> bytes:
    """A row as the server writes it (CopyAttributeOutText / CopyAttributeOutCSV)."""
    out = []
    for value in values:
        if value is None:
            out.append(form.null)
        elif form.csv:
            special = any(
                s in value for s in (form.delimiter, form.quote, form.escape, b"\n", b"\r")
            )
            if special or value == form.null:
                escaped = b"".join(
                    form.escape + bytes([c])
                    if bytes([c]) in (form.quote, form.escape)
                    else bytes([c])
                    for c in value
                )
                out.append(form.quote + escaped + form.quote)
            else:
                out.append(value)
        else:
            table = {
                8: b"\\b",
                12: b"\\f",
                10: b"\\n",
                13: b"\\r",
                9: b"\\t",
                11: b"\\v",
                92: b"\\\\",
            }
            out.append(
                b"".join(
                    table.get(c, b"\\" + bytes([c]) if bytes([c]) == form.delimiter else bytes([c]))
                    for c in value
                )
            )
    return form.delimiter.join(out) + b"\n"


def _message(line: bytes) -> bytes:
    return b"d" + struct.pack("!i", len(line) + 4) + line


def test_native_copy_masking_gives_what_copy_py_gives() -> None:
    generator = random.Random(22)
    alphabet = [*"aZ09 @.-,;|'\"\\\t\n\rNT", "\u00e9", "\U0001f600", "\u0663"]
    values: list[bytes | None] = [None, b"", b"\\N", b"NULL", b"2024-05-06", b"a@b.c"]
    values += [
        "".join(generator.choice(alphabet) for _ in range(generator.randrange(10))).encode()
        for _ in range(200)
    ]
    methods = [*masking.METHODS, "bogus"]
    checked = 0
    for form in FORMATS:
        for _ in range(300):
            row = [generator.choice(values) for _ in range(4)]
            if not form.csv:  # text format cannot tell such a value from NULL (nor can the server)
                row = [b"x" if v == form.null else v for v in row]
            line = _text_line(row, form)
            # the decoder reads back what the server wrote
            if form.csv:
                decoded = [
                    v if q or v != form.null else None for v, q in _csv_fields(line[:-1], form)
                ]
            else:
                raw = _text_fields(line[:-1], form.delimiter[0])
                decoded = [None if f == form.null else _text_decode(f) for f in raw]
            assert decoded == row, (form, row)
            spec = (
                generator.choice(methods),
                generator.choice([None, 2]),
                generator.choice([25, 1082, 23]),
                False,
            )
            row_mask = [(i, spec) for i in sorted(generator.sample(range(5), 2))]
            expected = mask_copy_row(line, row_mask, form, KEY)
            chunk = b"xx" + _message(line) * 2 + b"c\0\0\0\4"
            native, end, rows = _fastpath.mask_copy_rows(chunk, 2, row_mask, form.native(), KEY)
            assert (native, end, rows) == (_message(expected) * 2, len(chunk) - 5, 2), (form, row)
            checked += 1
    assert checked == 1200


# ------------------------------------------------------------------ through the agent

COLUMNS = "id, name, email, phone, card, birth_date"


def _select_text(conn: Any, sql: str) -> list[list[bytes | None]]:
    """Rows as the server's text form (what COPY writes), through the agent."""
    cursor = conn.execute(sql)
    result = cursor.pgresult
    return [[result.get_value(r, c) for c in range(result.nfields)] for r in range(result.ntuples)]


def _copy(conn: Any, sql: str) -> bytes:
    with conn.cursor().copy(sql) as copy:
        return b"".join(bytes(chunk) for chunk in copy)


def _csv_rows(data: bytes) -> list[list[bytes | None]]:
    rows = csv.reader(io.StringIO(data.decode()))
    return [[None if v == "" else v.encode() for v in row] for row in rows]


def _text_rows(data: bytes) -> list[list[bytes | None]]:
    return [
        [None if v == b"\\N" else _text_decode(v) for v in line.split(b"\t")]
        for line in data.splitlines()
    ]


@pytest.mark.parametrize("user", ["alice", "bot", "bob"])
def test_copy_to_stdout_gives_the_rows_select_gives_masked_alike(
    agent_on_both_paths: Any, admin: Any, user: str
) -> None:
    query = f"SELECT {COLUMNS} FROM customers ORDER BY id"
    direct = _copy(admin, f"COPY ({query}) TO STDOUT")
    assert b"ada.48@example.com" in direct.lower()  # the control: the secret is there
    with agent_on_both_paths.connect(user) as conn:
        selected = _select_text(conn, query)
        as_text = _text_rows(_copy(conn, f"COPY ({query}) TO STDOUT"))
        as_csv = _csv_rows(_copy(conn, f"COPY ({query}) TO STDOUT (FORMAT csv, HEADER)"))
        as_table = _text_rows(_copy(conn, f"COPY customers ({COLUMNS}) TO STDOUT"))
    assert len(selected) == 50 and selected != _text_rows(direct)
    assert as_text == selected and as_table == selected
    assert as_csv[0] == [c.strip().encode() for c in COLUMNS.split(",")]  # the header passes
    assert as_csv[1:] == selected
    assert b"ada.48@example.com" not in repr(as_text).encode().lower()


def test_psql_copy_in_the_simple_protocol_is_masked(agent: Any) -> None:
    env = {**os.environ, "PGPASSWORD": "wdn_bot"}
    command = ["/usr/bin/psql", "-X", "-h", "127.0.0.1", "-p", str(agent.port), "-U", "bot"]
    sql = "COPY (SELECT id, email FROM customers ORDER BY id) TO STDOUT (FORMAT csv)"
    result = subprocess.run(
        [*command, "-d", "shop", "-c", sql], env=env, capture_output=True, text=True, timeout=20
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    key = MASKING_KEY
    assert lines[0] == "1," + masking.hash_token("grace.1@example.com", key)
    assert len(lines) == 50 and "@" not in result.stdout


def test_binary_copy_of_masked_columns_is_refused_saying_why(agent: Any) -> None:
    with agent.connect("alice") as conn:
        with pytest.raises(psycopg.Error, match="binary COPY output cannot be masked") as info:
            _copy(conn, "COPY (SELECT id, email FROM customers) TO STDOUT (FORMAT binary)")
        assert info.value.sqlstate == "42501"
        # unmasked columns still export in binary
        plain = _copy(conn, "COPY (SELECT id, name FROM customers) TO STDOUT (FORMAT binary)")
        assert plain.startswith(b"PGCOPY\n")


def test_copy_filtering_on_a_masked_column_is_still_refused(agent: Any, admin: Any) -> None:
    sql = "COPY (SELECT id FROM customers WHERE email LIKE 'ada%') TO STDOUT"
    assert _copy(admin, sql).count(b"\n") == 6  # the control: the filter works directly
    with agent.connect("alice") as conn, pytest.raises(psycopg.Error, match="WHERE") as info:
        _copy(conn, sql)
    assert info.value.sqlstate == "42501"


def test_binary_copy_refusal_names_the_masked_columns_and_their_rule(
    agent: Any, admin: Any
) -> None:
    sql = "COPY (SELECT id, email, phone FROM customers) TO STDOUT (FORMAT binary)"
    assert b"grace.1@example.com" in _copy(admin, sql)  # the control: binary carries the secret
    with agent.connect("alice") as conn:
        with pytest.raises(psycopg.Error) as info:
            _copy(conn, sql)
        assert info.value.sqlstate == "42501"
        message = info.value.diag.message_primary or ""
        assert "binary COPY output cannot be masked" in message
        assert "public.customers.email" in message and "masked by" in message, message
        assert conn.execute("SELECT 1").fetchone() == (1,)  # the session goes on


def test_copy_in_another_encoding_is_refused_for_masked_columns_only(agent: Any) -> None:
    with agent.connect("alice") as conn:
        with pytest.raises(psycopg.Error) as info:
            _copy(conn, "COPY (SELECT id, email FROM customers) TO STDOUT (ENCODING 'LATIN1')")
        assert info.value.sqlstate == "42501"
        assert "COPY ENCODING LATIN1 cannot be masked; use UTF8" in str(info.value)
        utf8 = _copy(conn, "COPY (SELECT id, email FROM customers) TO STDOUT (ENCODING 'UTF-8')")
        assert b"****@example.com" in utf8 and b"grace" not in utf8
        latin1 = _copy(conn, "COPY (SELECT id, name FROM customers) TO STDOUT (ENCODING 'LATIN1')")
        assert latin1.count(b"\n") == 50  # nothing masked: any encoding exports


def test_a_client_encoding_other_than_utf8_is_refused_before_a_copy_can_run(agent: Any) -> None:
    with agent.connect("alice") as conn:
        with pytest.raises(psycopg.Error) as info:
            conn.execute("SET client_encoding = 'LATIN1'")
        assert info.value.sqlstate == "42501", info.value.sqlstate
        assert "client_encoding" in str(info.value)
        assert conn.execute("SHOW client_encoding").fetchone() == ("UTF8",)
