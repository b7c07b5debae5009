"""The Django app configuration of ``apikeys.django``."""

from __future__ import annotations

from django.apps import AppConfig


class APIKeysConfig(AppConfig):
    """``INSTALLED_APPS += ["apikeys.django"]``: the key model, its admin and the
    management commands. The app label is ``apikeys``."""

    name = "apikeys.django"
    label = "apikeys"
    verbose_name = "API keys"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Rebuild the managers whenever ``APIKEYS`` changes (``override_settings``)."""
        from django.core.signals import setting_changed

        from apikeys.django._runtime import on_setting_changed

        setting_changed.connect(on_setting_changed, dispatch_uid="apikeys.django.settings")
