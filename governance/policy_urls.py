from django.urls import path

from governance import policy_views as views

urlpatterns = [
    path("", views.policy_list, name="policy_list"),
    path("rules/new/<int:datasource_pk>/", views.policy_create, name="policy_create"),
    path("rules/<int:pk>/edit/", views.policy_edit, name="policy_edit"),
    path("rules/<int:pk>/toggle/", views.policy_toggle, name="policy_toggle"),
    path("rules/<int:pk>/delete/", views.policy_delete, name="policy_delete"),
    path("guardrails/new/", views.guardrail_create, name="guardrail_create"),
    path("guardrails/<int:pk>/edit/", views.guardrail_edit, name="guardrail_edit"),
    path("guardrails/<int:pk>/delete/", views.guardrail_delete, name="guardrail_delete"),
    path(
        "guardrails/recommended/<int:datasource_pk>/",
        views.guardrail_recommended,
        name="guardrail_recommended",
    ),
    path("defaults/<int:datasource_pk>/", views.policy_defaults, name="policy_defaults"),
    path("preview/", views.policy_preview, name="policy_preview"),
]
