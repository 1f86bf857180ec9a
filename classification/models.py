"""Scan runs and their per-table results."""

from django.conf import settings
from django.db import models


class ScanRun(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    datasource = models.ForeignKey(
        "governance.DataSource", on_delete=models.CASCADE, related_name="scan_runs"
    )
    state = models.CharField(max_length=20, choices=State.choices, default=State.QUEUED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    sample_size = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    tables_total = models.PositiveIntegerField(default=0)
    tables_done = models.PositiveIntegerField(default=0)
    tables_failed = models.PositiveIntegerField(default=0)
    columns_classified = models.PositiveIntegerField(default=0)
    tags_suggested = models.PositiveIntegerField(default=0)
    catalog_changes = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["datasource", "-created_at"], name="scanrun_ds_created_idx")
        ]

    def __str__(self) -> str:
        return f"scan #{self.pk} of {self.datasource_id} ({self.state})"

    @property
    def is_finished(self) -> bool:
        return self.state in {self.State.SUCCEEDED, self.State.FAILED}

    @property
    def progress_percent(self) -> int:
        """Tables done; a failed run shows how far it got, not a full bar."""
        if self.state == self.State.SUCCEEDED:
            return 100
        if not self.tables_total:
            return 0
        return int(100 * self.tables_done / self.tables_total)

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class ScanTableResult(models.Model):
    class State(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    scan_run = models.ForeignKey(ScanRun, on_delete=models.CASCADE, related_name="table_results")
    table = models.ForeignKey("governance.Table", on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING)
    rows_sampled = models.PositiveIntegerField(default=0)
    columns_classified = models.PositiveIntegerField(default=0)
    tags_suggested = models.PositiveIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["scan_run", "table"], name="one_result_per_table_per_scan"
            )
        ]

    def __str__(self) -> str:
        return f"{self.table_id} in scan #{self.scan_run_id} ({self.state})"
