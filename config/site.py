"""Where the control plane finds its templates, static files and data directory.

A checkout has ``templates/``, ``static/`` and the front-end libraries in ``node_modules/``
at its root. The control plane's wheel (packaging/control-plane) copies the same files into
the ``warden`` package (``warden/site/``), the libraries under ``static/vendor/``, so an
installed control plane serves them without a checkout. This module imports nothing from
Django: the wheel's build reads ``VENDOR_STATIC`` from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Static prefix → the npm package directory (package.json) that holds the files.
VENDOR_STATIC = {
    "vendor/htmx": "htmx.org/dist",
    "vendor/htmx-ext-ws": "htmx-ext-ws/dist",
    "vendor/chartjs": "chart.js/dist",
}


@dataclass(frozen=True)
class SiteLayout:
    templates: Path
    staticfiles_dirs: list[Path | tuple[str, Path]]
    # Where DATA_DIR and STATIC_ROOT default to (the checkout, or the working directory).
    default_root: Path


def site_layout(base_dir: Path) -> SiteLayout:
    """The checkout's layout when ``base_dir`` is one (it has manage.py), else the wheel's."""
    if (base_dir / "manage.py").is_file():
        node_modules = base_dir / "node_modules"
        vendor = [(prefix, node_modules / path) for prefix, path in VENDOR_STATIC.items()]
        return SiteLayout(base_dir / "templates", [base_dir / "static", *vendor], base_dir)
    site = base_dir / "warden" / "site"
    return SiteLayout(site / "templates", [site / "static"], Path.cwd())
