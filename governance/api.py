"""REST API for datasources, the catalog, tags and personal access tokens."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param
from rest_framework.views import APIView

from config.listing import StrictLimitOffsetPagination, StrictOrderingFilter, query_params
from governance import selectors, services
from governance.mfa import credential_passed_mfa
from governance.models import AccessToken, Column, DataSource, Role, Tag
from governance.permissions import CATALOG_READERS, HasRole, IsAdmin
from governance.serializers import (
    AccessTokenSerializer,
    BulkReviewResultSerializer,
    BulkReviewSerializer,
    ColumnQuerySerializer,
    ColumnSerializer,
    ColumnTagWriteSerializer,
    ConnectionResultSerializer,
    DataSourceSerializer,
    TagQuerySerializer,
    TagSerializer,
)
from governance.tokens import DEFAULT_EXPIRY, token_create, token_revoke, token_rotate
from idempotency.api import IDEMPOTENCY_KEY, idempotent

CatalogReader = HasRole.of(*CATALOG_READERS)


DATASOURCE_EXAMPLE = OpenApiExample(
    "A PostgreSQL datasource",
    request_only=True,
    value={
        "name": "shop",
        "description": "Orders and customers",
        "engine": "postgresql",
        "host": "db.internal",
        "port": 5432,
        "database": "shop",
        "username": "warden_scan",
        "password": "s3cret",
    },
)


class DataSourceListCreate(generics.ListCreateAPIView):
    serializer_class = DataSourceSerializer
    queryset = DataSource.objects.order_by("name")
    filter_backends = [StrictOrderingFilter]
    ordering_fields = ["id", "name", "created_at", "last_scanned_at"]
    extra_error_statuses = {"POST": (409,)}  # an Idempotency-Key reused with another body

    @extend_schema(parameters=[IDEMPOTENCY_KEY], examples=[DATASOURCE_EXAMPLE])
    @idempotent
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.create(request, *args, **kwargs)

    def get_permissions(self) -> list[Any]:
        return [IsAdmin()] if self.request.method == "POST" else [CatalogReader()]

    def perform_create(self, serializer: DataSourceSerializer) -> None:
        values = dict(serializer.validated_data)
        password = values.pop("password", "")
        serializer.instance = services.datasource_create(
            actor=self.request.user, password=password, **values
        )


class DataSourceDetail(generics.RetrieveUpdateDestroyAPIView):
    serializer_class = DataSourceSerializer
    extra_error_statuses = {"DELETE": (409,)}
    queryset = DataSource.objects.all()

    def get_permissions(self) -> list[Any]:
        return [CatalogReader()] if self.request.method == "GET" else [IsAdmin()]

    def perform_update(self, serializer: DataSourceSerializer) -> None:
        values = dict(serializer.validated_data)
        password = values.pop("password", None)
        serializer.instance = services.datasource_update(
            actor=self.request.user, datasource=serializer.instance, password=password, **values
        )

    def perform_destroy(self, instance: DataSource) -> None:
        services.datasource_delete(actor=self.request.user, datasource=instance)


class DataSourceTestConnection(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(request=None, responses={200: ConnectionResultSerializer})
    def post(self, request: Request, pk: int) -> Response:
        """The test ran either way; ``ok`` says whether the datasource answered."""
        datasource = get_object_or_404(DataSource, pk=pk)
        ok, message = services.datasource_test_connection(actor=request.user, datasource=datasource)
        return Response(ConnectionResultSerializer({"ok": ok, "message": message}).data)


class TagList(generics.ListAPIView):
    serializer_class = TagSerializer
    queryset = Tag.objects.all()
    pagination_class = None
    permission_classes = [IsAuthenticated]


class ColumnPagination(StrictLimitOffsetPagination):
    """Offset pages as before, and keyset pages: ``?after=<column id>`` starts just after that
    column in catalog order (an index range scan however deep). ``next`` links always use
    ``after``; ``previous`` only offset pages have."""

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> Any:
        self.after_key = None
        after = self._parsed(request, "after", 1, None)
        self.request, self.offset = request, 0
        self.limit = self.get_limit(request) or self.default_limit or 50
        self.count = self.get_count(queryset)
        self.display_page_controls = self.count > self.limit
        if after is None:
            # An offset page too reads from a key: the column just before the offset,
            # found on the sort_key index alone (a deep OFFSET joined every earlier column).
            self.offset = self.get_offset(request)
            start_key = selectors.sort_key_at(queryset, self.offset)
            if self.offset and start_key is None:  # past the last column
                self.page: list[Column] = []
                self.has_more = False
                return self.page
        else:
            start_key = self.after_key = selectors.column_sort_key_of(after)
            if self.after_key is None:
                raise ValidationError({"after": ["No column has this id; follow the next link."]})
        rows = queryset if start_key is None else queryset.filter(sort_key__gt=start_key)
        chunk = list(rows[: self.limit + 1])
        self.page, self.has_more = chunk[: self.limit], len(chunk) > self.limit
        return self.page

    def get_next_link(self) -> str | None:
        if not self.has_more or not self.page:
            return None
        url = remove_query_param(self.request.build_absolute_uri(), self.offset_query_param)
        return replace_query_param(url, "after", self.page[-1].pk)

    def get_previous_link(self) -> str | None:
        return None if self.after_key is not None else super().get_previous_link()

    def get_schema_operation_parameters(self, view: Any) -> list[dict]:
        after = {
            "name": "after",
            "required": False,
            "in": "query",
            "description": "Keyset page: start after this column id (as the next link does)",
            "schema": {"type": "integer", "minimum": 1},
        }
        return [*super().get_schema_operation_parameters(view), after]


@extend_schema(parameters=[ColumnQuerySerializer])
class ColumnList(generics.ListAPIView):
    """Search the catalog."""

    serializer_class = ColumnSerializer
    permission_classes = [CatalogReader]
    pagination_class = ColumnPagination

    def get_queryset(self) -> Any:
        params = query_params(self.request, ColumnQuerySerializer)
        return selectors.catalog_columns(
            query=params["q"],
            datasource_id=params.get("datasource"),
            tag_name=params["tag"],
            min_sensitivity=params.get("sensitivity"),
            review_state=params["state"],
            include_dropped=params["dropped"],
        )


class ColumnDetail(generics.RetrieveAPIView):
    serializer_class = ColumnSerializer
    permission_classes = [CatalogReader]

    def get_queryset(self) -> Any:
        return selectors.catalog_columns(include_dropped=True)


class ColumnTags(APIView):
    """POST adds/confirms/rejects a tag; DELETE ?tag=NAME removes it. Both curate the column."""

    permission_classes = [IsAdmin]

    @extend_schema(request=ColumnTagWriteSerializer, responses={200: ColumnSerializer})
    def post(self, request: Request, pk: int) -> Response:
        column = get_object_or_404(Column.objects.select_related("table__datasource"), pk=pk)
        serializer = ColumnTagWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.column_tag_set_state(
            actor=request.user, column=column, **serializer.validated_data
        )
        return Response(
            ColumnSerializer(selectors.catalog_columns(include_dropped=True).get(pk=pk)).data
        )

    @extend_schema(request=None, parameters=[TagQuerySerializer], responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        column = get_object_or_404(Column.objects.select_related("table__datasource"), pk=pk)
        tag = get_object_or_404(Tag, name=query_params(request, TagQuerySerializer)["tag"])
        services.column_tag_remove(actor=request.user, column=column, tag=tag)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ColumnTagsBulkReview(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(request=BulkReviewSerializer, responses={200: BulkReviewResultSerializer})
    def post(self, request: Request) -> Response:
        serializer = BulkReviewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        count = services.column_tags_bulk_review(
            actor=request.user,
            column_tag_ids=serializer.validated_data["ids"],
            state=serializer.validated_data["state"],
        )
        return Response(BulkReviewResultSerializer({"updated": count}).data)


class TokenListCreate(generics.ListCreateAPIView):
    """Your own tokens. The secret is returned once, in the creation response."""

    serializer_class = AccessTokenSerializer
    permission_classes = [IsAuthenticated]
    pagination_class = None

    def get_queryset(self) -> Any:
        return AccessToken.objects.filter(user=self.request.user)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        values = serializer.validated_data
        token, secret = token_create(
            actor=request.user,
            user=values.get("user", request.user),
            name=values["name"],
            scopes=values.get("scopes"),
            datasources=values.get("datasources", ()),
            expires_at=values.get("expires_at", DEFAULT_EXPIRY),
            is_agent=values.get("is_agent", False),
            actor_passed_mfa=credential_passed_mfa(request),
        )
        return Response(
            {**AccessTokenSerializer(token).data, "token": secret}, status=status.HTTP_201_CREATED
        )


def _managed_token(request: Request, pk: int) -> AccessToken:
    """The caller's own token, or anyone's for an admin (others' answer 404)."""
    queryset = AccessToken.objects.all()
    if not request.user.has_role(Role.ADMIN):
        queryset = queryset.filter(user=request.user)
    return get_object_or_404(queryset, pk=pk)


class TokenRevoke(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={200: AccessTokenSerializer})
    def post(self, request: Request, pk: int) -> Response:
        token = token_revoke(actor=request.user, token=_managed_token(request, pk))
        return Response(AccessTokenSerializer(token).data)


class TokenRotate(APIView):
    """A new secret (returned once) with the same scopes; the old one is revoked."""

    permission_classes = [IsAuthenticated]
    extra_error_statuses = {"POST": (404, 409)}

    @extend_schema(request=None, responses={201: AccessTokenSerializer})
    def post(self, request: Request, pk: int) -> Response:
        token, secret = token_rotate(actor=request.user, token=_managed_token(request, pk))
        body = {**AccessTokenSerializer(token).data, "token": secret}
        return Response(body, status=status.HTTP_201_CREATED)
