"""REST API for access requests, reviews, grants, break-glass and the agent's holds.

Long-poll: ``GET …/access-requests/<id>/?wait=30`` (max 60 s) answers as soon as the request
leaves ``pending``. It is an async view woken by the decision itself (approvals.push, the
channel layer; the database is the fallback), so a waiting client holds no worker thread.
"""

from __future__ import annotations

import asyncio
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from approvals import push, selectors, services
from approvals.models import AccessRequest, DatasourceReviewPolicy, Grant
from approvals.serializers import (
    AccessRequestCreateSerializer,
    AccessRequestQuerySerializer,
    AccessRequestSerializer,
    AgentAccessRequestSerializer,
    AgentAccessRequestStateSerializer,
    ApproveSerializer,
    BreakGlassSerializer,
    DenySerializer,
    ExtendSerializer,
    GrantQuerySerializer,
    GrantRunSerializer,
    GrantSerializer,
    ReviewPolicySerializer,
    RevokeSerializer,
)
from config.errors import InvalidInput, NotAllowed, NotFound
from config.listing import StrictOrderingFilter, query_params
from governance.agent_api import AgentView, agent_token_refusal, agent_token_serves
from governance.mfa import mfa_check_request
from governance.models import DataSource, Role
from governance.permissions import IsAdmin
from governance.policy_selectors import datasource_by_reference
from governance.scopes import READ_SCOPES, Scope, token_has_scope
from idempotency.api import IDEMPOTENCY_KEY, idempotent

MAX_WAIT_SECONDS = 60


class WaitQuerySerializer(serializers.Serializer):
    wait = serializers.FloatField(
        required=False,
        min_value=0,
        max_value=MAX_WAIT_SECONDS,
        help_text=f"Block up to this many seconds (max {MAX_WAIT_SECONDS}) while pending",
    )


def _datasource_or_400(reference: str) -> DataSource:
    datasource = datasource_by_reference(reference)
    if datasource is None:
        raise InvalidInput(f"Unknown datasource {reference!r}.", field="datasource")
    return datasource


# Requests and grants are the ``requests`` scope's: a token with only that scope sees its
# owner's own; reading others' (a reviewer's inbox, everyone's grants) needs ``api:read``.
OWN_READ_SCOPES = (Scope.REQUESTS, *READ_SCOPES)
OWN_WRITE_SCOPES = (Scope.REQUESTS, Scope.API_ADMIN)


def _reads_beyond_own(request: Request) -> bool:
    return token_has_scope(request.auth, *READ_SCOPES)


def _visible_request(request: Request, pk: int, *, detail: bool = False) -> AccessRequest:
    """The request if the caller may see it (a 404 otherwise); the actions need only the
    request and its datasource, ``detail`` loads what the detail answer shows too."""
    access_request = (
        selectors.request_detail(pk=pk) if detail else selectors.request_for_action(pk=pk)
    )
    if access_request is None or not selectors.can_view_request(
        user=request.user, access_request=access_request
    ):
        raise NotFound("No such access request.")
    if access_request.requester_id != request.user.pk and not _reads_beyond_own(request):
        raise NotFound("No such access request.")
    return access_request


CONFLICT_ON_POST = {"POST": (409,)}
ACCESS_REQUEST_EXAMPLE = OpenApiExample(
    "Read two columns for an incident",
    request_only=True,
    value={
        "datasource": "shop",
        "scope": {"columns": ["public.customers.email", "public.customers.phone"]},
        "level": "read",
        "reason": "INC-4211: customer cannot log in",
        "duration_minutes": 60,
    },
)
APPROVE_EXAMPLE = OpenApiExample(
    "Approve, narrowed to one column for 30 minutes",
    request_only=True,
    value={
        "comment": "email only",
        "scope": {"columns": ["public.customers.email"]},
        "duration_minutes": 30,
    },
)

# ------------------------------------------------------------------ access requests


class AccessRequestListCreate(GenericAPIView):
    """Your own requests (``view=mine``) or the ones you review (``view=review``)."""

    documented_roles = {"POST": ("requester",)}
    extra_error_statuses = {"POST": (409,)}  # an Idempotency-Key reused with another body
    token_scopes = {"GET": OWN_READ_SCOPES, "POST": (Scope.REQUESTS,)}
    serializer_class = AccessRequestSerializer
    filter_backends = [StrictOrderingFilter]
    ordering_fields = ["id", "created_at", "expires_at", "state"]

    @extend_schema(
        parameters=[AccessRequestQuerySerializer],
        responses={200: AccessRequestSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        params = query_params(request, AccessRequestQuerySerializer)
        state = params.get("state") or None
        if params["view"] == "review":
            if not _reads_beyond_own(request):
                raise NotAllowed("Reviewing needs a token with the api:read scope.", field="view")
            queryset = selectors.requests_to_review(user=request.user, state=state)
        else:
            queryset = selectors.requests_of(user=request.user)
            if state:
                queryset = queryset.filter(state=state)
        page = self.paginate_queryset(self.filter_queryset(queryset))
        data = AccessRequestSerializer(page, many=True, context={"request": request}).data
        return self.get_paginated_response(data)

    @extend_schema(
        request=AccessRequestCreateSerializer,
        parameters=[IDEMPOTENCY_KEY],
        responses={201: AccessRequestSerializer},
        examples=[ACCESS_REQUEST_EXAMPLE],
    )
    @idempotent
    def post(self, request: Request) -> Response:
        body = AccessRequestCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        values = dict(body.validated_data)
        origin = AccessRequest.Origin.WEB if request.auth is None else AccessRequest.Origin.API
        access_request = services.request_create(
            actor=request.user,
            datasource=_datasource_or_400(values.pop("datasource")),
            origin=origin,
            **values,
        )
        data = AccessRequestSerializer(
            selectors.request_detail(pk=access_request.pk), context={"request": request}
        ).data
        return Response(data, status=status.HTTP_201_CREATED)


class AccessRequestDetail(APIView):
    token_scopes = OWN_READ_SCOPES

    @extend_schema(parameters=[WaitQuerySerializer], responses={200: AccessRequestSerializer})
    def get(self, request: Request, pk: int) -> Response:
        query_params(request, WaitQuerySerializer)
        access_request = _visible_request(request, pk, detail=True)
        context = {"request": request, "detail": True}
        return Response(AccessRequestSerializer(access_request, context=context).data)


class AccessRequestApprove(APIView):
    documented_roles = {"POST": ("reviewer of the datasource",)}
    extra_error_statuses = CONFLICT_ON_POST

    @extend_schema(
        request=ApproveSerializer,
        responses={200: AccessRequestSerializer},
        examples=[APPROVE_EXAMPLE],
    )
    def post(self, request: Request, pk: int) -> Response:
        access_request = _visible_request(request, pk)
        mfa_check_request(request)
        body = ApproveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        values = body.validated_data
        services.request_approve(
            actor=request.user,
            access_request=access_request,
            comment=values["comment"],
            narrowed_scope=values["scope"],
            narrowed_duration_minutes=values["duration_minutes"],
            statement_only=values["statement_only"],
            max_runs=values["max_runs"],
        )
        return _detail_response(request, pk)


class AccessRequestDeny(APIView):
    documented_roles = {"POST": ("reviewer of the datasource",)}
    extra_error_statuses = CONFLICT_ON_POST

    @extend_schema(request=DenySerializer, responses={200: AccessRequestSerializer})
    def post(self, request: Request, pk: int) -> Response:
        access_request = _visible_request(request, pk)
        mfa_check_request(request)
        body = DenySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.request_deny(
            actor=request.user,
            access_request=access_request,
            comment=body.validated_data["comment"],
        )
        return _detail_response(request, pk)


class AccessRequestCancel(APIView):
    documented_roles = {"POST": ("the requester",)}
    token_scopes = OWN_WRITE_SCOPES
    extra_error_statuses = CONFLICT_ON_POST

    @extend_schema(request=None, responses={200: AccessRequestSerializer})
    def post(self, request: Request, pk: int) -> Response:
        access_request = _visible_request(request, pk)
        services.request_cancel(actor=request.user, access_request=access_request)
        return _detail_response(request, pk)


def _detail_response(request: Request, pk: int) -> Response:
    access_request = selectors.request_detail(pk=pk)
    context = {"request": request, "detail": True}
    return Response(AccessRequestSerializer(access_request, context=context).data)


# ------------------------------------------------------------------ grants and break-glass


class GrantList(GenericAPIView):
    """Your grants; ``all=true`` shows everyone's to admins and auditors."""

    token_scopes = OWN_READ_SCOPES
    serializer_class = GrantSerializer
    filter_backends = [StrictOrderingFilter]
    ordering_fields = ["id", "starts_at", "expires_at"]

    @extend_schema(
        parameters=[GrantQuerySerializer],
        responses={200: GrantSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        everyone = (
            query_params(request, GrantQuerySerializer)["all"]
            and (request.user.has_role(Role.ADMIN) or request.user.has_role(Role.AUDITOR))
            and _reads_beyond_own(request)
        )
        queryset = Grant.objects.all() if everyone else selectors.grants_of(user=request.user)
        queryset = queryset.select_related("grantee", "datasource").order_by("-id")
        page = self.paginate_queryset(self.filter_queryset(queryset))
        return self.get_paginated_response(GrantSerializer(page, many=True).data)


class GrantRevoke(APIView):
    documented_roles = {"POST": ("admin",)}
    extra_error_statuses = CONFLICT_ON_POST

    @extend_schema(request=RevokeSerializer, responses={200: GrantSerializer})
    def post(self, request: Request, pk: int) -> Response:
        grant = get_object_or_404(Grant, pk=pk)
        body = RevokeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        grant = services.grant_revoke(
            actor=request.user, grant=grant, reason=body.validated_data["reason"]
        )
        return Response(GrantSerializer(grant).data)


class GrantExtend(APIView):
    documented_roles = {"POST": ("the grantee",)}
    token_scopes = OWN_WRITE_SCOPES
    extra_error_statuses = CONFLICT_ON_POST

    @extend_schema(request=ExtendSerializer, responses={201: AccessRequestSerializer})
    def post(self, request: Request, pk: int) -> Response:
        grant = get_object_or_404(Grant.objects.select_related("request", "datasource"), pk=pk)
        body = ExtendSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        extension = services.grant_extend_request(
            actor=request.user, grant=grant, **body.validated_data
        )
        data = AccessRequestSerializer(
            selectors.request_detail(pk=extension.pk), context={"request": request}
        ).data
        return Response(data, status=status.HTTP_201_CREATED)


class BreakGlass(APIView):
    documented_roles = {"POST": ("requester",)}

    @extend_schema(request=BreakGlassSerializer, responses={201: GrantSerializer})
    def post(self, request: Request) -> Response:
        mfa_check_request(request)
        body = BreakGlassSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        values = dict(body.validated_data)
        grant = services.break_glass_use(
            actor=request.user, datasource=_datasource_or_400(values.pop("datasource")), **values
        )
        return Response(GrantSerializer(grant).data, status=status.HTTP_201_CREATED)


class ReviewPolicyDetail(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(responses={200: ReviewPolicySerializer})
    def get(self, request: Request, datasource_id: int) -> Response:
        datasource = get_object_or_404(DataSource, pk=datasource_id)
        policy = selectors.review_policy_for(datasource)
        data = (
            ReviewPolicySerializer(policy).data
            if policy.pk
            else {**ReviewPolicySerializer(policy).data, "reviewer_groups": []}
        )
        return Response(data)

    @extend_schema(request=ReviewPolicySerializer, responses={200: ReviewPolicySerializer})
    def put(self, request: Request, datasource_id: int) -> Response:
        datasource = get_object_or_404(DataSource, pk=datasource_id)
        existing = DatasourceReviewPolicy.objects.filter(datasource=datasource).first()
        body = ReviewPolicySerializer(existing, data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        values = dict(body.validated_data)
        groups = values.pop("reviewer_groups", None)
        policy = services.review_policy_set(
            actor=request.user, datasource=datasource, reviewer_groups=groups, **values
        )
        return Response(ReviewPolicySerializer(policy).data)


# ------------------------------------------------------------------ the enforcement agent


class AgentAccessRequestCreate(AgentView):
    @extend_schema(
        request=AgentAccessRequestSerializer,
        responses={200: AgentAccessRequestStateSerializer, 201: AgentAccessRequestStateSerializer},
    )
    def post(self, request: Request) -> Response:
        body = AgentAccessRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        values = dict(body.validated_data)
        datasource = _datasource_or_400(values.pop("datasource"))
        agent_token_serves(request.auth, datasource)
        access_request, created = services.agent_request_submit(
            actor=request.user, datasource=datasource, **values
        )
        data = AgentAccessRequestStateSerializer(access_request, context={"request": request}).data
        return Response(data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class AgentAccessRequestState(AgentView):
    @extend_schema(
        parameters=[WaitQuerySerializer], responses={200: AgentAccessRequestStateSerializer}
    )
    def get(self, request: Request, pk: int) -> Response:
        query_params(request, WaitQuerySerializer)
        # The answer shows the grant (its grantee and datasource by name): one query.
        access_request = selectors.request_with_grants(pk=pk, agent_token=request.auth)
        if access_request is None:
            raise NotFound("No such access request.")
        # The permission class checked it is an agent token; the query, that it serves this.
        if not getattr(access_request, "served", False):
            raise agent_token_refusal(access_request.datasource)
        # The agent acts on this answer (forward or refuse its held statement), so an overdue
        # request expires now rather than at the next beat.
        services.request_expire_if_due(access_request=access_request)
        return Response(
            AgentAccessRequestStateSerializer(access_request, context={"request": request}).data
        )


def _grant_datasource(pk: int) -> DataSource | None:
    grant = Grant.objects.select_related("datasource").filter(pk=pk).first()
    return grant.datasource if grant is not None else None


class AgentGrantRunUse(AgentView):
    extra_error_statuses = CONFLICT_ON_POST

    """One run of a grant limited to max_runs, counted before the agent forwards it."""

    @extend_schema(
        parameters=[OpenApiParameter("datasource", str, required=False)],
        request=None,
        responses={200: GrantRunSerializer},
    )
    def post(self, request: Request, pk: int) -> Response:
        reference = request.query_params.get("datasource", "")
        datasource = _datasource_or_400(reference) if reference else None
        grant_datasource = datasource or _grant_datasource(pk)
        if grant_datasource is not None:
            agent_token_serves(request.auth, grant_datasource)
        grant = services.grant_run_use(actor=request.user, grant_id=pk, datasource=datasource)
        runs = {
            "id": grant.pk,
            "runs_used": grant.runs_used,
            "max_runs": grant.max_runs,
            "runs_left": (grant.max_runs or 0) - grant.runs_used,
        }
        return Response(GrantRunSerializer(runs).data)


# ------------------------------------------------------------------ long-poll entry points


def _still_pending(response: HttpResponse) -> bool:
    """The view's answer says: pending, and not yet past its expiry (an answer without
    ``expires_at`` is the agent's, whose view expires an overdue request itself)."""
    data = getattr(response, "data", None)
    if response.status_code != 200 or not data or data.get("state") != "pending":
        return False
    expires_at = parse_datetime(str(data.get("expires_at") or ""))
    return expires_at is None or expires_at > timezone.now()


def _undecided(pk: int) -> bool:
    """A fallback read (no decision was pushed): still pending and not yet due to expire."""
    row = AccessRequest.objects.filter(pk=pk).values_list("state", "expires_at").first()
    return row is not None and row[0] == AccessRequest.State.PENDING and row[1] > timezone.now()


def _wait_seconds(request: HttpRequest) -> float:
    try:
        wait = float(request.GET.get("wait", "0") or 0)
    except ValueError:
        return 0.0
    return max(0.0, min(wait, float(MAX_WAIT_SECONDS)))


def long_poll(view: Any) -> Any:
    """Wrap a DRF detail view: with ?wait=N, answer once the request is no longer pending.
    The decision is pushed (approvals.push); the database stays the truth."""

    async def entry(request: HttpRequest, pk: int) -> HttpResponse:
        call = sync_to_async(view)
        wait = _wait_seconds(request)
        if not wait:
            return await call(request, pk=pk)
        async with push.decision_subscription(pk) as decision:
            response = await call(request, pk=pk)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait
            while _still_pending(response) and (remaining := deadline - loop.time()) > 0:
                # Same thread as the view calls (per-request thread-sensitive context): one
                # connection, closed by Django when the request finishes.
                pushed = await decision.wait(remaining)
                # No decision was pushed (the fallback read): a cheap query first, the full
                # answer only once something changed or the wait is over (without a channel
                # layer every waiter reads this way, every 200 ms).
                if not pushed and loop.time() < deadline and await sync_to_async(_undecided)(pk):
                    continue
                # Pushed: answer at once (the view reads the database, the truth); a woken
                # held statement does not wait for a state probe first.
                response = await call(request, pk=pk)
        return response

    wrapped = csrf_exempt(entry)
    # drf-spectacular documents the wrapped DRF view (it looks for these attributes).
    wrapped.cls = view.cls  # type: ignore[attr-defined]
    wrapped.initkwargs = view.initkwargs  # type: ignore[attr-defined]
    return wrapped


access_request_detail = long_poll(AccessRequestDetail.as_view())
agent_access_request_state = long_poll(AgentAccessRequestState.as_view())
