"""Django session engines backed by sessionkit's Rust core.

- ``SESSION_ENGINE = "sessionkit.django.redis"``: sessions in Redis (layouts ``string``, ``hash``, ``django-cache``).
- ``SESSION_ENGINE = "sessionkit.django.cached_db"``: Redis in front of Django's own ``django_session`` table.

Configure with ``SESSIONKIT = {"URL": "redis://…", …}`` (see ``sessionkit.conf``). Add ``"sessionkit.django"`` to
``INSTALLED_APPS`` for the ``manage.py sessionkit`` command. The per-user API is in ``sessionkit.django.users``.
"""
