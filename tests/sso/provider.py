"""Start the test OpenID Connect provider (tests/sso/oidc_provider.py) as a real process.

Shared by the browser test and bench/sso.py: the provider needs Warden's callback URL, and
Warden's settings need the provider's URL, so Warden's live server starts first.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.processes import Process, answers, free_port, wait_until

PROVIDER_SCRIPT = Path(__file__).with_name("oidc_provider.py")
PROVIDER_ID = "corp"
PROVIDER_NAME = "Corp SSO"
CLIENT_ID = "warden-test-client"
CLIENT_SECRET = "warden-test-client-secret"


@dataclass
class IdentityProvider:
    url: str
    users_path: Path
    process: Process

    def users_set(self, users: dict[str, dict[str, Any]]) -> None:
        """Replace the provider's users; it reads the file again at every request."""
        self.users_path.write_text(json.dumps(users))

    def allauth_settings(self) -> dict[str, Any]:
        """SOCIALACCOUNT_PROVIDERS as config/oidc.py builds it from WARDEN_OIDC_PROVIDERS."""
        from config.oidc import oidc_providers_parse

        [provider] = oidc_providers_parse(
            json.dumps(
                [
                    {
                        "id": PROVIDER_ID,
                        "name": PROVIDER_NAME,
                        "server_url": self.url,
                        "client_id": CLIENT_ID,
                        "secret": CLIENT_SECRET,
                        "scopes": ["openid", "profile", "email", "groups"],
                    }
                ]
            )
        )
        return {"openid_connect": {"OAUTH_PKCE_ENABLED": True, "APPS": [provider.allauth_app()]}}


@contextmanager
def oidc_provider(*, warden_url: str, work_dir: Path) -> Iterator[IdentityProvider]:
    """Run the provider on a free port for a Warden served at ``warden_url``."""
    port = free_port()
    users_path = work_dir / "idp-users.json"
    users_path.write_text("{}")
    argv = [
        sys.executable,
        str(PROVIDER_SCRIPT),
        f"--port={port}",
        f"--users={users_path}",
        f"--client-id={CLIENT_ID}",
        f"--client-secret={CLIENT_SECRET}",
        f"--redirect-uri={warden_url}/accounts/oidc/{PROVIDER_ID}/login/callback/",
    ]
    # The provider speaks plain HTTP on loopback; authlib refuses that unless told.
    env = {**os.environ, "AUTHLIB_INSECURE_TRANSPORT": "1"}
    process = Process("oidc-provider", argv, env=env, cwd=work_dir, log_dir=work_dir)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: answers(f"{url}/.well-known/openid-configuration"),
            what="the test OIDC provider",
            timeout=30,
            process=process,
        )
        yield IdentityProvider(url=url, users_path=users_path, process=process)
    finally:
        process.stop()
