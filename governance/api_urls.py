from django.urls import path

from governance import api

urlpatterns = [
    path("datasources/", api.DataSourceListCreate.as_view(), name="api-datasource-list"),
    path("datasources/<int:pk>/", api.DataSourceDetail.as_view(), name="api-datasource-detail"),
    path(
        "datasources/<int:pk>/test-connection/",
        api.DataSourceTestConnection.as_view(),
        name="api-datasource-test",
    ),
    path("tags/", api.TagList.as_view(), name="api-tag-list"),
    path("columns/", api.ColumnList.as_view(), name="api-column-list"),
    path("columns/<int:pk>/", api.ColumnDetail.as_view(), name="api-column-detail"),
    path("columns/<int:pk>/tags/", api.ColumnTags.as_view(), name="api-column-tags"),
    path("column-tags/bulk-review/", api.ColumnTagsBulkReview.as_view(), name="api-bulk-review"),
    path("tokens/", api.TokenListCreate.as_view(), name="api-token-list"),
    path("tokens/<int:pk>/revoke/", api.TokenRevoke.as_view(), name="api-token-revoke"),
    path("tokens/<int:pk>/rotate/", api.TokenRotate.as_view(), name="api-token-rotate"),
]
