from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from classification.models import ScanRun
from classification.serializers import (
    ScanQuerySerializer,
    ScanRunDetailSerializer,
    ScanRunSerializer,
    ScanStartSerializer,
)
from classification.services import scan_start
from config.listing import StrictOrderingFilter, query_params
from governance.models import DataSource
from governance.permissions import CATALOG_READERS, HasRole, IsAdmin


class ScanStart(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(
        request=ScanStartSerializer,
        responses={202: ScanRunSerializer},
        examples=[OpenApiExample("Sample 500 rows per table", value={"sample_size": 500})],
    )
    def post(self, request: Request, pk: int) -> Response:
        datasource = get_object_or_404(DataSource, pk=pk)
        serializer = ScanStartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        scan = scan_start(
            actor=request.user,
            datasource=datasource,
            sample_size=serializer.validated_data.get("sample_size"),
        )
        scan.refresh_from_db()
        return Response(ScanRunSerializer(scan).data, status=status.HTTP_202_ACCEPTED)


@extend_schema(parameters=[ScanQuerySerializer])
class ScanList(generics.ListAPIView):
    serializer_class = ScanRunSerializer
    permission_classes = [HasRole.of(*CATALOG_READERS)]
    filter_backends = [StrictOrderingFilter]
    ordering_fields = ["id", "created_at", "finished_at"]

    def get_queryset(self) -> Any:
        scans = ScanRun.objects.select_related("datasource", "requested_by").order_by("-id")
        datasource = query_params(self.request, ScanQuerySerializer).get("datasource")
        return scans.filter(datasource__name=datasource) if datasource else scans


class ScanDetail(generics.RetrieveAPIView):
    serializer_class = ScanRunDetailSerializer
    permission_classes = [HasRole.of(*CATALOG_READERS)]
    queryset = ScanRun.objects.select_related("datasource", "requested_by").prefetch_related(
        "table_results__table"
    )
