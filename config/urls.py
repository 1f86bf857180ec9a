from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config import health
from governance.scopes import ALL_SCOPES


class SchemaView(SpectacularAPIView):
    """The API's description is public: any token may fetch it."""

    token_scopes = ALL_SCOPES


class DocsView(SpectacularSwaggerView):
    token_scopes = ALL_SCOPES


api_v1 = [
    path("", include("governance.api_urls")),
    path("", include("governance.policy_api_urls")),
    path("", include("governance.mcp_api_urls")),
    path("", include("classification.api_urls")),
    path("", include("approvals.api_urls")),
    path("", include("audit.api_urls")),
    path("version", health.VersionView.as_view(), name="api-version"),
    path("schema/", SchemaView.as_view(), name="api-schema"),
    path("docs/", DocsView.as_view(url_name="api-schema"), name="api-docs"),
]

handler400 = "config.api.bad_request"
handler404 = "config.api.not_found"
handler500 = "config.api.server_error"

urlpatterns = [
    path("favicon.ico", RedirectView.as_view(url=static("img/favicon.svg"), permanent=True)),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("accounts/", include("allauth.urls")),
    path("django-admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("scans/", include("classification.urls")),
    path("approvals/", include("approvals.urls")),
    path("audit/", include("audit.urls")),
    path("policies/", include("governance.policy_urls")),
    path("", include("governance.urls")),
]
