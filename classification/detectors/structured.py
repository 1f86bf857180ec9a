"""JSON columns: each key path becomes a virtual column, classified like any other.

``{"contact": "a@b.com", "newsletter": true}`` yields ``preferences.contact`` with the
e-mail addresses, so value detectors see whole values and the key name acts as a name hint.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from .base import MAX_VALUES_PER_COLUMN, ColumnSample

MAX_PATHS = 32
MAX_DEPTH = 4


def _parse(value: object, json_typed: bool) -> object:
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", errors="replace")
    if json_typed and isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            return None
    return value


def _walk(node: object, path: str, depth: int, out: dict[str, list[object]]) -> None:
    if depth > MAX_DEPTH:
        return
    if isinstance(node, dict):
        for key, child in list(node.items())[:MAX_PATHS]:
            _walk(child, f"{path}.{key}" if path else str(key), depth + 1, out)
    elif isinstance(node, list | tuple):
        for child in node[:20]:
            _walk(child, f"{path}[]", depth + 1, out)
    elif node is not None and path and (path in out or len(out) < MAX_PATHS):
        values = out.setdefault(path, [])
        if len(values) < MAX_VALUES_PER_COLUMN:
            values.append(node)


def json_children(sample: ColumnSample) -> Iterator[tuple[str, ColumnSample]]:
    """(path, virtual column) for every key path of the JSON documents in ``sample``."""
    json_typed = "json" in sample.data_type.lower()
    paths: dict[str, list[object]] = {}
    documents = 0
    for value in sample.values[:MAX_VALUES_PER_COLUMN]:
        parsed = _parse(value, json_typed)
        if isinstance(parsed, dict | list):
            documents += 1
            _walk(parsed, "", 0, paths)
    if documents == 0:
        return
    for path, values in paths.items():
        leaf = path.replace("[]", "").rsplit(".", 1)[-1] or sample.name
        yield (
            path,
            ColumnSample(
                name=f"{sample.name}_{leaf}",
                data_type="text",
                values=[v if isinstance(v, str) else json.dumps(v) for v in values],
                table=sample.table,
            ),
        )
