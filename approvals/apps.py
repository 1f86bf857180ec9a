from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals"

    def ready(self) -> None:
        from approvals.models import Grant
        from governance.signals import watch_bundle_input

        # Live grants are part of every datasource's policy bundle (its grants part only).
        watch_bundle_input(Grant, grants=True)
