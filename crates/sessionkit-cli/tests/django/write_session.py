"""Writes one session with real Django, for the `sessionkit` CLI tests (`sessionkit show` must decode it).

    python write_session.py db    --path /tmp/db.sqlite3 --data '{"a": 1}'
    python write_session.py cache --location redis://127.0.0.1:PORT --compressor zlib --key-prefix P --data '{}' [--datetime]
    python write_session.py legacy --path /tmp/db.sqlite3 --data '{"a": 1}'

`db` runs Django's `migrate sessions` on a SQLite file and saves a session with the `db` engine; `cache` saves one
with the `cache` engine through django-redis (optionally compressed); `--datetime` also stores a
`datetime.datetime` (a pickled Python object sessionkit must name, not execute); `legacy` inserts a row in the
format of Django < 3.1 (`_legacy_encode`: base64 of the SHA-1 salted_hmac hex, ":" and the JSON), made with
Django's own `salted_hmac`. Prints {"key": ...}.
"""
import argparse
import datetime
import json
import sys

import django
from django.conf import settings


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("engine", choices=["db", "cache", "legacy"])
    parser.add_argument("--path")
    parser.add_argument("--location")
    parser.add_argument("--compressor", default="")
    parser.add_argument("--key-prefix", default="")
    parser.add_argument("--data", default="{}")
    parser.add_argument("--datetime", action="store_true")
    args = parser.parse_args()

    options = {}
    if args.compressor:
        classes = {"zlib": "ZlibCompressor", "gzip": "GzipCompressor", "lzma": "LzmaCompressor",
                   "lz4": "Lz4Compressor", "zstd": "ZStdCompressor"}
        options["COMPRESSOR"] = f"django_redis.compressors.{args.compressor}.{classes[args.compressor]}"
    settings.configure(
        SECRET_KEY="cli-test-secret",
        INSTALLED_APPS=["django.contrib.sessions"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": args.path or ":memory:"}},
        CACHES={"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": args.location or "redis://x",
                            "OPTIONS": options, "KEY_PREFIX": args.key_prefix}},
        SESSION_ENGINE=f"django.contrib.sessions.backends.{'db' if args.engine == 'legacy' else args.engine}",
        USE_TZ=True,
    )
    django.setup()
    if args.engine == "legacy":
        return write_legacy(args)
    if args.engine == "db":
        from django.core.management import call_command

        call_command("migrate", "sessions", verbosity=0)
        from django.contrib.sessions.backends.db import SessionStore
    else:
        from django.contrib.sessions.backends.cache import SessionStore
    store = SessionStore()
    store.update(json.loads(args.data))
    if args.datetime:
        store["when"] = datetime.datetime(2026, 1, 2, 3, 4, 5)
    store.save()
    json.dump({"key": store.session_key}, sys.stdout)


def write_legacy(args):
    import base64

    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.core.management import call_command
    from django.utils import timezone
    from django.utils.crypto import get_random_string, salted_hmac

    call_command("migrate", "sessions", verbosity=0)
    serialized = json.dumps(json.loads(args.data), separators=(",", ":")).encode("latin-1")
    digest = salted_hmac("django.contrib.sessions" + SessionStore.__name__, serialized, algorithm="sha1").hexdigest()
    data = base64.b64encode(digest.encode() + b":" + serialized).decode("ascii")
    key = get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789")
    Session.objects.create(session_key=key, session_data=data,
                           expire_date=timezone.now() + datetime.timedelta(days=1))
    json.dump({"key": key}, sys.stdout)


if __name__ == "__main__":
    main()
