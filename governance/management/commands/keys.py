"""manage.py keys (or ``warden keys``): key material and rotation, step by step in
docs/deployment.md (key management).

    keys status              the field keys configured; the signing keys' ids (current, next,
                             retired) and public halves; during a rotation, the online
                             agents that do not trust the next key yet
    keys new-field-key       print a new Fernet key (put it first in WARDEN_FIELD_ENCRYPTION_KEY)
    keys rotate-field-key    re-encrypt every stored secret under the newest field key;
                             exit status 1 while something is left under an older key
    keys new-signing-key     print a new Ed25519 private key (for WARDEN_SIGNING_KEY_NEXT),
                             its public key and id
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from governance import crypto
from governance.agent_selectors import agents_not_trusting
from governance.services.keys import field_secrets_rotate, signing_keys_state


class Command(BaseCommand):
    help = "Key material and rotation: status, new-field-key, rotate-field-key, new-signing-key."

    def add_arguments(self, parser: Any) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        actions.add_parser("status", help="the configured keys (ids, never private keys)")
        actions.add_parser("new-field-key", help="print a new Fernet key")
        actions.add_parser("rotate-field-key", help="re-encrypt stored secrets under the newest")
        actions.add_parser("new-signing-key", help="print a new Ed25519 signing key")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        {
            "status": self.status,
            "new-field-key": self.new_field_key,
            "rotate-field-key": self.rotate_field_key,
            "new-signing-key": self.new_signing_key,
        }[action]()

    def status(self) -> None:
        configured = len(settings.FIELD_ENCRYPTION_KEYS)
        self.stdout.write(
            f"field encryption: {configured} key(s) configured, newest first "
            "(+ the key derived from SECRET_KEY, read only)"
        )
        state = signing_keys_state()
        self.stdout.write(f"signing key (current): {state.current['key_id']}")
        self.stdout.write(f"  public key: {state.current['public_key']}")
        if state.next is not None:
            self.stdout.write(f"signing key (next):    {state.next['key_id']}")
            self.stdout.write(f"  public key: {state.next['public_key']}")
            self.agents_waiting(state.next["key_id"])
        for key_id in state.retired:
            self.stdout.write(f"signing key (retired, verifies only): {key_id}")

    def agents_waiting(self, key_id: str) -> None:
        waiting = agents_not_trusting(key_id)
        if not waiting:
            self.stdout.write(
                self.style.SUCCESS("  every online agent trusts it: ready to promote")
            )
            return
        self.stdout.write(f"  {len(waiting)} online agent(s) do not trust it yet (do not promote):")
        for agent in waiting:
            self.stdout.write(
                f"    {agent.datasource.name} {agent.address} (version {agent.version})"
            )

    def new_field_key(self) -> None:
        self.stdout.write(crypto.new_field_key())

    def rotate_field_key(self) -> None:
        rotation = field_secrets_rotate(actor=None)
        self.stdout.write(
            f"re-encrypted {rotation.rotated}, already under the newest key "
            f"{rotation.already_current}, changed meanwhile {rotation.changed_meanwhile}"
        )
        if rotation.unreadable:
            self.stderr.write(
                "no configured key decrypts the password of: " + ", ".join(rotation.unreadable)
            )
        if not rotation.complete:
            self.stderr.write("not complete: keep the older keys and run it again")
            raise SystemExit(1)
        self.stdout.write(self.style.SUCCESS("complete: the older field keys may be removed"))

    def new_signing_key(self) -> None:
        private = crypto.new_signing_key()
        public = crypto.public_key_of(crypto.private_key_load(private, "the new key"))
        self.stdout.write(f"WARDEN_SIGNING_KEY_NEXT={private}")
        self.stdout.write(f"# public key {public}, key id {crypto.key_id_for(public)}")
