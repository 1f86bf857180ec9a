"""Policy rules (who sees what, masked how) and guardrails (which statement kinds are stopped).

Both are compiled into the per-datasource policy bundle (governance.services.bundles) that
the agent enforces. Only the services in governance.services.policies change these rows.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Q

from governance.models.catalog import DataSource, Sensitivity, Tag


class PolicyAction(models.TextChoices):
    ALLOW = "allow", "Allow"
    MASK = "mask", "Mask"
    DENY = "deny", "Block"  # stored as "deny"; people read one word, Block, everywhere
    REQUIRE_APPROVAL = "require_approval", "Require approval"


class MaskMethod(models.TextChoices):
    REDACT = "redact", "Redact (****)"
    LAST_N = "last_n", "Keep last N characters"
    EMAIL = "email", "E-mail (keep domain)"
    HASH = "hash", "Keyed hash (joinable)"
    NULL = "null", "NULL"
    YEAR = "year", "Truncate date to year"
    PARTIAL = "partial", "Partial (keep last N digits, format kept)"


# Methods whose mask_param means something (N characters / digits to keep).
MASK_METHODS_WITH_PARAM = frozenset({MaskMethod.LAST_N, MaskMethod.PARTIAL})


class ResourceKind(models.TextChoices):
    DATASOURCE = "datasource", "Whole datasource"
    SCHEMA = "schema", "Schema"
    TABLE = "table", "Table"
    COLUMN = "column", "Column"
    TAG = "tag", "Columns with tag"
    SENSITIVITY = "sensitivity", "Columns at or above sensitivity"


class GuardrailKind(models.TextChoices):
    DROP = "drop", "DROP"
    TRUNCATE = "truncate", "TRUNCATE"
    ALTER = "alter", "ALTER"
    GRANT_REVOKE = "grant_revoke", "GRANT / REVOKE"
    ROLE = "role", "CREATE / ALTER / DROP ROLE"
    COPY_PROGRAM = "copy_program", "COPY … PROGRAM"
    SERVER_FILE_FUNCTIONS = "server_file_functions", "Server file functions (pg_read_file, …)"
    DO_BLOCK = "do_block", "DO blocks"
    DELETE_WITHOUT_WHERE = "delete_without_where", "DELETE without WHERE"
    UPDATE_WITHOUT_WHERE = "update_without_where", "UPDATE without WHERE"
    MIXED_MULTI_STATEMENT = "mixed_multi_statement", "Reads and writes in one batch"
    ROWS_OVER_LIMIT = "rows_over_limit", "UPDATE / DELETE / MERGE estimated above N rows"


class GuardrailAction(models.TextChoices):
    BLOCK = "block", "Block"
    REQUIRE_APPROVAL = "require_approval", "Require approval"


class PolicyRule(models.Model):
    """For these subjects, on this resource of one datasource, do this.

    Precedence between matching rules is by action (deny > require_approval > mask > allow);
    ``priority`` (higher first) only orders rules of the same action, e.g. which mask
    method wins when two mask rules match one column.
    """

    datasource = models.ForeignKey(
        DataSource, on_delete=models.CASCADE, related_name="policy_rules"
    )
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=300, blank=True)
    priority = models.IntegerField(default=100)
    enabled = models.BooleanField(default=True)
    everyone = models.BooleanField(default=False)
    users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    groups = models.ManyToManyField(Group, blank=True, related_name="+")
    resource_kind = models.CharField(max_length=20, choices=ResourceKind.choices)
    schema_name = models.CharField(max_length=255, blank=True)
    table_name = models.CharField(max_length=255, blank=True)
    column_name = models.CharField(max_length=255, blank=True)
    tag = models.ForeignKey(
        Tag, null=True, blank=True, on_delete=models.PROTECT, related_name="policy_rules"
    )
    # "This level or higher" (see governance.models.Sensitivity).
    sensitivity = models.IntegerField(null=True, blank=True)
    action = models.CharField(max_length=20, choices=PolicyAction.choices)
    mask_method = models.CharField(max_length=20, choices=MaskMethod.choices, blank=True)
    mask_param = models.PositiveIntegerField(null=True, blank=True)
    # Mask rules only: the masked column may be compared for equality with given values
    # (WHERE email = $1, IN, = ANY): support finds a customer by an e-mail it already knows.
    # Every other use that could reveal the value stays refused; each lookup is audited.
    allow_exact_lookups = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["datasource_id", "-priority", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["datasource", "name"], name="policy_rule_name_unique_per_datasource"
            ),
            models.CheckConstraint(
                condition=Q(action__in=PolicyAction.values), name="policy_rule_action_valid"
            ),
            models.CheckConstraint(
                condition=Q(resource_kind__in=ResourceKind.values),
                name="policy_rule_resource_kind_valid",
            ),
            models.CheckConstraint(
                condition=Q(sensitivity__isnull=True) | Q(sensitivity__gte=0, sensitivity__lte=3),
                name="policy_rule_sensitivity_in_range",
            ),
            models.CheckConstraint(
                condition=Q(resource_kind="tag", tag__isnull=False) | ~Q(resource_kind="tag"),
                name="policy_rule_tag_kind_has_tag",
            ),
            models.CheckConstraint(
                condition=Q(resource_kind="sensitivity", sensitivity__isnull=False)
                | ~Q(resource_kind="sensitivity"),
                name="policy_rule_sensitivity_kind_has_level",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.datasource} · {self.name}"

    @property
    def resource_label(self) -> str:
        """The resource as a person reads it, e.g. ``column public.customers.email``."""
        parts = [self.schema_name, self.table_name, self.column_name]
        if self.resource_kind in (ResourceKind.SCHEMA, ResourceKind.TABLE, ResourceKind.COLUMN):
            return f"{self.resource_kind} {'.'.join(part for part in parts if part)}"
        if self.resource_kind == ResourceKind.TAG:
            return f"tag {self.tag.name if self.tag else '?'}"
        if self.resource_kind == ResourceKind.SENSITIVITY and self.sensitivity is not None:
            return f"sensitivity ≥ {Sensitivity(self.sensitivity).label}"
        return "whole datasource"


class GuardrailRule(models.Model):
    """Statement kinds that are blocked or need approval; datasource None = every datasource."""

    datasource = models.ForeignKey(
        DataSource, null=True, blank=True, on_delete=models.CASCADE, related_name="guardrails"
    )
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=300, blank=True)
    kinds = models.JSONField(default=list)
    everyone = models.BooleanField(default=False)
    users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    groups = models.ManyToManyField(Group, blank=True, related_name="+")
    action = models.CharField(max_length=20, choices=GuardrailAction.choices)
    # Kind rows_over_limit only: the planner's estimate of the rows an UPDATE/DELETE/MERGE
    # changes (EXPLAIN, run upstream by the agent before the statement) may not exceed it.
    max_rows = models.PositiveBigIntegerField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(action__in=GuardrailAction.values), name="guardrail_action_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.datasource or 'all datasources'} · {self.name}"


class BundleGeneration(models.Model):
    """One row, moved by every committed write that can change a policy bundle.

    Agents poll their bundle every few seconds; the counter lets a poll answer from the last
    compiled bundle instead of recompiling the whole catalog (governance.services.bundles).
    """

    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"bundle generation {self.value}"
