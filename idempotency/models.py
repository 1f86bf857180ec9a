from django.conf import settings
from django.db import models


class IdempotentRequest(models.Model):
    """The first answer to a POST sent with an Idempotency-Key, replayed to its retries."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    key = models.CharField(max_length=200)
    operation = models.CharField(max_length=200, help_text="method and path")
    body_sha256 = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    response = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "operation", "key"], name="idempotent_request_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.operation} {self.key}"
