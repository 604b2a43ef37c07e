"""Django settings of the sessionkit-py tests (pytest-django). SESSIONKIT's URL is set by conftest.py to a
redis-server of the test run's own."""

import os
import tempfile

SECRET_KEY = "sessionkit-py-tests"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "sessionkit.django",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
# A file, not ":memory:": `manage.py sessionkit` reads the django_session table through its own connection.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": ":memory:",
        "TEST": {"NAME": os.path.join(tempfile.gettempdir(), f"sessionkit-py-tests-{os.getpid()}.sqlite3")},
    },
    # A second database a router can send reads to (test_cached_db's replica test); unused otherwise.
    "replica": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": ":memory:",
        "TEST": {"NAME": os.path.join(tempfile.gettempdir(), f"sessionkit-py-tests-replica-{os.getpid()}.sqlite3")},
    },
}



def _postgres():
    """The PostgreSQL server scripts/test runs (127.0.0.1:5432, user root; SESSIONKIT_TEST_POSTGRES_URL
    postgres://USER@HOST:PORT points elsewhere), when one answers: the "postgres" alias for the parallel-save tests
    of cached_db on PostgreSQL (skipped without it)."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(os.environ.get("SESSIONKIT_TEST_POSTGRES_URL", "postgres://root@127.0.0.1:5432"))
    host, port = url.hostname or "127.0.0.1", url.port or 5432
    try:
        socket.create_connection((host, port), timeout=0.5).close()
    except OSError:
        return None
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "postgres",
        "USER": url.username or "root",
        "PASSWORD": url.password or "",
        "HOST": host,
        "PORT": str(port),
        "TEST": {"NAME": f"sessionkit_py_test_{os.getpid()}"},
    }


if _postgres() is not None:
    DATABASES["postgres"] = _postgres()

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
SESSION_ENGINE = "sessionkit.django.redis"
SESSIONKIT = {"URL": "redis://127.0.0.1:1/0"}  # replaced by conftest.py
LOGGING = {"version": 1, "disable_existing_loggers": False}
