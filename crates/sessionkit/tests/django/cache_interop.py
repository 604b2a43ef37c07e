"""Drives Django's own `cache` session engine against a Redis server, for sessionkit's interop tests.

    python cache_interop.py write  --location redis://127.0.0.1:PORT --client redis-cache --data '{"a": 1}'
    python cache_interop.py read   --location ... --client django-redis --key KEY

`write` creates a session with Django's SessionStore and prints {"key": ..., "expiry_age": ...};
`read` loads one and prints {"key": ..., "data": {...}, "expiry_age": ...} (key is null when Django found nothing).
"""
import argparse
import json
import sys

import django
from django.conf import settings


def configure(args):
    if args.client == "redis-cache":
        cache = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": args.location}
    else:
        options = {}
        classes = {"zlib": "ZlibCompressor", "gzip": "GzipCompressor", "lzma": "LzmaCompressor",
                   "lz4": "Lz4Compressor", "zstd": "ZStdCompressor"}
        if args.compressor:
            options["COMPRESSOR"] = f"django_redis.compressors.{args.compressor}.{classes[args.compressor]}"
        cache = {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": args.location, "OPTIONS": options}
    cache["KEY_PREFIX"] = args.key_prefix
    settings.configure(
        SECRET_KEY="interop-secret",
        INSTALLED_APPS=["django.contrib.sessions"],
        CACHES={"default": cache},
        SESSION_ENGINE="django.contrib.sessions.backends.cache",
        USE_TZ=True,
    )
    django.setup()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["write", "read"])
    parser.add_argument("--location", required=True)
    parser.add_argument("--client", choices=["redis-cache", "django-redis"], default="redis-cache")
    parser.add_argument("--compressor", default="")
    parser.add_argument("--key-prefix", default="")
    parser.add_argument("--data", default="{}")
    parser.add_argument("--key")
    args = parser.parse_args()
    configure(args)
    from django.contrib.sessions.backends.cache import SessionStore

    if args.action == "write":
        store = SessionStore()
        store.update(json.loads(args.data))
        store.save()
        out = {"key": store.session_key, "expiry_age": store.get_expiry_age()}
    else:
        store = SessionStore(session_key=args.key)
        data = dict(store.items())
        out = {"key": store.session_key, "data": data, "expiry_age": store.get_expiry_age()}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
