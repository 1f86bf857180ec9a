from django.urls import path

from classification import views

app_name = "classification"
urlpatterns = [
    path("", views.scan_list, name="scan_list"),
    path("<int:pk>/", views.scan_detail, name="scan_detail"),
    path("<int:pk>/progress/", views.scan_progress, name="scan_progress"),
    path("start/<int:datasource_pk>/", views.scan_start_view, name="scan_start"),
]
