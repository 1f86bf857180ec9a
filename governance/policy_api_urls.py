from django.urls import path

from governance import agent_api, policy_api

urlpatterns = [
    path("policies/", policy_api.PolicyRuleListCreate.as_view(), name="api-policy-list"),
    path("policies/preview/", policy_api.PolicyPreview.as_view(), name="api-policy-preview"),
    path(
        "policies/defaults/<int:pk>/",
        policy_api.DatasourceDefaults.as_view(),
        name="api-policy-defaults",
    ),
    path("policies/<int:pk>/", policy_api.PolicyRuleDetail.as_view(), name="api-policy-detail"),
    path("guardrails/", policy_api.GuardrailListCreate.as_view(), name="api-guardrail-list"),
    path(
        "guardrails/recommended/",
        policy_api.GuardrailRecommended.as_view(),
        name="api-guardrail-recommended",
    ),
    path("guardrails/<int:pk>/", policy_api.GuardrailDetail.as_view(), name="api-guardrail-detail"),
    path("agent/bundle", agent_api.AgentBundle.as_view(), name="api-agent-bundle"),
    path("agent/public-key", agent_api.AgentPublicKey.as_view(), name="api-agent-public-key"),
    path(
        "agent/authenticate", agent_api.AgentAuthenticate.as_view(), name="api-agent-authenticate"
    ),
    path("agent/verifiers", agent_api.AgentLoginVerifiers.as_view(), name="api-agent-verifiers"),
    path("agent/logins", agent_api.AgentLoginRecord.as_view(), name="api-agent-logins"),
    path(
        "agent/logins/abandoned",
        agent_api.AgentLoginAbandoned.as_view(),
        name="api-agent-logins-abandoned",
    ),
    path("agent/heartbeat", agent_api.AgentHeartbeat.as_view(), name="api-agent-heartbeat"),
]
