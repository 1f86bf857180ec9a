from django.apps import AppConfig
from django.conf import settings


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"

    def ready(self) -> None:
        from governance import signals

        signals.connect()
        # Settings only name these directories; a starting process makes them (the embedded
        # SQLite database lives in DATA_DIR, and WhiteNoise wants STATIC_ROOT to exist).
        for directory in (settings.DATA_DIR, settings.STATIC_ROOT):
            directory.mkdir(parents=True, exist_ok=True)
