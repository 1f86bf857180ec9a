"""The native masking of MySQL text rows (agent/fastpath/mysql.c) against the
Python reference (``agent.mysql.rows.mask_text_row``, framed by ``packets.frame``): the
same packets, byte for byte, over many value shapes, methods and column types."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import mariadb
import pymysql
import pytest

from agent.mysql import packets as p
from agent.mysql.rows import (
    Mask,
    mask_binary_row,
    mask_text_row,
    native_mask_binary_rows,
    native_mask_rows,
    native_row_mask,
    native_scan_result,
)

KEY = b"native-rows-test-key"
METHODS = [
    Mask("redact"),
    Mask("null"),
    Mask("email"),
    Mask("hash"),
    Mask("year"),
    Mask("partial"),
    Mask("partial", 0),
    Mask("partial", 2),
    Mask("last_n"),
    Mask("last_n", 0),
    Mask("last_n", 7),
    Mask("no_such_method"),
]
# varchar, string, blob/text, json, date, datetime, timestamp, int, decimal, time, year
TYPES = [253, 254, 252, 245, 10, 12, 7, 3, 246, 11, 13]
VALUES: list[bytes | None] = [
    None,
    b"",
    b"a",
    b"abc 1234",
    b"2024-05-06",
    b"2024-05-06 12:34:56",
    b"12024-05-06T00:00",
    b"2024-5-06",
    "२०२४-०१-०२ x".encode(),  # non-ASCII digits
    "héllo wörld 4242 ümlaut".encode(),
    "日本語のテキスト 987".encode(),
    b"user@example.com",
    b"@example.com",
    b"user@",
    "jürgen@例え.jp".encode(),
    b"\xff\xfe not utf-8 \x80 99",
    b"x" * 250,
    b"9" * 251,
    ("é" * 200).encode(),  # 400 bytes: a 3-byte length
    b"ab-12" * 13107,  # 65535 bytes
    b"c" * 65536,  # the first 4-byte length
    ("ü1" * 40000).encode(),
]


def _reference(rows: list[bytes], masks: list[Mask | None], types: list[int], seq: int) -> bytes:
    out = []
    for row in rows:
        data, seq = p.frame(mask_text_row(row, masks, types, KEY), seq)
        out.append(data)
    return b"".join(out)


def _row(values: list[bytes | None]) -> bytes:
    return b"".join(b"\xfb" if v is None else p.lenenc_str(v) for v in values)


def _packets(rows: list[bytes], seq: int) -> bytes:
    return b"".join(p.frame(row, seq + i)[0] for i, row in enumerate(rows))


def _native(data: bytes, pos: int, seq: int, masks: list[Mask | None], types: list[int]):
    assert native_mask_rows is not None, "build the extension: python setup.py build_ext -i"
    return native_mask_rows(data, pos, seq, native_row_mask(masks, types), KEY)


def test_the_extension_masks_mysql_text_rows():
    assert native_mask_rows is not None


@pytest.mark.parametrize("mask", METHODS, ids=lambda m: f"{m.method}-{m.param}")
@pytest.mark.parametrize("column_type", TYPES)
def test_every_method_on_every_type_and_value_matches_python(mask: Mask, column_type: int):
    masks: list[Mask | None] = [None, mask, None]
    rows = [_row([b"7", value, None]) for value in VALUES]
    data = _packets(rows, 1)
    masked, end, count, _, _ = _native(data, 0, 1, masks, [3, column_type, 253])
    assert (masked, end, count) == (
        _reference(rows, masks, [3, column_type, 253], 1),
        len(data),
        len(rows),
    )


def test_a_row_not_buffered_whole_ends_the_run_before_it():
    masks: list[Mask | None] = [Mask("partial")]
    rows = [_row([b"4111-1111"]), _row([b"5555-4444"])]
    data = _packets(rows, 1)
    masked, end, count, seq, _ = _native(data[:-3], 0, 1, masks, [253])
    assert (masked, end, count, seq) == (
        _reference(rows[:1], masks, [253], 1),
        len(p.frame(rows[0], 1)[0]),
        1,
        2,
    )
    assert _native(b"", 0, 5, masks, [253])[:4] == (None, 0, 0, 5)


def test_split_packets_and_rows_that_would_need_one_are_left_to_python():
    big = _row([b"z" * (p.MAX_PACKET + 10)])
    split = p.frame(big, 1)[0]
    assert _native(split, 0, 1, [Mask("partial")], [253])[:3] == (None, 0, 0)
    # A hash token is longer than the 1-byte value: the masked row would not fit a packet.
    near_full = _row([b"q", b"w" * (p.MAX_PACKET - 20)])
    data = p.frame(near_full, 3)[0]
    assert len(near_full) < p.MAX_PACKET
    masks: list[Mask | None] = [Mask("hash"), None]
    assert _native(data, 0, 3, masks, [253, 253])[:3] == (None, 0, 0)
    assert len(mask_text_row(near_full, masks, [253, 253], KEY)) >= p.MAX_PACKET


def test_a_malformed_row_raises_instead_of_passing_unmasked():
    data = p.frame(b"\x05ab", 1)[0]  # a 5-byte value with 2 bytes
    with pytest.raises(ValueError):
        _native(data, 0, 1, [Mask("redact")], [253])


def _result(columns: list[bytes], rows: list[bytes], end: bytes, seq: int = 1) -> bytes:
    packets = [p.lenenc_int(len(columns)), *columns, p.eof_packet(), *rows, end]
    return b"".join(p.frame(packet, seq + i)[0] for i, packet in enumerate(packets))


def test_a_result_buffered_whole_is_scanned_in_one_call():
    definitions = [b"\x03def\x02db\x01t\x01t\x02id\x02id\x0c" + bytes(12), b"column two"]
    rows = [_row([b"1", b"x" * 300]), _row([None, b""])]
    data = b"ab" + _result(definitions, rows, p.eof_packet(0x0022))
    scanned = native_scan_result(data, 2, 1)
    header_end = 2 + len(_result(definitions, [], b"")) - 4  # without the empty end packet
    rows_end = len(data) - 4 - len(p.eof_packet(0x0022))
    assert scanned == (b"\x00".join(definitions), header_end, rows_end, 2, len(data), True)
    assert native_scan_result(data, 2, 7)[5] is False  # numbered otherwise: not as it came


def test_results_not_buffered_whole_or_without_rows_are_not_scanned():
    whole = _result([b"c1", b"c2"], [_row([b"1", b"2"])], p.err_packet(1317, "70100", "stop"))
    assert native_scan_result(whole, 0, 1)[3] == 1  # an ERR ends the rows too
    for cut in (1, 5, len(whole) - 20, len(whole) - 1):
        assert native_scan_result(whole[:cut], 0, 1) is None
    for other in (p.ok_packet(), p.err_packet(1064, "42000", "no"), b"\xfbfile.csv"):
        assert native_scan_result(p.frame(other, 1)[0], 0, 1) is None
    split = _result([b"c1"], [p.lenenc_str(b"v" * p.MAX_PACKET)], p.eof_packet())
    assert native_scan_result(split, 0, 1) is None


# Binary protocol: tiny, short, long, float, double, NULL, timestamp, longlong, int24,
# date, time, datetime, year, decimal, bit, json, blob, varchar, string.
BINARY_TYPES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 246, 16, 245, 252, 253, 254]
_FIXED = {1: 1, 2: 2, 3: 4, 4: 4, 5: 8, 6: 0, 8: 8, 9: 4, 13: 2}


def _binary_value(rng: random.Random, column_type: int) -> bytes:
    if column_type in _FIXED:
        return rng.randbytes(_FIXED[column_type])
    if column_type in (7, 10, 11, 12):  # a length byte, then that many bytes
        length = rng.choice([0, 4, 7, 8, 11, 12] if column_type != 11 else [0, 8, 12])
        return bytes((length,)) + rng.randbytes(length)
    value = rng.choice([v for v in VALUES if v is not None])
    return p.lenenc_str(value)


def _binary_row(rng: random.Random, types: list[int]) -> bytes:
    bitmap = bytearray((len(types) + 9) // 8)
    values = []
    for index, column_type in enumerate(types):
        if rng.random() < 0.2:
            bitmap[(index + 2) // 8] |= 1 << ((index + 2) % 8)
        else:
            values.append(_binary_value(rng, column_type))
    return b"\x00" + bytes(bitmap) + b"".join(values)


def _binary_reference(rows: list[bytes], masks: list[Mask | None], types: list[int], seq: int):
    return b"".join(
        p.frame(mask_binary_row(row, masks, types, KEY), seq + i)[0] for i, row in enumerate(rows)
    )


def _native_binary(data: bytes, pos: int, seq: int, masks: list[Mask | None], types: list[int]):
    assert native_mask_binary_rows is not None, "build the extension"
    row_mask = native_row_mask(masks, types)
    return native_mask_binary_rows(data, pos, seq, row_mask, bytes(types), KEY)


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
@pytest.mark.parametrize("seed", range(24))
def test_native_rows_equal_the_python_masking_over_many_shapes(seed: int, binary: bool):
    rng = random.Random(seed)
    columns = rng.randint(1, 18 if binary else 6)
    types = [rng.choice(BINARY_TYPES if binary else TYPES) for _ in range(columns)]
    masks = [rng.choice([None, *METHODS]) for _ in range(columns)]
    masks[rng.randrange(columns)] = rng.choice(METHODS)  # at least one masked column
    if binary:
        rows = [_binary_row(rng, types) for _ in range(rng.randint(1, 30))]
    else:
        rows = [_row([rng.choice(VALUES) for _ in types]) for _ in range(rng.randint(1, 40))]
    seq = rng.randint(0, 300)
    end_packet = p.eof_packet() if seed % 2 else p.err_packet(1054, "42S22", "boom")
    data = b"\x01\x02" + _packets(rows, seq) + p.frame(end_packet, seq + len(rows))[0]
    if binary:
        masked, end, count, next_seq, sent = _native_binary(data, 2, seq, masks, types)
        expected = _binary_reference(rows, masks, types, seq)
    else:
        masked, end, count, next_seq, sent = _native(data, 2, seq, masks, types)
        expected = _reference(rows, masks, types, seq)
    assert masked == expected
    assert (end, count, next_seq) == (len(data) - 4 - len(end_packet), len(rows), seq + len(rows))
    assert sent == len(expected) - 4 * len(rows)


@pytest.mark.parametrize("mask", METHODS, ids=lambda m: f"{m.method}-{m.param}")
@pytest.mark.parametrize("column_type", BINARY_TYPES)
def test_every_method_on_every_binary_type_matches_python(mask: Mask, column_type: int):
    rng = random.Random(column_type)
    types = [3, column_type, 253]
    masks: list[Mask | None] = [None, mask, None]
    rows = [_binary_row_without_null(rng, types) for _ in range(30)]
    data = _packets(rows, 1)
    masked, end, count, _, _ = _native_binary(data, 0, 1, masks, types)
    assert (masked, end, count) == (_binary_reference(rows, masks, types, 1), len(data), 30)


def _binary_row_without_null(rng: random.Random, types: list[int]) -> bytes:
    values = b"".join(_binary_value(rng, t) for t in types)
    return b"\x00" + bytes((len(types) + 9) // 8) + values


def test_a_malformed_binary_row_raises_instead_of_passing_unmasked():
    row = b"\x00\x00" + b"\x01\x00\x00\x00" + b"\x20abc"  # a varchar longer than the row
    with pytest.raises(ValueError):
        _native_binary(p.frame(row, 1)[0], 0, 1, [None, Mask("redact")], [3, 253])


def _read_all(agent: Any, sql: str) -> list[list[tuple[Any, ...]]]:
    multi = pymysql.constants.CLIENT.MULTI_STATEMENTS
    results = []
    with agent.connect("alice", client_flag=multi) as conn, conn.cursor() as cursor:
        for _ in range(2):  # the second time every result's masks are cached
            cursor.execute(sql)
            results.append(list(cursor.fetchall()))
            while cursor.nextset():
                results.append(list(cursor.fetchall()))
    return results


def test_the_agent_relays_the_same_rows_with_and_without_the_native_path(
    agent_factory: Any, tmp_path: Path
):
    sql = (
        "SELECT id, name, email, phone, card, birth_date, `Secret Note` FROM customers "
        "ORDER BY id; SELECT c.email, c.card, d.id FROM customers d LEFT JOIN customers c "
        "ON c.id = d.id + 15 ORDER BY d.id; SELECT a.email, b.phone, a.id, b.id FROM "
        "customers a CROSS JOIN customers b ORDER BY a.id, b.id; SELECT 1; "
        "SELECT id FROM customers WHERE id < 0"
    )
    native = _read_all(agent_factory(), sql)
    python = _read_all(agent_factory(native=False, state_dir=tmp_path / "python"), sql)
    assert native == python
    assert [len(result) for result in native] == [20, 20, 400, 1, 0] * 2
    assert native[0][0][2] == "****@example.com" and native[0][0][6] == "****"
    assert native[1][0][0] == "****@example.com" and native[1][-1][:2] == (None, None)


def _read_binary(agent: Any, database: str) -> list[tuple[Any, ...]]:
    conn = mariadb.connect(
        host="127.0.0.1",
        port=agent.port,
        user="alice",
        password="wdn_alice",
        database=database,
        ssl=False,
    )
    rows = []
    # Binary rows answering COM_STMT_EXECUTE, twice (then its masks are cached).  Rows by
    # COM_STMT_FETCH: test_mysql_cursor_fetch.py (Connector/C would block this thread's agent).
    for _ in range(2):
        cursor = conn.cursor(binary=True)
        cursor.execute(
            "SELECT id, name, email, phone, card, birth_date, `Secret Note`, UPPER(email) "
            "FROM customers WHERE id < ? ORDER BY id",
            (100,),
        )
        rows += cursor.fetchall()
        cursor.close()
    conn.close()
    return rows


def test_the_agent_relays_the_same_binary_rows_with_and_without_the_native_path(
    agent_factory: Any, mysql_database: str, tmp_path: Path
):
    native = _read_binary(agent_factory(), mysql_database)
    python = _read_binary(agent_factory(native=False, state_dir=tmp_path / "py"), mysql_database)
    assert native == python and len(native) == 40
    assert native[0][2] == "****@example.com" and native[0][7] == "****"
    assert str(native[0][5]).endswith("-01-01")  # year: January 1st
