"""Verifiers of personal access tokens, so agents check tokens without ever seeing them.

A token's secret is known only at creation (and when a client sends it over TLS); the
control plane keeps its SHA-256, from which no verifier can be derived.  So the verifiers
are made when the secret is at hand: ``token_verifier_create`` is called by
``token_create`` and, for tokens older than verifiers, by the cleartext agent login
(``agent_login_check``) the first time such a token is used.  Tokens that are never used
that way have no verifiers and cannot log in with SCRAM: rotate them (docs in
``agent/README.md``).

SCRAM: every token of one user shares the user's salt and iteration count (copied from the
user's first verifier), so the agent answers the client's first message before it knows
which token the client holds and then checks the proof against each.  The tokens are 256
random bits, so a shared salt costs nothing against guessing.  Unknown identities get a
salt derived from SECRET_KEY and the name: stable, and not telling which names exist.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from scramp import ScramMechanism

from governance.models import AccessToken, TokenVerifier, User
from governance.scopes import Scope

SCRAM_ITERATIONS = 4096  # PostgreSQL's own scram_iterations default
_SCRAM = ScramMechanism("SCRAM-SHA-256")


@dataclass(frozen=True)
class LoginVerifiers:
    identity: str
    salt: bytes
    iterations: int
    tokens: list[TokenVerifier] = field(default_factory=list)
    kind: str = "user"
    groups: list[str] = field(default_factory=list)
    tokens_without_verifier: int = 0


def _decoy_salt(identity: str) -> bytes:
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, b"warden-scram-salt:" + identity.encode(), hashlib.sha256).digest()[:16]


def token_verifier_create(*, token: AccessToken, secret: str) -> TokenVerifier:
    """The token's verifiers, made now from its secret (once: an existing row is kept)."""
    existing = TokenVerifier.objects.filter(token=token).first()
    if existing is not None:
        return existing
    sibling = (
        TokenVerifier.objects.filter(token__user_id=token.user_id)
        .order_by("created_at", "pk")
        .first()
    )
    salt = bytes(sibling.scram_salt) if sibling is not None else None
    iterations = sibling.scram_iterations if sibling is not None else SCRAM_ITERATIONS
    salt, stored_key, server_key, iterations = _SCRAM.make_auth_info(
        secret, iteration_count=iterations, salt=salt
    )
    native = hashlib.sha1(hashlib.sha1(secret.encode()).digest()).digest()
    verifier, _created = TokenVerifier.objects.get_or_create(
        token=token,
        defaults={
            "scram_salt": salt,
            "scram_iterations": iterations,
            "scram_stored_key": stored_key,
            "scram_server_key": server_key,
            "mysql_native": native,
        },
    )
    return verifier


def live_tokens(user: User) -> Q:
    """Tokens of ``user`` that log in now: not revoked, not expired, the user active."""
    now = timezone.now()
    return Q(user=user, revoked_at__isnull=True, user__is_active=True) & (
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    )


def tokens_without_verifier() -> list[AccessToken]:
    """Live tokens that may connect through agents (``query``) but have no SCRAM verifier:
    made before verifiers existed and not used over TLS since. Oldest first."""
    now = timezone.now()
    candidates = (
        AccessToken.objects.filter(revoked_at__isnull=True, user__is_active=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .filter(verifier__isnull=True)
        .select_related("user")
        .order_by("created_at", "pk")
    )
    return [token for token in candidates if Scope.QUERY in token.scopes]


def login_verifiers(*, identity: str) -> LoginVerifiers:
    """What an agent needs to check a login by ``identity`` (agent API: agent/verifiers)."""
    user = User.objects.filter(username=identity, is_active=True).first()
    if user is None:
        return LoginVerifiers(identity, _decoy_salt(identity), SCRAM_ITERATIONS)
    # Only tokens that may query log in through an agent (the scope, not only the secret).
    tokens = [
        token
        for token in AccessToken.objects.filter(live_tokens(user)).select_related("verifier")
        if Scope.QUERY in token.scopes
    ]
    with_verifier = [t.verifier for t in tokens if hasattr(t, "verifier")]
    salt, iterations = _decoy_salt(identity), SCRAM_ITERATIONS
    first = TokenVerifier.objects.filter(token__user=user).order_by("created_at", "pk").first()
    if first is not None:
        salt, iterations = bytes(first.scram_salt), first.scram_iterations
    usable = [
        v for v in with_verifier if bytes(v.scram_salt) == salt and v.scram_iterations == iterations
    ]
    return LoginVerifiers(
        identity=user.get_username(),
        salt=salt,
        iterations=iterations,
        tokens=usable,
        kind="service_account" if user.is_service_account else "user",
        groups=sorted(user.groups.values_list("name", flat=True)),
        tokens_without_verifier=len(tokens) - len(usable),
    )
