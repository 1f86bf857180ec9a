"""Benchmark: an agent's bundle poll with 100k catalogued columns.

    .venv/bin/python bench/bundle.py [--columns 100000]

Uses bench/catalog.py's database (``warden_bench_catalog``: every 7th column tagged). Times,
through the whole Django view with an agent token, a poll answered 304 from the cached bundle
and a poll right after a committed tag change, beside the reference in the same process:
compiling and signing the bundle from the catalog, which is what every poll cost before the
bundle generation existed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.catalog import RUNS, fill, prepare, timed  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--columns", type=int, default=100_000)
    args = parser.parse_args()
    prepare()
    fill(args.columns)
    from rest_framework.test import APIClient

    from governance.models import ColumnTag, DataSource, User
    from governance.services.bundles import policy_bundle_envelope
    from governance.tokens import token_create

    datasource = DataSource.objects.get(name="bench-catalog")
    agent, _ = User.objects.get_or_create(
        username="bench_bundle_agent", defaults={"is_service_account": True}
    )
    admin, _ = User.objects.get_or_create(username="bench-admin", defaults={"is_superuser": True})
    _token, secret = token_create(
        actor=admin, user=agent, name="bench", is_agent=True, datasources=[datasource]
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    url = f"/api/v1/agent/bundle?datasource={datasource.name}"
    first = client.get(url)
    assert first.status_code == 200, first.content[:200]
    etag = first["ETag"]
    tagged = len(first.json()["bundle"]["columns"])

    def unchanged_poll() -> None:
        assert client.get(url, HTTP_IF_NONE_MATCH=etag).status_code == 304

    flip = ColumnTag.objects.filter(column__table__datasource=datasource).first()

    def poll_after_a_change() -> None:
        flip.confidence = 0.5 if flip.confidence != 0.5 else 0.9
        flip.save(update_fields=["confidence"])  # committed: the generation moves
        assert client.get(url).status_code == 200

    def reference() -> None:
        policy_bundle_envelope(datasource=datasource)

    rows = {
        "poll, nothing changed (304, cached)": timed(unchanged_poll),
        "poll after a committed tag edit (200)": timed(poll_after_a_change),
        "reference: compile + sign the bundle": timed(reference),
    }
    print(f"\n== {tagged:,} tagged columns in the bundle; median of {RUNS} runs")
    print(f"{'what':<42} {'ms':>8}")
    for label, milliseconds in rows.items():
        print(f"{label:<42} {milliseconds:8.1f}")


if __name__ == "__main__":
    main()
