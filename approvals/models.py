"""Access requests, reviews and time-bound grants.

Only `approvals.services` writes these rows (see STYLE.md); the database keeps the
invariants it can: one review per reviewer and request, one pending agent request per
identity and statement shape, positive durations and quorums.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Q
from django.utils import timezone

from governance.models import DataSource


class AccessLevel(models.TextChoices):
    READ = "read", "Read (masked)"
    READ_UNMASKED = "read_unmasked", "Read unmasked"
    WRITE = "write", "Write"


# The settings an admin changes on a review policy (besides its reviewer groups).
REVIEW_POLICY_FIELDS = (
    "required_approvals",
    "pending_expiry_minutes",
    "max_grant_minutes",
    "expiry_warning_minutes",
    "break_glass_enabled",
    "break_glass_minutes",
    "webhook_url",
    "webhook_slack",
    "notify_emails",
)


class DatasourceReviewPolicy(models.Model):
    """Who reviews a datasource's requests and how; absent → global reviewers, quorum 1."""

    datasource = models.OneToOneField(
        DataSource, on_delete=models.CASCADE, related_name="review_policy"
    )
    reviewer_groups = models.ManyToManyField(Group, blank=True, related_name="+")
    required_approvals = models.PositiveSmallIntegerField(default=1)
    pending_expiry_minutes = models.PositiveIntegerField(default=24 * 60)
    # Capped by settings.WARDEN_MAX_GRANT_MINUTES; null means "the setting".
    max_grant_minutes = models.PositiveIntegerField(null=True, blank=True)
    expiry_warning_minutes = models.PositiveIntegerField(default=15)
    break_glass_enabled = models.BooleanField(default=False)
    break_glass_minutes = models.PositiveIntegerField(default=60)
    webhook_url = models.URLField(blank=True)
    webhook_slack = models.BooleanField(default=False, help_text='Send {"text": ...} payloads')
    notify_emails = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(required_approvals__gte=1), name="review_policy_quorum_positive"
            ),
            models.CheckConstraint(
                condition=Q(pending_expiry_minutes__gte=1), name="review_policy_expiry_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"review policy of {self.datasource}"


class AccessRequest(models.Model):
    class State(models.TextChoices):
        # One vocabulary: a statement is "Blocked" by a rule, a request is "Rejected" by a
        # reviewer. The stored and API values stay "denied"/"deny" for compatibility.
        PENDING = "pending"
        APPROVED = "approved"
        DENIED = "denied", "Rejected"
        EXPIRED = "expired"
        CANCELLED = "cancelled"
        REVOKED = "revoked"

    class Origin(models.TextChoices):
        WEB = "web"
        API = "api"
        AGENT = "agent"
        BREAK_GLASS = "break_glass"

    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="access_requests"
    )
    # Who filed it: the requester, or the enforcement agent acting for `requester`.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    origin = models.CharField(max_length=20, choices=Origin.choices, default=Origin.WEB)
    datasource = models.ForeignKey(
        DataSource, on_delete=models.CASCADE, related_name="access_requests"
    )
    scope = models.JSONField(default=dict)  # {"tables": [...], "columns": [...], "tags": [...]}
    level = models.CharField(max_length=20, choices=AccessLevel.choices)
    reason = models.TextField()
    duration_minutes = models.PositiveIntegerField()
    statement = models.TextField(blank=True)
    statement_fingerprint = models.CharField(max_length=64, blank=True, db_index=True)
    risk = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING)
    extends_grant = models.ForeignKey(
        "Grant", null=True, blank=True, on_delete=models.PROTECT, related_name="extensions"
    )
    is_break_glass = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(help_text="A pending request expires at this time")
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(duration_minutes__gte=1), name="access_request_duration_positive"
            ),
            models.CheckConstraint(condition=~Q(reason=""), name="access_request_reason_required"),
            models.UniqueConstraint(
                fields=["requester", "datasource", "statement_fingerprint"],
                condition=Q(state="pending") & ~Q(statement_fingerprint=""),
                name="one_pending_request_per_statement_shape",
            ),
        ]
        indexes = [models.Index(fields=["state", "expires_at"], name="access_request_due_idx")]

    def __str__(self) -> str:
        return f"request #{self.pk} by {self.requester} on {self.datasource}"

    @property
    def is_pending(self) -> bool:
        return self.state == self.State.PENDING


class Review(models.Model):
    class Decision(models.TextChoices):
        APPROVE = "approve"
        DENY = "deny", "Reject"

    request = models.ForeignKey(AccessRequest, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    decision = models.CharField(max_length=10, choices=Decision.choices)
    comment = models.TextField(blank=True)
    narrowed_scope = models.JSONField(null=True, blank=True)
    narrowed_duration_minutes = models.PositiveIntegerField(null=True, blank=True)
    # Statement-bound approval: only the request's statement shape, at most max_runs times.
    statement_only = models.BooleanField(default=False)
    max_runs = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["request", "reviewer"], name="one_review_per_reviewer"),
        ]

    def __str__(self) -> str:
        return f"{self.decision} by {self.reviewer} on #{self.request_id}"


class Grant(models.Model):
    request = models.OneToOneField(AccessRequest, on_delete=models.PROTECT, related_name="grant")
    grantee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="grants"
    )
    datasource = models.ForeignKey(DataSource, on_delete=models.CASCADE, related_name="grants")
    scope = models.JSONField(default=dict)
    level = models.CharField(max_length=20, choices=AccessLevel.choices)
    statement_fingerprint = models.CharField(max_length=64, null=True, blank=True)
    max_runs = models.PositiveIntegerField(null=True, blank=True)
    # Runs counted by the agents (all of them, across restarts) against max_runs.
    runs_used = models.PositiveIntegerField(default=0)
    is_break_glass = models.BooleanField(default=False)
    starts_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    revoke_reason = models.TextField(blank=True)
    expiry_recorded_at = models.DateTimeField(null=True, blank=True)
    warned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-starts_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(expires_at__gt=models.F("starts_at")), name="grant_ends_after_start"
            ),
            models.CheckConstraint(
                condition=Q(max_runs__isnull=True) | Q(max_runs__gte=1),
                name="grant_max_runs_positive",
            ),
        ]
        indexes = [models.Index(fields=["datasource", "expires_at"], name="grant_live_idx")]

    def __str__(self) -> str:
        return f"grant #{self.pk} for {self.grantee} on {self.datasource}"

    def is_live(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and self.starts_at <= now < self.expires_at

    @property
    def granted_minutes(self) -> int:
        """The duration actually given (a reviewer may have shortened the request's)."""
        return round((self.expires_at - self.starts_at).total_seconds() / 60)

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "live" if self.is_live() else "expired"
