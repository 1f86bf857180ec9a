from django.urls import path

from approvals import api

urlpatterns = [
    path("access-requests/", api.AccessRequestListCreate.as_view(), name="api-access-request-list"),
    path("access-requests/<int:pk>/", api.access_request_detail, name="api-access-request-detail"),
    path(
        "access-requests/<int:pk>/approve/",
        api.AccessRequestApprove.as_view(),
        name="api-access-request-approve",
    ),
    path(
        "access-requests/<int:pk>/deny/",
        api.AccessRequestDeny.as_view(),
        name="api-access-request-deny",
    ),
    path(
        "access-requests/<int:pk>/cancel/",
        api.AccessRequestCancel.as_view(),
        name="api-access-request-cancel",
    ),
    path("grants/", api.GrantList.as_view(), name="api-grant-list"),
    path("grants/<int:pk>/revoke/", api.GrantRevoke.as_view(), name="api-grant-revoke"),
    path("grants/<int:pk>/extend/", api.GrantExtend.as_view(), name="api-grant-extend"),
    path("break-glass/", api.BreakGlass.as_view(), name="api-break-glass"),
    path(
        "review-policies/<int:datasource_id>/",
        api.ReviewPolicyDetail.as_view(),
        name="api-review-policy",
    ),
    # The enforcement agent's contract: exactly these paths, no trailing slash.
    path(
        "agent/access-requests",
        api.AgentAccessRequestCreate.as_view(),
        name="api-agent-access-request-create",
    ),
    path(
        "agent/access-requests/<int:pk>",
        api.agent_access_request_state,
        name="api-agent-access-request-state",
    ),
    path(
        "agent/grants/<int:pk>/runs",
        api.AgentGrantRunUse.as_view(),
        name="api-agent-grant-run-use",
    ),
]
