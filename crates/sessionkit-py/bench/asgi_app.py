"""The Django project the ASGI benchmark serves with uvicorn (``uvicorn asgi_app:application``), one process per row.

Configured from the environment: ``SK_BENCH_MIDDLEWARE`` (the session middleware's dotted path, or ``none``),
``SK_BENCH_ENGINE`` (``SESSION_ENGINE``), ``SK_BENCH_REDIS`` (the Redis URL; django-redis' ``LOCATION``) and
``SK_BENCH_SESSIONKIT_URL`` (``SESSIONKIT["URL"]``: the Redis URL plus the row's extra store-URL options).

- ``GET /counter/``: an async view that loads the session (``aget``), increments a counter (``aset``); the
  middleware saves it.
- ``GET /plain/``: an async view that does not touch the session (the ceiling of this stack).
- ``GET /seed/?n=N``: creates N logged-in-sized sessions with the row's engine; answers their keys, one a line.
"""

import os

import django
from django.conf import settings

_middleware = os.environ.get("SK_BENCH_MIDDLEWARE", "sessionkit.django.middleware.SessionMiddleware")
_redis = os.environ.get("SK_BENCH_REDIS", "redis://127.0.0.1:6379/0")
settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-secret",
    ALLOWED_HOSTS=["*"],
    USE_TZ=True,
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django.contrib.sessions"],
    MIDDLEWARE=[] if _middleware == "none" else [_middleware],
    DATABASES={},
    CACHES={
        "default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": _redis},
    },
    SESSION_ENGINE=os.environ.get("SK_BENCH_ENGINE", "sessionkit.django.redis"),
    SESSIONKIT={"URL": os.environ.get("SK_BENCH_SESSIONKIT_URL", _redis)},
    LOGGING={"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}},
)
django.setup()

from importlib import import_module  # noqa: E402

from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from payload import LOGIN  # noqa: E402


async def counter(request):
    n = await request.session.aget("visits", 0) + 1
    await request.session.aset("visits", n)
    return HttpResponse(str(n).encode(), content_type="text/plain")


async def plain(request):
    return HttpResponse(b"0", content_type="text/plain")


def seed(request):
    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    keys = []
    for _ in range(int(request.GET.get("n", "1000"))):
        session = store_class()
        session.update(LOGIN)
        session.save()
        keys.append(session.session_key)
    return HttpResponse("\n".join(keys).encode(), content_type="text/plain")


urlpatterns = [path("counter/", counter), path("plain/", plain), path("seed/", seed)]
application = get_asgi_application()
