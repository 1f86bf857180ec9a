from django.urls import path

from audit import api

urlpatterns = [
    path("agent/audit", api.AgentAuditIngestView.as_view(), name="agent-audit-ingest"),
    path("audit/events/", api.EventListView.as_view(), name="audit-event-list"),
    path("audit/events/<uuid:pk>/", api.EventDetailView.as_view(), name="audit-event-detail"),
    path("audit/verify/", api.VerifyView.as_view(), name="audit-verify"),
    path("audit/checkpoints/", api.CheckpointListView.as_view(), name="audit-checkpoint-list"),
    path("audit/exports/", api.ExportView.as_view(), name="audit-export"),
]
