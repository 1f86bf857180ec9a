"""Test settings: Warden's own database is the machine's real PostgreSQL."""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/warden")
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "warden-test-secret-key-not-for-production-0123456789")
os.environ.setdefault("WARDEN_DATA_DIR", "/tmp/warden-test-data")

from config.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
EAGER_IN_THREAD = False
# Tests keep their SQLite datasources in pytest's temporary directories.
WARDEN_SQLITE_DIRS = [DATA_DIR, Path(tempfile.gettempdir())]  # noqa: F405
