from django.urls import path

from classification import api

urlpatterns = [
    path("datasources/<int:pk>/scans/", api.ScanStart.as_view(), name="api-scan-start"),
    path("scans/", api.ScanList.as_view(), name="api-scan-list"),
    path("scans/<int:pk>/", api.ScanDetail.as_view(), name="api-scan-detail"),
]
