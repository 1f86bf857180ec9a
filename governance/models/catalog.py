"""Identities, datasources, the catalog (schema → table → column) and the tag taxonomy."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q


class Role(models.TextChoices):
    ADMIN = "admin"
    REVIEWER = "reviewer"
    AUDITOR = "auditor"
    REQUESTER = "requester"


class User(AbstractUser):
    """A person, or an AI agent's service account (which never logs in with a password)."""

    is_service_account = models.BooleanField(default=False)
    description = models.CharField(max_length=300, blank=True)

    def has_role(self, role: str) -> bool:
        if self.is_superuser and role == Role.ADMIN:
            return True
        return role in self.role_names

    @property
    def role_names(self) -> set[str]:
        cached = getattr(self, "_role_names", None)
        if cached is None:
            cached = set(self.groups.values_list("name", flat=True))
            if self.is_superuser:
                cached.add(Role.ADMIN)
            self._role_names = cached
        return cached


class AccessToken(models.Model):
    """A personal access token; only its SHA-256 is stored, the secret is shown once.

    ``scopes`` narrow what the token may do (governance.scopes); an ``agent`` token is also
    bound to the datasources it serves.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, db_index=True)
    token_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list, help_text="governance.scopes.Scope values")
    datasources: models.ManyToManyField[DataSource, Any] = models.ManyToManyField(
        "DataSource",
        blank=True,
        related_name="agent_tokens",
        help_text="The datasources an agent token serves (agent scope only)",
    )
    rotated_from = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="rotated_to"
    )
    issued_with_mfa = models.BooleanField(
        default=False,
        help_text="Created by its owner from a credential that passed MFA (governance.mfa)",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.user} · {self.name} ({self.prefix}…)"

    @property
    def is_agent(self) -> bool:
        return "agent" in self.scopes


class Engine(models.TextChoices):
    POSTGRESQL = "postgresql", "PostgreSQL"
    MYSQL = "mysql", "MySQL / MariaDB"
    SQLITE = "sqlite", "SQLite"


class Sensitivity(models.IntegerChoices):
    PUBLIC = 0, "public"
    INTERNAL = 1, "internal"
    CONFIDENTIAL = 2, "confidential"
    RESTRICTED = 3, "restricted"


# Said in words instead of Django's 'Enter a valid "slug" …' (forms and the API alike).
DATASOURCE_NAME_RULE = (
    "Use only letters, digits, hyphens and underscores, without spaces (for example shop-prod)."
)


class DataSource(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    description = models.CharField(max_length=300, blank=True)
    engine = models.CharField(max_length=20, choices=Engine.choices)
    host = models.CharField(max_length=255, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True)
    database = models.CharField(max_length=500, help_text="Database name, or file path for SQLite")
    username = models.CharField(max_length=150, blank=True)
    password_encrypted = models.TextField(blank=True)
    options = models.JSONField(default=dict, blank=True)
    default_sensitive_action = models.CharField(max_length=20, default="mask")
    default_mask_method = models.CharField(max_length=20, default="redact")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_scanned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def has_password(self) -> bool:
        return bool(self.password_encrypted)


class Tag(models.Model):
    """One entry of the taxonomy (loaded from data, see governance/taxonomy.json)."""

    name = models.CharField(max_length=100, unique=True)
    category = models.CharField(max_length=50)
    description = models.CharField(max_length=300, blank=True)
    sensitivity = models.IntegerField(choices=Sensitivity.choices)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Table(models.Model):
    datasource = models.ForeignKey(DataSource, on_delete=models.CASCADE, related_name="tables")
    schema_name = models.CharField(max_length=255)
    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=20, default="table")  # table or view
    row_estimate = models.BigIntegerField(null=True, blank=True)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    dropped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["schema_name", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["datasource", "schema_name", "name"], name="table_unique_per_datasource"
            )
        ]

    def __str__(self) -> str:
        return f"{self.schema_name}.{self.name}"

    @property
    def qualified_name(self) -> str:
        return f"{self.schema_name}.{self.name}"


SORT_KEY_SEPARATOR = "\x01"  # sorts before any character a name can hold


def catalog_sort_key(
    *, datasource_name: str, schema_name: str, table_name: str, ordinal: int, column_name: str
) -> str:
    """The catalog's browsing order (datasource, schema, table, position, name) in one string.

    Kept on each column so a page of the catalog is one index range scan (keyset pagination)
    instead of a sort of every column joined to its table and datasource. The separator sorts
    below every character, so "shop" < "shop2" as in a tuple comparison; the name at the end
    makes the key unique (a table's column names are).
    """
    return SORT_KEY_SEPARATOR.join(
        (datasource_name, schema_name, table_name, f"{ordinal:010d}", column_name)
    )


class Column(models.Model):
    table = models.ForeignKey(Table, on_delete=models.CASCADE, related_name="columns")
    name = models.CharField(max_length=255, db_index=True)
    data_type = models.CharField(max_length=255)
    is_nullable = models.BooleanField(default=True)
    ordinal = models.PositiveIntegerField(default=0)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    dropped_at = models.DateTimeField(null=True, blank=True)
    # Set once an admin edits this column's tags: scans never change its tags afterwards.
    curated_at = models.DateTimeField(null=True, blank=True)
    curated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Highest sensitivity among active (suggested or confirmed) tags; kept for fast filters.
    sensitivity = models.IntegerField(choices=Sensitivity.choices, null=True, blank=True)
    last_classified_at = models.DateTimeField(null=True, blank=True)
    # catalog_sort_key(...): written by the catalog sync and on a datasource's rename.
    sort_key = models.CharField(max_length=900, default="", editable=False)

    class Meta:
        ordering = ["table_id", "ordinal"]
        constraints = [
            models.UniqueConstraint(fields=["table", "name"], name="column_unique_per_table")
        ]
        indexes = [
            models.Index(fields=["sensitivity"], name="column_sensitivity_idx"),
            models.Index(fields=["sort_key"], name="column_sort_key_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.table}.{self.name}"


class ColumnChange(models.Model):
    """What a re-scan noticed about the catalog: recorded, never silently lost."""

    class Kind(models.TextChoices):
        ADDED = "added"
        TYPE_CHANGED = "type_changed"
        DROPPED = "dropped"
        REAPPEARED = "reappeared"

    column = models.ForeignKey(Column, on_delete=models.CASCADE, related_name="changes")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    old_value = models.CharField(max_length=255, blank=True)
    new_value = models.CharField(max_length=255, blank=True)
    scan_run = models.ForeignKey(
        "classification.ScanRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField()

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.column_id} {self.kind} at {self.at:%Y-%m-%d %H:%M}"


class ColumnTag(models.Model):
    class Source(models.TextChoices):
        SCAN = "scan"
        ADMIN = "admin"

    class State(models.TextChoices):
        SUGGESTED = "suggested"
        CONFIRMED = "confirmed"
        REJECTED = "rejected"

    column = models.ForeignKey(Column, on_delete=models.CASCADE, related_name="column_tags")
    tag = models.ForeignKey(Tag, on_delete=models.PROTECT, related_name="column_tags")
    source = models.CharField(max_length=10, choices=Source.choices)
    state = models.CharField(max_length=10, choices=State.choices)
    confidence = models.FloatField(null=True, blank=True)
    evidence = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-confidence"]
        constraints = [
            models.UniqueConstraint(fields=["column", "tag"], name="one_tag_per_column"),
            models.CheckConstraint(
                condition=Q(confidence__isnull=True) | Q(confidence__gte=0, confidence__lte=1),
                name="confidence_between_0_and_1",
            ),
        ]
        indexes = [models.Index(fields=["state", "tag"], name="columntag_state_tag_idx")]

    def __str__(self) -> str:
        return f"{self.column} → {self.tag} ({self.state})"
