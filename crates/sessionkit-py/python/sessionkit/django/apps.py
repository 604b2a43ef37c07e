"""The Django app of sessionkit (only needed for the ``manage.py sessionkit`` command)."""

from django.apps import AppConfig


class SessionkitConfig(AppConfig):
    """``INSTALLED_APPS += ["sessionkit.django"]``."""

    name = "sessionkit.django"
    label = "sessionkit"
    verbose_name = "sessionkit"
