"""The fast hashing paths agree with the canonical definition the offline verifier uses."""

from __future__ import annotations

import pytest

from audit.hashing import (
    HASHED_FIELDS,
    SORTED_FIELDS,
    canonical_text,
    event_hash,
    sorted_row_hash,
)

CONTENTS = [
    {"details": {}, "actor": "ada"},
    {"details": {"b": 1, "a": [1, 2.5, None, True], "ü": "naïve — ✓"}, "actor": 'quote " back \\'},
    {"details": {"nested": {"z": {"y": "\n\t\u0001"}}}, "target_repr": "line\nbreak"},
]


def _content(overrides: dict) -> dict:
    content = {field: "" for field in HASHED_FIELDS}
    content.update(id="7d0c6f2e-1111-4222-8333-444455556666", sequence=42, details={})
    content.update(overrides)
    return content


@pytest.mark.parametrize("overrides", CONTENTS)
def test_the_spliced_row_hash_equals_the_canonical_event_hash(overrides):
    content = _content(overrides)
    row = [
        canonical_text(content[name]) if name == "details" else content[name]
        for name in SORTED_FIELDS
    ]

    assert sorted_row_hash(row) == event_hash(content)


def test_any_change_to_a_hashed_field_changes_the_hash():
    content = _content({})
    original = event_hash(content)
    for field in HASHED_FIELDS:
        changed = dict(content)
        changed[field] = {"x": 1} if field == "details" else (43 if field == "sequence" else "x")
        assert event_hash(changed) != original, field


def test_canonical_json_refuses_nan():
    with pytest.raises(ValueError):
        canonical_text({"value": float("nan")})
