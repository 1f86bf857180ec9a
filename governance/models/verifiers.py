"""What a challenge-response login needs to know of a token, without the token.

The control plane stores only a SHA-256 of each token, which cannot be turned into the
verifiers SCRAM or MySQL's native authentication need; they are computed once, when the
token's secret is at hand (``governance.token_verifiers``), and served to agents so that
clients never send the token itself (``agent/README.md``).
"""

from __future__ import annotations

from django.db import models

from governance.models.catalog import AccessToken


class TokenVerifier(models.Model):
    token = models.OneToOneField(AccessToken, on_delete=models.CASCADE, related_name="verifier")
    # SCRAM-SHA-256 (RFC 5802/7677); the salt and iterations are the owner's, shared by
    # all of their tokens, so one SCRAM exchange can try every token of an identity.
    scram_salt = models.BinaryField(max_length=32)
    scram_iterations = models.PositiveIntegerField()
    scram_stored_key = models.BinaryField(max_length=32)
    scram_server_key = models.BinaryField(max_length=32)
    # mysql_native_password: SHA1(SHA1(token)).
    mysql_native = models.BinaryField(max_length=20)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(scram_iterations__gte=4096), name="scram_iterations_min_4096"
            )
        ]

    def __str__(self) -> str:
        return f"verifiers of {self.token}"
