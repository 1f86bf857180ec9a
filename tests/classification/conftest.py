from __future__ import annotations

import pytest


@pytest.fixture
def run_scan(django_capture_on_commit_callbacks):
    """Start a scan and run its (after-commit) task chain, as a worker would."""
    from classification.services import scan_start

    def run(actor, datasource):
        with django_capture_on_commit_callbacks(execute=True):
            scan = scan_start(actor=actor, datasource=datasource)
        scan.refresh_from_db()
        return scan

    return run
