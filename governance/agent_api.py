"""The API the enforcement agent talks to: bundle, public key, client logins (token checks,
token verifiers and login reports), heartbeats.

Every endpoint needs ``Authorization: Bearer <token>`` of an AccessToken with the ``agent``
scope: no or an invalid token → 401, any other token → 403 with the reason. An agent token is
bound to the datasources it serves: naming another one is a 403 naming ``datasource``.
"""

from __future__ import annotations

import base64
from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.models import AuditEvent
from config.api import error_body
from config.errors import NotAllowed, NotFound
from config.listing import query_params
from config.serializers import StrictStrings
from governance import policy_selectors
from governance.authentication import AgentTokenAuthentication
from governance.crypto import published_keys
from governance.models import AccessToken, DataSource
from governance.scopes import Scope
from governance.services.agent_logins import (
    AgentLogin,
    agent_login_abandoned,
    agent_login_check,
    agent_login_record,
)
from governance.services.agents import agent_heartbeat_record
from governance.services.bundles import policy_bundle_served
from governance.token_verifiers import LoginVerifiers, login_verifiers
from governance.tokens import token_serves


class IsAgentToken(BasePermission):
    message = "This endpoint needs an agent token (an access token with the agent scope)."

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, AccessToken) and request.auth.is_agent

    def roles_for(self, method: str) -> tuple[str, ...]:
        return ("agent token",)


class AgentView(APIView):
    # Token only: a browser session is never an agent.
    authentication_classes = [AgentTokenAuthentication]
    permission_classes = [IsAgentToken]
    token_scopes: tuple[str, ...] = (Scope.AGENT,)

    def served_datasource(self, reference: str) -> DataSource:
        """The named datasource, when this agent token serves it (404 unknown, 403 not)."""
        served = policy_selectors.datasource_by_reference(
            reference, among=self.request.auth.datasources.all()
        )
        if served is None:
            raise agent_token_refusal(_datasource(reference))  # an unknown one is a 404 first
        return served


def agent_token_refusal(datasource: DataSource) -> NotAllowed:
    """The 403 for an agent token that is not bound to ``datasource``."""
    return NotAllowed(
        f"This agent token does not serve datasource {datasource.name!r}.", field="datasource"
    )


def agent_token_serves(token: AccessToken, datasource: DataSource) -> None:
    """NotAllowed naming ``datasource`` unless the agent token is bound to it."""
    if not token_serves(token, datasource):
        raise agent_token_refusal(datasource)


def source_address_field() -> serializers.CharField:
    """The client's address as the agent saw it: the audit event's ``source_address``,
    which holds 100 characters (longer is a 400 naming the field, not a database error)."""
    return serializers.CharField(
        max_length=AuditEvent._meta.get_field("source_address").max_length,
        required=False,
        allow_blank=True,
        default="",
        help_text="The client's address, for the audit trail",
    )


def token_id_field(**options: Any) -> serializers.IntegerField:
    """An access token's id: a positive bigint (out of range is a 400 naming the field)."""
    return serializers.IntegerField(min_value=1, max_value=2**63 - 1, **options)


class AuthenticateSerializer(StrictStrings, serializers.Serializer):
    datasource = serializers.CharField()
    identity = serializers.CharField()
    token = serializers.CharField(trim_whitespace=False)
    source_address = source_address_field()
    application = serializers.CharField(required=False, allow_blank=True, default="")


def bundle_etag(version: str) -> str:
    return f'"{version}"'


def etag_matches(if_none_match: str, version: str) -> bool:
    """RFC 9110 If-None-Match (weak comparison, lists and ``*``) against a bundle version."""
    candidates = [part.strip() for part in if_none_match.split(",") if part.strip()]
    return any(
        candidate == "*" or candidate.removeprefix("W/") == bundle_etag(version)
        for candidate in candidates
    )


class BundleQuerySerializer(StrictStrings, serializers.Serializer):
    datasource = serializers.CharField(help_text="Datasource name (or id)")


def _datasource(reference: str) -> DataSource:
    datasource = policy_selectors.datasource_by_reference(reference)
    if datasource is None:
        raise NotFound(f"Unknown datasource {reference!r}.")
    return datasource


class AuthenticatedSerializer(StrictStrings, serializers.Serializer):
    identity = serializers.CharField()
    kind = serializers.CharField(help_text="person or service account")
    groups = serializers.ListField(child=serializers.CharField())
    token_id = serializers.IntegerField(help_text="the accepted token's id")
    login_sequence = serializers.IntegerField(
        help_text="the sequence of the auth.agent_login audit event of this login: a "
        "follow-up (agent/logins/abandoned) names it"
    )


class PublishedKeySerializer(StrictStrings, serializers.Serializer):
    key_id = serializers.CharField()
    public_key = serializers.CharField(help_text="Ed25519, base64")
    endorsement = serializers.CharField(
        required=False, help_text="the next key only: the current key's signature over it"
    )


class PublicKeySerializer(StrictStrings, serializers.Serializer):
    key_id = serializers.CharField(help_text="the current signing key's id")
    public_key = serializers.CharField(help_text="Ed25519, base64")
    keys = PublishedKeySerializer(
        many=True, help_text="the current key, and during a rotation the next one"
    )


class AgentBundle(AgentView):
    extra_error_statuses = {"GET": (404,)}

    @extend_schema(
        parameters=[BundleQuerySerializer],
        responses={200: OpenApiTypes.OBJECT, 304: None},
    )
    def get(self, request: Request) -> Response:
        reference = query_params(request, BundleQuerySerializer)["datasource"]
        datasource = self.served_datasource(reference)
        envelope = policy_bundle_served(datasource=datasource)
        # A rotation step changes the tag too, so agents fetch the envelope naming the next key.
        version = ".".join(
            filter(None, [envelope["bundle"]["version"], envelope.get("next_key_id")])
        )
        etag = bundle_etag(version)
        if etag_matches(request.headers.get("If-None-Match", ""), version):
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
        return Response(envelope, headers={"ETag": etag})


class AgentPublicKey(AgentView):
    @extend_schema(responses={200: PublicKeySerializer})
    def get(self, request: Request) -> Response:
        keys = published_keys()
        body = {**keys[0], "keys": keys}
        return Response(PublicKeySerializer(body).data)


class AgentAuthenticate(AgentView):
    """Checks a client's Warden identity and personal access token for the agent."""

    extra_error_statuses = {"POST": (404,)}

    @extend_schema(request=AuthenticateSerializer, responses={200: AuthenticatedSerializer})
    def post(self, request: Request) -> Response:
        serializer = AuthenticateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        datasource = self.served_datasource(data["datasource"])
        outcome = agent_login_check(
            agent_token=request.auth,
            datasource=datasource,
            identity=data["identity"],
            secret=data["token"],
            source_address=data["source_address"],
            application=data["application"],
        )
        return _login_answer(outcome)


class VerifiersQuerySerializer(StrictStrings, serializers.Serializer):
    datasource = serializers.CharField(help_text="Datasource name (or id)")
    identity = serializers.CharField(help_text="The login name the client gave")


class ScramParametersSerializer(StrictStrings, serializers.Serializer):
    salt = serializers.CharField(help_text="base64; the identity's, shared by its tokens")
    iterations = serializers.IntegerField()


class TokenVerifierSerializer(StrictStrings, serializers.Serializer):
    id = serializers.IntegerField(help_text="The token's id, reported back in agent/logins")
    scram_stored_key = serializers.CharField(help_text="SCRAM-SHA-256 StoredKey, base64")
    scram_server_key = serializers.CharField(help_text="SCRAM-SHA-256 ServerKey, base64")
    mysql_native = serializers.CharField(help_text="SHA1(SHA1(token)), hex")


class VerifiersSerializer(StrictStrings, serializers.Serializer):
    identity = serializers.CharField()
    kind = serializers.CharField()
    groups = serializers.ListField(child=serializers.CharField())
    scram = ScramParametersSerializer()
    tokens = TokenVerifierSerializer(many=True)
    tokens_without_verifier = serializers.IntegerField(
        help_text="live tokens older than verifiers: they log in only as a password over TLS"
    )


def _verifiers_body(found: LoginVerifiers) -> dict[str, Any]:
    return {
        "identity": found.identity,
        "kind": found.kind,
        "groups": found.groups,
        "scram": {"salt": base64.b64encode(found.salt).decode(), "iterations": found.iterations},
        "tokens": [
            {
                "id": verifier.token_id,
                "scram_stored_key": base64.b64encode(verifier.scram_stored_key).decode(),
                "scram_server_key": base64.b64encode(verifier.scram_server_key).decode(),
                "mysql_native": bytes(verifier.mysql_native).hex(),
            }
            for verifier in found.tokens
        ],
        "tokens_without_verifier": found.tokens_without_verifier,
    }


class AgentLoginVerifiers(AgentView):
    """The verifiers of an identity's live tokens, so the agent checks a client's
    challenge-response proof without the token; never the token or its hash."""

    extra_error_statuses = {"GET": (404,)}

    @extend_schema(parameters=[VerifiersQuerySerializer], responses={200: VerifiersSerializer})
    def get(self, request: Request) -> Response:
        query = query_params(request, VerifiersQuerySerializer)
        self.served_datasource(query["datasource"])
        found = login_verifiers(identity=query["identity"])
        return Response(VerifiersSerializer(_verifiers_body(found)).data)


LOGIN_MECHANISMS = ["SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", "mysql_native_password"]


class LoginRecordSerializer(StrictStrings, serializers.Serializer):
    datasource = serializers.CharField()
    identity = serializers.CharField()
    token_id = token_id_field(
        allow_null=True, help_text="the token whose verifier matched; null: none did"
    )
    mechanism = serializers.ChoiceField(choices=LOGIN_MECHANISMS)
    source_address = source_address_field()
    application = serializers.CharField(required=False, allow_blank=True, default="")


class AgentLoginRecord(AgentView):
    """An agent reports a challenge-response login: audited, and refused (401) when the
    token is no longer live or no token matched."""

    extra_error_statuses = {"POST": (404,)}

    @extend_schema(request=LoginRecordSerializer, responses={200: AuthenticatedSerializer})
    def post(self, request: Request) -> Response:
        serializer = LoginRecordSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        outcome = agent_login_record(
            agent_token=request.auth,
            datasource=self.served_datasource(data["datasource"]),
            identity=data["identity"],
            token_id=data["token_id"],
            mechanism=data["mechanism"],
            source_address=data["source_address"],
            application=data["application"],
        )
        return _login_answer(outcome)


class LoginAbandonedSerializer(StrictStrings, serializers.Serializer):
    datasource = serializers.CharField()
    identity = serializers.CharField()
    token_id = token_id_field(help_text="the token of the accepted login")
    # Required: without it only "some recent login of this token" could be matched, which
    # is the wrong one when the token logs in twice at once (two addresses, two workers).
    login_sequence = serializers.IntegerField(
        min_value=1,
        max_value=2**63 - 1,
        help_text="the accepted login's login_sequence, as agent/logins or "
        "agent/authenticate answered it",
    )
    # A token sent as a cleartext password (agent/authenticate) is audited as "password".
    mechanism = serializers.ChoiceField(choices=[*LOGIN_MECHANISMS, "password"])
    reason = serializers.CharField(max_length=300, help_text="why no session started")
    source_address = source_address_field()
    application = serializers.CharField(required=False, allow_blank=True, default="")


class AgentLoginAbandoned(AgentView):
    """An agent reports that a login it reported accepted never became a session (the
    client went away, the upstream refused, the login timed out): audited, 204.  404 naming
    ``login_sequence`` unless that is the event of a login this agent reported (token,
    identity, mechanism, datasource) accepted in the last minutes and has not followed up
    yet."""

    extra_error_statuses = {"POST": (404,)}

    @extend_schema(request=LoginAbandonedSerializer, responses={204: None})
    def post(self, request: Request) -> Response:
        serializer = LoginAbandonedSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        agent_login_abandoned(
            agent_token=request.auth,
            datasource=self.served_datasource(data["datasource"]),
            identity=data["identity"],
            token_id=data["token_id"],
            login_sequence=data["login_sequence"],
            mechanism=data["mechanism"],
            reason=data["reason"],
            source_address=data["source_address"],
            application=data["application"],
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


def _login_answer(outcome: AgentLogin) -> Response:
    if not outcome.ok:
        body = error_body(outcome.reason, "authentication_failed")
        return Response(body, status=status.HTTP_401_UNAUTHORIZED)
    accepted = {
        "identity": outcome.identity,
        "kind": outcome.kind,
        "groups": outcome.groups,
        "token_id": outcome.token_id,
        "login_sequence": outcome.login_sequence,
    }
    return Response(AuthenticatedSerializer(accepted).data)


class HeartbeatSerializer(StrictStrings, serializers.Serializer):
    datasource = serializers.CharField()
    address = serializers.CharField(max_length=300, help_text="host:port clients connect to")
    version = serializers.CharField(max_length=50, allow_blank=True, default="")
    bundle_version = serializers.CharField(max_length=64, allow_blank=True, default="")
    bundle_rejection = serializers.CharField(
        max_length=300,
        allow_blank=True,
        default="",
        help_text="why the agent refused the latest bundle (it keeps its last good one)",
    )
    masking_problem = serializers.CharField(
        max_length=300,
        allow_blank=True,
        default="",
        help_text="why the agent redacts the bundle's hash masks: it holds no masking key, "
        "or not the one the bundle names",
    )
    trusted_key_ids = serializers.ListField(
        child=serializers.CharField(max_length=64),
        max_length=20,
        default=list,
        help_text="the signing keys the agent accepts bundles from",
    )
    started_at = serializers.DateTimeField()
    open_connections = serializers.IntegerField(min_value=0, default=0)
    statements_per_second = serializers.FloatField(min_value=0, default=0.0)


class HeartbeatAnswerSerializer(StrictStrings, serializers.Serializer):
    id = serializers.IntegerField()
    address = serializers.CharField()
    interval = serializers.IntegerField(help_text="seconds until the next heartbeat is due")


class AgentHeartbeat(AgentView):
    """Registers the agent on its first call and refreshes its row on every later one."""

    extra_error_statuses = {"POST": (404,)}

    @extend_schema(request=HeartbeatSerializer, responses={200: HeartbeatAnswerSerializer})
    def post(self, request: Request) -> Response:
        serializer = HeartbeatSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        datasource = self.served_datasource(data.pop("datasource"))
        agent = agent_heartbeat_record(
            token=request.auth,
            datasource=datasource,
            source_address=request.META.get("REMOTE_ADDR", ""),
            **data,
        )
        return Response(
            {
                "id": agent.pk,
                "address": agent.address,
                "interval": settings.WARDEN_AGENT_HEARTBEAT_SECONDS,
            }
        )
