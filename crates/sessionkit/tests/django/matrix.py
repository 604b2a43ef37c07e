"""Real Django for sessionkit's interop matrix (crates/sessionkit/tests/django_matrix.rs).

    python matrix.py CONFIG_JSON

CONFIG_JSON configures Django for one matrix row:
    {"secret_key": "...", "engine": "db" | "cache" | "cached_db" | "file" | "signed_cookies",
     "database": {Django DATABASES["default"]}, "cache": {Django CACHES["default"]} or null,
     "file_path": "/dir" or null}
The database always holds django.contrib.auth's tables (for rows whose sessions live elsewhere, it is a SQLite
file next to the row's other resources).

Then it answers one JSON command per stdin line with one JSON line on stdout:
    {"op": "setup"}                       -> {"version", "users": {"alice": "1", ...}}: migrates, creates users
    {"op": "write", "data": {...} or "data_json": "{...}", "expiry": ISO}
                                          -> {"key", "expiry_date", "storage_expiry"}: Django's SessionStore saves
    {"op": "read", "key": K}              -> {"found", "data_json", "expiry_date", "storage_expiry"}
    {"op": "login", "username", "password"} -> {"key", "user_id"}: the test client logs in via django.contrib.auth
    {"op": "whoami", "key": K}            -> {"user_id"}: request.user of a request carrying the session cookie
    {"op": "touch", "key": K}             -> {"status", "key", "user_id"}: a request with the cookie that writes to
                                             its session; the status and the session cookie it leaves
    {"op": "set_password", "username", "password"} -> {}
Dates are ISO 8601 in UTC. Errors come back as {"error": "..."}; the process keeps serving.
"""
import datetime
import json
import sys
import traceback

import django
from django.conf import settings
from django.http import HttpResponse
from django.urls import path

CONFIG = json.loads(sys.argv[1])


def whoami(request):
    user = request.user
    return HttpResponse(str(user.pk) if user.is_authenticated else "")


def touch(request):
    request.session["touched"] = True
    user = request.user
    return HttpResponse(str(user.pk) if user.is_authenticated else "")


urlpatterns = [path("whoami/", whoami), path("touch/", touch)]


def configure():
    database = dict(CONFIG["database"])
    if database["ENGINE"].endswith("mysql"):
        import pymysql

        pymysql.install_as_MySQLdb()
    options = {
        "SECRET_KEY": CONFIG["secret_key"],
        "INSTALLED_APPS": ["django.contrib.contenttypes", "django.contrib.auth", "django.contrib.sessions"],
        "DATABASES": {"default": database},
        "SESSION_ENGINE": f"django.contrib.sessions.backends.{CONFIG['engine']}",
        "MIDDLEWARE": [
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        "ROOT_URLCONF": __name__,
        "ALLOWED_HOSTS": ["*"],
        "USE_TZ": True,
        # Fast hashing: the matrix checks sessions, not password strength.
        "PASSWORD_HASHERS": ["django.contrib.auth.hashers.MD5PasswordHasher"],
    }
    if CONFIG.get("cache"):
        options["CACHES"] = {"default": CONFIG["cache"]}
    if CONFIG.get("file_path"):
        options["SESSION_FILE_PATH"] = CONFIG["file_path"]
    settings.configure(**options)
    django.setup()


def utc_iso(moment):
    if moment is None:
        return None
    return moment.astimezone(datetime.timezone.utc).isoformat()


def store_class():
    from importlib import import_module

    return import_module(settings.SESSION_ENGINE).SessionStore


def storage_expiry(key):
    """When the storage itself will drop the session, as Django set it (None where it keeps no expiry)."""
    engine = CONFIG["engine"]
    if engine in ("db", "cached_db"):
        from django.contrib.sessions.models import Session

        row = Session.objects.filter(session_key=key).first()
        return utc_iso(row.expire_date) if row else None
    if engine == "cache":
        from django.core.cache import cache

        cache_key = cache.make_key(store_class().cache_key_prefix + key)
        if hasattr(cache, "ttl"):  # django-redis
            ttl = cache.ttl(store_class().cache_key_prefix + key)
        else:  # Django's RedisCache
            ttl = cache._cache.get_client(cache_key).ttl(cache_key)
        if ttl is None or ttl < 0:
            return None
        return utc_iso(datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=ttl))
    return None


def op_setup(_):
    from django.contrib.auth.models import User
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    users = {}
    for name in ("alice", "bob"):
        user = User.objects.filter(username=name).first() or User.objects.create_user(name, password=f"{name}-pw")
        users[name] = str(user.pk)
    return {"version": django.get_version(), "users": users}


def op_write(command):
    store = store_class()()
    store.update(json.loads(command["data_json"]) if "data_json" in command else command["data"])
    if command.get("expiry"):
        store.set_expiry(datetime.datetime.fromisoformat(command["expiry"]))
    store.save()
    key = store.session_key
    return {"key": key, "expiry_date": utc_iso(store.get_expiry_date()), "storage_expiry": storage_expiry(key)}


def op_read(command):
    store = store_class()(session_key=command["key"])
    data = dict(store.items())
    return {
        "found": bool(data),
        # The data as Django's JSONSerializer writes it (keeps NaN/Infinity, which a JSON reader may not take).
        "data_json": json.dumps(data, separators=(",", ":")),
        "expiry_date": utc_iso(store.get_expiry_date()),
        "storage_expiry": storage_expiry(command["key"]),
    }


def op_login(command):
    from django.test import Client

    client = Client()
    if not client.login(username=command["username"], password=command["password"]):
        return {"error": "Django refused the login"}
    from django.contrib.auth.models import User

    user = User.objects.get(username=command["username"])
    return {"key": client.cookies[settings.SESSION_COOKIE_NAME].value, "user_id": str(user.pk)}


def op_whoami(command):
    from django.test import Client

    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = command["key"]
    response = client.get("/whoami/")
    if response.status_code != 200:
        return {"error": f"GET /whoami/ answered {response.status_code}"}
    body = response.content.decode()
    return {"user_id": body or None}


def op_touch(command):
    from django.test import Client

    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = command["key"]
    response = client.get("/touch/")
    cookie = response.cookies.get(settings.SESSION_COOKIE_NAME)
    return {
        "status": response.status_code,
        "key": cookie.value if cookie is not None else None,
        "user_id": response.content.decode() or None,
    }


def op_set_password(command):
    from django.contrib.auth.models import User

    user = User.objects.get(username=command["username"])
    user.set_password(command["password"])
    user.save()
    return {}


OPERATIONS = {
    "setup": op_setup,
    "write": op_write,
    "read": op_read,
    "login": op_login,
    "whoami": op_whoami,
    "touch": op_touch,
    "set_password": op_set_password,
}


def main():
    configure()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            command = json.loads(line)
            reply = OPERATIONS[command["op"]](command)
        except Exception as exc:  # report and keep serving: one failed cell must not hide the others
            reply = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        # allow_nan=False: a NaN must only ever travel inside data_json, so the Rust side's JSON reader never sees it.
        try:
            line = json.dumps(reply, allow_nan=False)
        except ValueError as exc:
            line = json.dumps({"error": f"reply not JSON: {exc}"})
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
