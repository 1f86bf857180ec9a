"""warden: pinned dependencies (warden-agent of the same version among them) and the site
files (templates, static, front-end libraries) copied into warden/site/."""

import runpy
import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from pins import pinned  # noqa: E402

VERSION = runpy.run_path(str(HERE / "agent" / "version.py"))["VERSION"]
VENDOR_STATIC = runpy.run_path(str(HERE / "config" / "site.py"))["VENDOR_STATIC"]


class BuildWithSite(build_py):
    """Also copies the checkout's templates/ and static/, and the npm libraries under
    static/vendor/, into warden/site/ (config/site.py)."""

    def run(self) -> None:
        super().run()
        site = Path(self.build_lib) / "warden" / "site"
        shutil.rmtree(site, ignore_errors=True)
        shutil.copytree(HERE / "templates", site / "templates")
        shutil.copytree(HERE / "static", site / "static")
        for prefix, package_dir in VENDOR_STATIC.items():
            source = HERE / "node_modules" / package_dir
            if not source.is_dir():
                raise SystemExit(f"{source} is missing: run npm install in the checkout first")
            shutil.copytree(source, site / "static" / prefix)


setup(
    version=VERSION,
    install_requires=[
        f"warden-agent=={VERSION}",
        *pinned(HERE / "requirements.txt"),
        *pinned(HERE / "requirements-model.txt"),
    ],
    cmdclass={"build_py": BuildWithSite},
)
