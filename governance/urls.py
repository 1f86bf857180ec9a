from django.urls import path

from governance import agent_views, views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("datasources/", views.datasource_list, name="datasource_list"),
    path("datasources/new/", views.datasource_create, name="datasource_create"),
    path("datasources/<int:pk>/", views.datasource_detail, name="datasource_detail"),
    path("datasources/<int:pk>/edit/", views.datasource_edit, name="datasource_edit"),
    path("datasources/<int:pk>/delete/", views.datasource_delete, name="datasource_delete"),
    path("datasources/<int:pk>/test/", views.datasource_test, name="datasource_test"),
    path(
        "datasources/<int:pk>/connect/token/",
        views.datasource_connect_token,
        name="datasource_connect_token",
    ),
    path("catalog/", views.catalog, name="catalog"),
    path("catalog/review/", views.catalog_bulk_review, name="catalog_bulk_review"),
    path("catalog/columns/<int:pk>/", views.column_detail, name="column_detail"),
    path(
        "catalog/columns/<int:pk>/tags/<str:action>/",
        views.column_tag_action,
        name="column_tag_action",
    ),
    path("agents/", agent_views.agent_list, name="agent_list"),
    path("agents/<int:pk>/forget/", agent_views.agent_forget_view, name="agent_forget"),
    path("tokens/", views.token_list, name="token_list"),
    path("tokens/<int:pk>/revoke/", views.token_revoke_view, name="token_revoke"),
    path("tokens/<int:pk>/rotate/", views.token_rotate_view, name="token_rotate"),
]
