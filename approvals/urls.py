from django.urls import path

from approvals import views

app_name = "approvals"
urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("new/", views.request_new, name="request_new"),
    path("new/options/", views.scope_options, name="scope_options"),
    path("new/check/", views.scope_check, name="scope_check"),
    path("break-glass/", views.break_glass, name="break_glass"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/approve/", views.approve, name="approve"),
    path("<int:pk>/deny/", views.deny, name="deny"),
    path("<int:pk>/cancel/", views.cancel, name="cancel"),
    path("grants/<int:pk>/revoke/", views.grant_revoke, name="grant_revoke"),
    path("grants/<int:pk>/extend/", views.grant_extend, name="grant_extend"),
    path("policies/<int:datasource_id>/", views.review_policy, name="review_policy"),
]
