"""Audit API: agent ingest, and the read-only trail for auditors and admins."""

from __future__ import annotations

import io
from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param
from rest_framework.views import APIView

from audit import selectors, services
from audit.dashboard import counted_events
from audit.exports import CONTENT_TYPES
from audit.forms import EventFilterForm
from audit.ingest import agent_batch_events, agent_events_ingest
from audit.models import AuditEvent
from audit.serializers import (
    AgentBatchSerializer,
    AuditCheckpointSerializer,
    AuditEventPageSerializer,
    AuditEventSerializer,
    ChainReportSerializer,
    ExportRequestSerializer,
    IngestResultSerializer,
    TrailPageParamsSerializer,
    VerifyRequestSerializer,
)
from config.listing import StrictOrderingFilter, query_params, refuse_blank
from governance.agent_api import AgentView
from governance.models import Role
from governance.permissions import HasRole

AuditReaders = HasRole.of(Role.ADMIN, Role.AUDITOR)
FILTER_PARAMETERS = [
    OpenApiParameter("from", OpenApiTypes.DATE, description="first day (occurred_at)"),
    OpenApiParameter("to", OpenApiTypes.DATE, description="last day, inclusive"),
    OpenApiParameter("actor", str),
    OpenApiParameter("datasource", str),
    OpenApiParameter("action", str, description='exact, or a prefix ending in "." or "*"'),
    OpenApiParameter("decision", str, enum=["allow", "mask", "deny", "hold"]),
    OpenApiParameter("tag", str, description="tag touched (e.g. PII.Email)"),
    OpenApiParameter("channel", str, description='how the event was recorded (e.g. "mcp")'),
]


class AgentAuditIngestView(AgentView):
    @extend_schema(request=AgentBatchSerializer, responses={200: IngestResultSerializer})
    def post(self, request: Request) -> Response:
        events = agent_batch_events(request.data)
        result = agent_events_ingest(token=request.auth, events=events)
        return Response(IngestResultSerializer(result).data)


def _filters(request: Request) -> selectors.EventFilters:
    refuse_blank(request, [*EventFilterForm.base_fields, *EventFilterForm.ALIASES])
    form = EventFilterForm(request.query_params)
    if not form.is_valid():
        raise ValidationError(form.errors)
    return form.filters()


class EventListView(APIView):
    """Newest first, in pages addressed by sequence (keyset, like the trail page): events that
    arrive while you page never shift the page you are on, and the thousandth page costs what
    the first does. Filters no index serves alone search a bounded window of the trail per
    page (`searched`); follow `next` until it is null to read every match."""

    permission_classes = [AuditReaders]

    @extend_schema(
        parameters=[*FILTER_PARAMETERS, TrailPageParamsSerializer],
        responses={200: AuditEventPageSerializer},
    )
    def get(self, request: Request) -> Response:
        filters = _filters(request)
        params = query_params(request, TrailPageParamsSerializer)
        page = selectors.event_page(
            filters,
            before=params.get("before"),
            after=params.get("after"),
            size=params["page_size"],
            # The exact counts say none match: no walk of the trail.
            none_match=bool(filters.without_period()) and counted_events(filters) == 0,
        )
        return Response(
            {
                "next": _page_link(request, "before", page.older_than),
                "previous": _page_link(request, "after", page.newer_than),
                "searched": page.searched
                and {"first_sequence": page.searched[0], "last_sequence": page.searched[1]},
                "results": AuditEventSerializer(page.events, many=True).data,
            }
        )


def _page_link(request: Request, name: str, sequence: int | None) -> str | None:
    if sequence is None:
        return None
    url = request.build_absolute_uri()
    for stale in ("before", "after"):
        url = remove_query_param(url, stale)
    return replace_query_param(url, name, sequence)


class EventDetailView(generics.RetrieveAPIView):
    permission_classes = [AuditReaders]
    serializer_class = AuditEventSerializer
    queryset = AuditEvent.objects.all()
    lookup_field = "pk"


class VerifyView(APIView):
    permission_classes = [AuditReaders]

    @extend_schema(request=VerifyRequestSerializer, responses={200: ChainReportSerializer})
    def post(self, request: Request) -> Response:
        params = VerifyRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        report = services.chain_verify(
            actor=request.user,
            from_sequence=params.validated_data["from_sequence"],
            to_sequence=params.validated_data.get("to_sequence"),
        )
        return Response(ChainReportSerializer(report.as_dict()).data)


class CheckpointListView(generics.ListAPIView):
    permission_classes = [AuditReaders]
    serializer_class = AuditCheckpointSerializer
    filter_backends = [StrictOrderingFilter]
    ordering_fields = ["sequence", "created_at"]

    def get_queryset(self) -> Any:
        return selectors.checkpoint_queryset()


class ExportView(APIView):
    permission_classes = [AuditReaders]

    @extend_schema(
        request=ExportRequestSerializer,
        responses={
            (200, media_type): OpenApiTypes.OBJECT if fmt == "json" else OpenApiTypes.BINARY
            for fmt, media_type in CONTENT_TYPES.items()
        },
    )
    def post(self, request: Request) -> HttpResponse:
        params = ExportRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = dict(params.validated_data)
        export_format = data.pop("format")
        filters = selectors.EventFilters(
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            **{
                key: data.get(key) or ""
                for key in ("actor", "datasource", "action", "decision", "tag")
            },
        )
        buffer = io.BytesIO()
        result = services.audit_export(
            actor=request.user, export_format=export_format, filters=filters, stream=buffer
        )
        response = HttpResponse(buffer.getvalue(), content_type=result.content_type)
        response["Content-Disposition"] = f'attachment; filename="{result.filename}"'
        return response
