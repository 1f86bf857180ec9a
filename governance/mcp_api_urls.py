from django.urls import path

from governance import mcp_api

urlpatterns = [
    path("mcp/whoami", mcp_api.McpWhoami.as_view(), name="api-mcp-whoami"),
    path("mcp/calls", mcp_api.McpCall.as_view(), name="api-mcp-calls"),
    path("mcp/datasources", mcp_api.McpDatasources.as_view(), name="api-mcp-datasources"),
    path("mcp/catalog", mcp_api.McpCatalog.as_view(), name="api-mcp-catalog"),
    path("mcp/table", mcp_api.McpTable.as_view(), name="api-mcp-table"),
    path("mcp/explain", mcp_api.McpExplain.as_view(), name="api-mcp-explain"),
]
