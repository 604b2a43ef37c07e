"""The Django app of sessionkit: the ``manage.py sessionkit`` command and the system checks of ``SESSIONKIT``."""

from django.apps import AppConfig


class SessionkitConfig(AppConfig):
    """``INSTALLED_APPS += ["sessionkit.django"]``."""

    name = "sessionkit.django"
    label = "sessionkit"
    verbose_name = "sessionkit"

    def ready(self) -> None:
        from sessionkit.django import checks

        checks.register()
