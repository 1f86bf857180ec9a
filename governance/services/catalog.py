"""Everything that changes datasources and the catalog's tags. Each service audits itself."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max, ProtectedError, Value
from django.db.models.functions import Concat, Substr
from django.utils import timezone

from audit.services import event_record
from config.errors import InvalidInput, NotAllowed, StateConflict
from governance.connectors import ConnectorError, connector_for
from governance.crypto import encrypt_secret
from governance.models import Column, ColumnTag, DataSource, Engine, Role, Tag, User

DATASOURCE_FIELDS = ("name", "description", "engine", "host", "port", "database", "username")


def _require_admin(actor: User) -> None:
    if not actor.has_role(Role.ADMIN):
        raise NotAllowed("Only admins manage datasources and tags.")


def _validate_sqlite_path(database: str) -> None:
    """A SQLite datasource is a plain file path inside WARDEN_SQLITE_DIRS (symlinks resolved)."""
    allowed = [Path(directory).resolve() for directory in settings.WARDEN_SQLITE_DIRS]
    where = ", ".join(str(directory) for directory in allowed) or "(none configured)"
    if database.startswith("file:") or ":memory:" in database:
        raise InvalidInput("database must be a SQLite file path, not a URI", field="database")
    path = Path(database).resolve()
    if not any(path.is_relative_to(directory) for directory in allowed):
        raise InvalidInput(
            f"database: SQLite files must be inside WARDEN_SQLITE_DIRS ({where})", field="database"
        )


def _validate_datasource(values: dict[str, Any]) -> None:
    if values.get("engine") not in Engine.values:
        raise InvalidInput(f"engine must be one of {', '.join(Engine.values)}")
    if not values.get("database"):
        raise InvalidInput("database is required (the file path for SQLite)")
    if values["engine"] == Engine.SQLITE:
        _validate_sqlite_path(str(values["database"]))
    if values["engine"] != Engine.SQLITE and not values.get("host"):
        raise InvalidInput("host is required for PostgreSQL and MySQL/MariaDB")
    port = values.get("port")
    if port is not None and not (0 < int(port) < 65536):
        raise InvalidInput("port must be between 1 and 65535")


def datasource_create(*, actor: User, password: str = "", **values: Any) -> DataSource:
    _require_admin(actor)
    _validate_datasource(values)
    with transaction.atomic():
        datasource = DataSource.objects.create(
            **{key: values.get(key) for key in DATASOURCE_FIELDS if key in values},
            options=values.get("options") or {},
            password_encrypted=encrypt_secret(password),
            created_by=actor,
        )
        event_record(
            actor=actor,
            action="datasource.created",
            target=datasource,
            datasource=datasource,
            details={"after": datasource_public_fields(datasource)},
        )
    return datasource


def datasource_update(
    *, actor: User, datasource: DataSource, password: str | None = None, **values: Any
) -> DataSource:
    """Update fields; `password=None` keeps the stored one, "" clears it."""
    _require_admin(actor)
    merged = {**{key: getattr(datasource, key) for key in DATASOURCE_FIELDS}, **values}
    _validate_datasource(merged)
    with transaction.atomic():
        before = datasource_public_fields(datasource)
        old_name = datasource.name
        for key in DATASOURCE_FIELDS:
            if key in values:
                setattr(datasource, key, values[key])
        if "options" in values:
            datasource.options = values["options"] or {}
        if password is not None:
            datasource.password_encrypted = encrypt_secret(password)
        datasource.save()
        if datasource.name != old_name:
            _column_sort_keys_rename(datasource=datasource, old_name=old_name)
        event_record(
            actor=actor,
            action="datasource.updated",
            target=datasource,
            datasource=datasource,
            details={
                "before": before,
                "after": datasource_public_fields(datasource),
                "password_changed": password is not None,
            },
        )
    return datasource


def _column_sort_keys_rename(*, datasource: DataSource, old_name: str) -> None:
    """The catalog's sort keys start with the datasource's name (catalog_sort_key)."""
    Column.objects.filter(table__datasource=datasource).update(
        sort_key=Concat(Value(datasource.name), Substr("sort_key", len(old_name) + 1))
    )


def datasource_delete(*, actor: User, datasource: DataSource) -> None:
    _require_admin(actor)
    with transaction.atomic():
        event_record(
            actor=actor,
            action="datasource.deleted",
            target=datasource,
            datasource=datasource,
            details={"before": datasource_public_fields(datasource)},
        )
        try:
            datasource.delete()
        except ProtectedError as exc:
            raise StateConflict(
                f"{datasource.name} has access requests or grants; they keep it for the audit."
            ) from exc


def datasource_public_fields(datasource: DataSource) -> dict[str, Any]:
    """What may be shown or audited about a datasource: never the password."""
    fields = {key: getattr(datasource, key) for key in DATASOURCE_FIELDS}
    fields["has_password"] = datasource.has_password
    return fields


def datasource_test_connection(*, actor: User, datasource: DataSource) -> tuple[bool, str]:
    """Try to connect; returns (ok, server version or the reason it failed)."""
    connector = connector_for(datasource)
    try:
        version = connector.test()
        ok, message = True, version
    except ConnectorError as exc:
        ok, message = False, str(exc)
    finally:
        connector.close()
    event_record(
        actor=actor,
        action="datasource.connection_tested",
        target=datasource,
        datasource=datasource,
        decision="ok" if ok else "failed",
        details={"message": message},
    )
    return ok, message


# --- Tag curation -------------------------------------------------------------------------


def column_sensitivity_refresh(*, columns: Iterable[Column]) -> None:
    """Recompute each column's highest active-tag sensitivity (used by filters and bundles)."""
    column_ids = [column.pk for column in columns]
    levels = dict(
        ColumnTag.objects.filter(column_id__in=column_ids)
        .exclude(state=ColumnTag.State.REJECTED)
        .values("column_id")
        .annotate(level=Max("tag__sensitivity"))
        .values_list("column_id", "level")
    )
    by_level: dict[int | None, list[int]] = {}
    for column_id in column_ids:
        by_level.setdefault(levels.get(column_id), []).append(column_id)
    for level, ids in by_level.items():
        Column.objects.filter(pk__in=ids).update(sensitivity=level)


def _mark_curated(actor: User, column: Column) -> None:
    column.curated_at = timezone.now()
    column.curated_by = actor
    column.save(update_fields=["curated_at", "curated_by"])


def _tag_snapshot(column: Column) -> list[dict[str, Any]]:
    return [
        {"tag": column_tag.tag.name, "state": column_tag.state, "source": column_tag.source}
        for column_tag in column.column_tags.select_related("tag").order_by("tag__name")
    ]


def column_tag_set_state(
    *, actor: User, column: Column, tag: Tag, state: str, comment: str = ""
) -> ColumnTag:
    """Add (as confirmed), confirm or reject a tag on a column; the column becomes curated."""
    _require_admin(actor)
    if state not in (ColumnTag.State.CONFIRMED, ColumnTag.State.REJECTED):
        raise InvalidInput("state must be confirmed or rejected")
    with transaction.atomic():
        before = _tag_snapshot(column)
        column_tag, created = ColumnTag.objects.get_or_create(
            column=column,
            tag=tag,
            defaults={"source": ColumnTag.Source.ADMIN, "state": state, "evidence": {}},
        )
        column_tag.state = state
        column_tag.reviewed_by = actor
        column_tag.reviewed_at = timezone.now()
        column_tag.save()
        _mark_curated(actor, column)
        column_sensitivity_refresh(columns=[column])
        event_record(
            actor=actor,
            action="tag.added" if created else f"tag.{state}",
            target=column,
            datasource=column.table.datasource,
            details={
                "tag": tag.name,
                "comment": comment,
                "before": before,
                "after": _tag_snapshot(column),
            },
        )
    return column_tag


def column_tag_remove(*, actor: User, column: Column, tag: Tag, comment: str = "") -> None:
    """Remove a tag. The column becomes curated, so a later scan does not bring it back."""
    _require_admin(actor)
    with transaction.atomic():
        before = _tag_snapshot(column)
        deleted, _ = ColumnTag.objects.filter(column=column, tag=tag).delete()
        if not deleted:
            raise InvalidInput(f"{column} has no tag {tag.name}")
        _mark_curated(actor, column)
        column_sensitivity_refresh(columns=[column])
        event_record(
            actor=actor,
            action="tag.removed",
            target=column,
            datasource=column.table.datasource,
            details={"tag": tag.name, "comment": comment, "before": before, "after": []},
        )


def column_tags_bulk_review(*, actor: User, column_tag_ids: list[int], state: str) -> int:
    """Confirm or reject many suggestions at once; returns how many were changed."""
    _require_admin(actor)
    column_tags = ColumnTag.objects.select_related("column__table__datasource", "tag").filter(
        pk__in=column_tag_ids
    )
    count = 0
    with transaction.atomic():
        for column_tag in column_tags:
            column_tag_set_state(
                actor=actor, column=column_tag.column, tag=column_tag.tag, state=state
            )
            count += 1
    return count
