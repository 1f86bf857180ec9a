"""The API the MCP server calls on behalf of its caller (the caller's own token).

``POST mcp/calls`` opens every tool call: it audits the call (channel ``mcp``), checks the
datasource is visible to the caller and, for statements, names the live agent to send them
to. The other endpoints are the tools' reads. A datasource the caller may not use answers
exactly like an unknown one.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance import caller_selectors
from governance.agent_selectors import agents_for_datasource
from governance.models import DataSource, Sensitivity
from governance.services import policy_preview
from governance.services.mcp import mcp_call_record


class CallSerializer(serializers.Serializer):
    tool = serializers.RegexField(r"^[a-z_]{1,64}$")
    arguments = serializers.DictField(default=dict)
    route = serializers.BooleanField(
        default=False, help_text="Name the live agent of the datasource (statements run there)"
    )


class ExplainSerializer(serializers.Serializer):
    datasource = serializers.CharField()
    sql = serializers.CharField(trim_whitespace=False, max_length=100_000)


def _unknown(name: str) -> Response:
    return Response({"detail": f"Unknown datasource {name!r}."}, status=status.HTTP_404_NOT_FOUND)


def _datasource_param(request: Request) -> tuple[DataSource | None, Response | None]:
    name = request.query_params.get("datasource", "")
    if not name:
        return None, Response(
            {"datasource": ["This parameter is required."]}, status=status.HTTP_400_BAD_REQUEST
        )
    datasource = caller_selectors.datasource_usable(request.user, name)
    return datasource, None if datasource is not None else _unknown(name)


def _agent_summary(datasource: DataSource) -> dict[str, Any] | None:
    statuses = agents_for_datasource(datasource)
    if not statuses:
        return None
    best = statuses[0]
    return {
        "address": best.agent.address,
        "online": best.is_online,
        "last_seen_at": best.agent.last_seen_at.isoformat(),
    }


class McpWhoami(APIView):
    """Who the token belongs to (the MCP transports check tokens with it)."""

    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        return Response({"identity": request.user.get_username()})


class McpCall(APIView):
    @extend_schema(request=CallSerializer, responses={200: dict, 404: dict, 409: dict})
    def post(self, request: Request) -> Response:
        body = CallSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        tool, arguments = body.validated_data["tool"], body.validated_data["arguments"]
        record = {
            "actor": request.user,
            "tool": tool,
            "arguments": arguments,
            "source_address": request.META.get("REMOTE_ADDR", ""),
        }
        name = arguments.get("datasource")
        answer: dict[str, Any] = {"identity": request.user.get_username()}
        if name is None:
            mcp_call_record(**record)
            return Response(answer)
        datasource = caller_selectors.datasource_usable(request.user, str(name))
        if datasource is None:
            mcp_call_record(**record, decision="deny", reason="unknown datasource")
            return _unknown(str(name))
        answer["datasource"] = {"name": datasource.name, "engine": datasource.engine}
        if body.validated_data["route"]:
            agent = _agent_summary(datasource)
            if agent is None or not agent["online"]:
                reason = f"no live Warden agent serves datasource {datasource.name!r}" + (
                    f" (last heartbeat {agent['last_seen_at']})" if agent else ""
                )
                mcp_call_record(**record, datasource=datasource, decision="deny", reason=reason)
                return Response({"detail": reason}, status=status.HTTP_409_CONFLICT)
            answer["agent"] = agent
        mcp_call_record(**record, datasource=datasource)
        return Response(answer)


class McpDatasources(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        return Response(
            {
                "datasources": [
                    {
                        "name": datasource.name,
                        "engine": datasource.engine,
                        "description": datasource.description,
                        "agent": _agent_summary(datasource),
                    }
                    for datasource in caller_selectors.datasources_usable(request.user)
                ]
            }
        )


_SENSITIVITY = {label: value for value, label in Sensitivity.choices}


class McpCatalog(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("datasource", str, required=True),
            OpenApiParameter("q", str, required=False),
            OpenApiParameter("tag", str, required=False),
            OpenApiParameter("min_sensitivity", str, enum=list(_SENSITIVITY), required=False),
            OpenApiParameter("limit", int, required=False),
        ],
        responses={200: dict},
    )
    def get(self, request: Request) -> Response:
        datasource, refusal = _datasource_param(request)
        if datasource is None:
            return refusal
        params = request.query_params
        level = params.get("min_sensitivity") or None
        if level is not None and level not in _SENSITIVITY:
            return Response(
                {"min_sensitivity": [f"Use one of {', '.join(_SENSITIVITY)}."]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        try:
            limit = max(1, min(int(params.get("limit") or 50), 500))
        except ValueError:
            return Response({"limit": ["A whole number."]}, status=status.HTTP_400_BAD_REQUEST)
        query = caller_selectors.CatalogQuery(
            text=params.get("q", ""),
            tag=params.get("tag", ""),
            min_sensitivity=None if level is None else _SENSITIVITY[level],
            limit=limit,
        )
        columns = caller_selectors.catalog_search(request.user, datasource, query)
        return Response({"datasource": datasource.name, "columns": columns})


class McpTable(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("datasource", str, required=True),
            OpenApiParameter("table", str, required=True, description="schema.table or table"),
        ],
        responses={200: dict, 404: dict},
    )
    def get(self, request: Request) -> Response:
        datasource, refusal = _datasource_param(request)
        if datasource is None:
            return refusal
        name = request.query_params.get("table", "")
        described = caller_selectors.table_describe(request.user, datasource, name)
        if described is None:
            return Response(
                {"detail": f"No table {name!r} in {datasource.name}'s catalog."},
                status=status.HTTP_404_NOT_FOUND,
            )
        return Response(described)


class McpExplain(APIView):
    """What the agent would do with the caller's statement, without running it."""

    @extend_schema(request=ExplainSerializer, responses={200: dict, 400: dict, 404: dict})
    def post(self, request: Request) -> Response:
        body = ExplainSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        name = body.validated_data["datasource"]
        datasource = caller_selectors.datasource_usable(request.user, name)
        if datasource is None:
            return _unknown(name)
        # An unparseable statement is InvalidInput: a 400 in the API's one error body.
        preview = policy_preview(
            datasource=datasource, subject=request.user, sql=body.validated_data["sql"]
        )
        return Response(preview)
