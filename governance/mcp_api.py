"""The API the MCP server calls on behalf of its caller (the caller's own token).

``POST mcp/calls`` opens every tool call: it audits the call (channel ``mcp``), checks the
datasource is visible to the caller and, for statements, names the live agent to send them
to. The other endpoints are the tools' reads. A datasource the caller may not use answers
exactly like an unknown one.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import NotFound, StateConflict
from config.listing import query_params
from config.serializers import StrictStrings
from governance import caller_selectors
from governance.agent_selectors import agents_for_datasource
from governance.models import DataSource, Sensitivity
from governance.scopes import Scope
from governance.services import policy_preview
from governance.services.mcp import mcp_call_record


class CallSerializer(StrictStrings, serializers.Serializer):
    tool = serializers.RegexField(r"^[a-z_]{1,64}$")
    arguments = serializers.DictField(default=dict)
    route = serializers.BooleanField(
        default=False, help_text="Name the live agent of the datasource (statements run there)"
    )


class ExplainSerializer(StrictStrings, serializers.Serializer):
    datasource = serializers.CharField()
    sql = serializers.CharField(trim_whitespace=False, max_length=100_000)


_SENSITIVITY = {label: value for value, label in Sensitivity.choices}


class CatalogQuerySerializer(StrictStrings, serializers.Serializer):
    datasource = serializers.CharField(help_text="Datasource name")
    q = serializers.CharField(required=False, default="", help_text="Text in a column's name")
    tag = serializers.CharField(required=False, default="", help_text="Tag name")
    min_sensitivity = serializers.ChoiceField(choices=list(_SENSITIVITY), required=False)
    limit = serializers.IntegerField(required=False, default=50, min_value=1, max_value=500)


class TableQuerySerializer(StrictStrings, serializers.Serializer):
    datasource = serializers.CharField(help_text="Datasource name")
    table = serializers.CharField(help_text="schema.table or table")


def _usable(request: Request, name: str) -> DataSource:
    """The caller's datasource; one the caller may not use answers like an unknown one."""
    datasource = caller_selectors.datasource_usable(request.user, name)
    if datasource is None:
        raise NotFound(f"Unknown datasource {name!r}.")
    return datasource


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


class McpView(APIView):
    """The MCP server's calls on behalf of its caller: tokens with the ``query`` scope."""

    token_scopes: tuple[str, ...] = (Scope.QUERY,)


class McpWhoami(McpView):
    """Who the token belongs to (the MCP transports check tokens with it)."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        return Response({"identity": request.user.get_username()})


class McpCall(McpView):
    extra_error_statuses = {"POST": (404, 409)}

    @extend_schema(request=CallSerializer, responses={200: OpenApiTypes.OBJECT})
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
            raise NotFound(f"Unknown datasource {str(name)!r}.")
        answer["datasource"] = {"name": datasource.name, "engine": datasource.engine}
        if body.validated_data["route"]:
            agent = _agent_summary(datasource)
            if agent is None or not agent["online"]:
                reason = f"no live Warden agent serves datasource {datasource.name!r}" + (
                    f" (last heartbeat {agent['last_seen_at']})" if agent else ""
                )
                mcp_call_record(**record, datasource=datasource, decision="deny", reason=reason)
                raise StateConflict(reason)
            answer["agent"] = agent
        mcp_call_record(**record, datasource=datasource)
        return Response(answer)


class McpDatasources(McpView):
    @extend_schema(responses={200: OpenApiTypes.OBJECT})
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


class McpCatalog(McpView):
    extra_error_statuses = {"GET": (404,)}

    @extend_schema(parameters=[CatalogQuerySerializer], responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        params = query_params(request, CatalogQuerySerializer)
        datasource = _usable(request, params["datasource"])
        level = params.get("min_sensitivity")
        query = caller_selectors.CatalogQuery(
            text=params["q"],
            tag=params["tag"],
            min_sensitivity=None if level is None else _SENSITIVITY[level],
            limit=params["limit"],
        )
        columns = caller_selectors.catalog_search(request.user, datasource, query)
        return Response({"datasource": datasource.name, "columns": columns})


class McpTable(McpView):
    extra_error_statuses = {"GET": (404,)}

    @extend_schema(parameters=[TableQuerySerializer], responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        params = query_params(request, TableQuerySerializer)
        datasource = _usable(request, params["datasource"])
        name = params["table"]
        described = caller_selectors.table_describe(request.user, datasource, name)
        if described is None:
            raise NotFound(f"No table {name!r} in {datasource.name}'s catalog.")
        return Response(described)


class McpExplain(McpView):
    """What the agent would do with the caller's statement, without running it."""

    extra_error_statuses = {"POST": (404,)}

    @extend_schema(request=ExplainSerializer, responses={200: OpenApiTypes.OBJECT})
    def post(self, request: Request) -> Response:
        body = ExplainSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        datasource = _usable(request, body.validated_data["datasource"])
        # An unparseable statement is InvalidInput: a 400 in the API's one error body.
        preview = policy_preview(
            datasource=datasource, subject=request.user, sql=body.validated_data["sql"]
        )
        return Response(preview)
