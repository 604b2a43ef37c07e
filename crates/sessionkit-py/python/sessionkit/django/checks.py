"""Django system checks of the ``SESSIONKIT`` setting: ``sessionkit.E001`` … and ``sessionkit.W001`` … (the list
is in the README, "System checks"; the facts are ``sessionkit.conf.problems``, which the first use of the store
applies too).

``register()`` adds the check to Django's registry (tag ``sessionkit``; registering twice is harmless). It runs
from ``SessionkitConfig.ready()`` when ``"sessionkit.django"`` is in ``INSTALLED_APPS``, and at the import of the
engine modules ``sessionkit.django.redis`` and ``sessionkit.django.cached_db``, so a site that only sets
``SESSION_ENGINE`` gets the check once Django has loaded its engine (``SessionMiddleware`` imports it when the
request handler is built). ``manage.py check`` builds no handler: for it, install the app.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core import checks

TAG = "sessionkit"


def check_settings(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Validates ``settings.SESSIONKIT`` for the configured engine (``sessionkit.django.redis`` when
    ``SESSION_ENGINE`` is not a sessionkit engine). Connects to nothing."""
    from django.conf import settings

    from sessionkit import conf

    return conf.problems(getattr(settings, "SESSIONKIT", None), conf.current_engine() or "redis")


def register() -> None:
    """Registers ``check_settings`` with Django's system checks (tag ``sessionkit``)."""
    checks.register(check_settings, TAG)
