"""Where `warden demo` keeps its data without --data-dir: a checkout's var/, or, installed
from the wheel (no manage.py beside the package), the user's data directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from warden_demo.launcher import REPO, default_data_dir, parse_args


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("WARDEN_DATA_DIR", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_a_checkout_keeps_the_demo_in_its_var_directory(home: Path) -> None:
    assert (REPO / "manage.py").is_file()
    assert default_data_dir() == REPO / "var"
    assert (
        parse_args(["--web-port", "0", "--agent-port", "0", "--postgres-port", "0"])[0]
        == (REPO / "var").resolve()
    )


def test_an_installed_wheel_keeps_the_demo_in_the_users_data_directory(
    home: Path, tmp_path: Path
) -> None:
    site_packages = tmp_path / "venv" / "lib" / "site-packages"  # no manage.py there
    site_packages.mkdir(parents=True)
    assert default_data_dir(site_packages) == home / ".local" / "share" / "warden"


def test_xdg_data_home_moves_the_users_data_directory(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_data_dir(tmp_path) == tmp_path / "data" / "warden"


def test_warden_data_dir_wins_over_both(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WARDEN_DATA_DIR", str(tmp_path / "chosen"))
    assert default_data_dir() == tmp_path / "chosen"
    assert default_data_dir(tmp_path) == tmp_path / "chosen"
