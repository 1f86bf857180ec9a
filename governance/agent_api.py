"""The API the enforcement agent talks to: bundle, public key, client logins, heartbeats.

Every endpoint needs ``Authorization: Bearer <token>`` of an AccessToken with ``is_agent``:
no or an invalid token → 401, any other token → 403 with the reason.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance import policy_selectors
from governance.authentication import AccessTokenAuthentication
from governance.crypto import public_key_b64, signing_key_id
from governance.models import AccessToken
from governance.services.agents import agent_heartbeat_record
from governance.services.bundles import (
    agent_login_check,
    bundle_etag,
    etag_matches,
    policy_bundle_served,
)


class IsAgentToken(BasePermission):
    message = "This endpoint needs an agent token (an access token created with is_agent)."

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, AccessToken) and request.auth.is_agent


class AgentView(APIView):
    # Token only: a browser session is never an agent.
    authentication_classes = [AccessTokenAuthentication]
    permission_classes = [IsAgentToken]


class AuthenticateSerializer(serializers.Serializer):
    datasource = serializers.CharField()
    identity = serializers.CharField()
    token = serializers.CharField(trim_whitespace=False)
    source_address = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="The client's address, for the audit trail",
    )
    application = serializers.CharField(required=False, allow_blank=True, default="")


def _unknown_datasource(name: str) -> Response:
    return Response({"detail": f"Unknown datasource {name!r}."}, status=status.HTTP_404_NOT_FOUND)


class AgentBundle(AgentView):
    @extend_schema(
        parameters=[OpenApiParameter("datasource", str, required=True)],
        responses={200: dict, 304: None, 404: dict},
    )
    def get(self, request: Request) -> Response:
        name = request.query_params.get("datasource", "")
        if not name:
            return Response(
                {"detail": "Pass ?datasource=<name>."}, status=status.HTTP_400_BAD_REQUEST
            )
        datasource = policy_selectors.datasource_by_reference(name)
        if datasource is None:
            return _unknown_datasource(name)
        envelope = policy_bundle_served(datasource=datasource)
        version = envelope["bundle"]["version"]
        etag = bundle_etag(version)
        if etag_matches(request.headers.get("If-None-Match", ""), version):
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
        return Response(envelope, headers={"ETag": etag})


class AgentPublicKey(AgentView):
    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        return Response({"key_id": signing_key_id(), "public_key": public_key_b64()})


class AgentAuthenticate(AgentView):
    """Checks a client's Warden identity and personal access token for the agent."""

    @extend_schema(request=AuthenticateSerializer, responses={200: dict, 401: dict, 404: dict})
    def post(self, request: Request) -> Response:
        serializer = AuthenticateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        datasource = policy_selectors.datasource_by_reference(data["datasource"])
        if datasource is None:
            return _unknown_datasource(data["datasource"])
        outcome = agent_login_check(
            agent_token=request.auth,
            datasource=datasource,
            identity=data["identity"],
            secret=data["token"],
            source_address=data["source_address"],
            application=data["application"],
        )
        if not outcome.ok:
            return Response({"detail": outcome.reason}, status=status.HTTP_401_UNAUTHORIZED)
        return Response(
            {"identity": outcome.identity, "kind": outcome.kind, "groups": outcome.groups}
        )


class HeartbeatSerializer(serializers.Serializer):
    datasource = serializers.CharField()
    address = serializers.CharField(max_length=300, help_text="host:port clients connect to")
    version = serializers.CharField(max_length=50, allow_blank=True, default="")
    bundle_version = serializers.CharField(max_length=64, allow_blank=True, default="")
    started_at = serializers.DateTimeField()
    open_connections = serializers.IntegerField(min_value=0, default=0)
    statements_per_second = serializers.FloatField(min_value=0, default=0.0)


class AgentHeartbeat(AgentView):
    """Registers the agent on its first call and refreshes its row on every later one."""

    @extend_schema(request=HeartbeatSerializer, responses={200: dict, 400: dict, 404: dict})
    def post(self, request: Request) -> Response:
        serializer = HeartbeatSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        datasource = policy_selectors.datasource_by_reference(data.pop("datasource"))
        if datasource is None:
            return _unknown_datasource(request.data.get("datasource", ""))
        try:
            agent = agent_heartbeat_record(
                token=request.auth,
                datasource=datasource,
                source_address=request.META.get("REMOTE_ADDR", ""),
                **data,
            )
        except ValueError as exc:
            return Response({"address": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
        return Response(
            {
                "id": agent.pk,
                "address": agent.address,
                "interval": settings.WARDEN_AGENT_HEARTBEAT_SECONDS,
            }
        )
