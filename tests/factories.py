"""factory_boy factories for Warden's models."""

from __future__ import annotations

import factory
from django.contrib.auth.models import Group
from django.utils import timezone

from governance.crypto import encrypt_secret
from governance.models import Column, ColumnTag, DataSource, Engine, Table, Tag, User
from governance.models.catalog import catalog_sort_key


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password("correct horse battery staple")

    @factory.post_generation
    def roles(self, create: bool, extracted: list[str] | None, **kwargs: object) -> None:
        for role in extracted or []:
            self.groups.add(Group.objects.get_or_create(name=role)[0])


class DataSourceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DataSource

    name = factory.Sequence(lambda n: f"source-{n}")
    engine = Engine.POSTGRESQL
    host = "127.0.0.1"
    port = 5432
    database = "test"
    username = "postgres"
    password_encrypted = factory.LazyFunction(lambda: encrypt_secret(""))


class TableFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Table

    datasource = factory.SubFactory(DataSourceFactory)
    schema_name = "public"
    name = factory.Sequence(lambda n: f"table_{n}")
    row_estimate = 100
    first_seen_at = factory.LazyFunction(timezone.now)
    last_seen_at = factory.LazyFunction(timezone.now)


class ColumnFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Column

    table = factory.SubFactory(TableFactory)
    name = factory.Sequence(lambda n: f"column_{n}")
    data_type = "text"
    ordinal = factory.Sequence(lambda n: n + 1)
    first_seen_at = factory.LazyFunction(timezone.now)
    last_seen_at = factory.LazyFunction(timezone.now)
    sort_key = factory.LazyAttribute(
        lambda column: catalog_sort_key(
            datasource_name=column.table.datasource.name,
            schema_name=column.table.schema_name,
            table_name=column.table.name,
            ordinal=column.ordinal,
            column_name=column.name,
        )
    )


class ColumnTagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ColumnTag

    column = factory.SubFactory(ColumnFactory)
    tag = factory.LazyFunction(lambda: Tag.objects.get(name="PII.Email"))
    source = ColumnTag.Source.SCAN
    state = ColumnTag.State.SUGGESTED
    confidence = 0.9
    evidence = factory.LazyFunction(lambda: {"detectors": ["email"], "match_share": 0.95})
