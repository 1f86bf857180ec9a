"""manage.py tokens_without_verifiers [--revoke] (or ``warden tokens_without_verifiers``).

Lists the live tokens that may connect through agents but have no SCRAM verifier: they were
made before verifiers existed and have not logged in over TLS since. A token's secret is not
stored, so no verifier can be made for it here. What to do, per token: its owner makes a
new token (or logs in with it once as a cleartext password over TLS, which stores its
verifiers). ``--revoke`` revokes them all (audited, reason "no SCRAM verifier"), for
deployments whose agents accept SCRAM only. Exit status 1 while any are listed and not
revoked, so a deployment check can run it.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from governance.token_verifiers import tokens_without_verifier
from governance.tokens import tokens_without_verifier_revoke


class Command(BaseCommand):
    help = "List (or --revoke) live query tokens that have no SCRAM verifier."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--revoke", action="store_true", help="revoke them (audited)")

    def handle(self, *args: Any, revoke: bool, **options: Any) -> None:
        tokens = tokens_without_verifier_revoke(actor=None) if revoke else tokens_without_verifier()
        if not tokens:
            self.stdout.write(self.style.SUCCESS("every live query token has a SCRAM verifier"))
            return
        for token in tokens:
            last_used = token.last_used_at.isoformat() if token.last_used_at else "never"
            self.stdout.write(
                f"{token.pk}\t{token.user.get_username()}\t{token.name}\t{token.prefix}\t"
                f"created {token.created_at:%Y-%m-%d}\tlast used {last_used}"
            )
        if revoke:
            self.stdout.write(f"revoked {len(tokens)} token(s): their owners make new ones")
            return
        self.stderr.write(
            f"{len(tokens)} token(s) cannot log in with SCRAM: each owner makes a new token "
            "(or logs in once over TLS with it as the password); or run with --revoke"
        )
        raise SystemExit(1)
