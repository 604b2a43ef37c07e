"""``manage.py sessionkit list|show|stats|clear-expired|doctor``: inspect the sessions of the configured
sessionkit engine. Listing and counting use SCAN (never KEYS), in the Rust core."""

import datetime
import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from sessionkit import SessionkitError
from sessionkit.conf import get_store


def _engine():
    engine = settings.SESSION_ENGINE
    if engine == "sessionkit.django.redis":
        return "redis"
    if engine == "sessionkit.django.cached_db":
        return "cached_db"
    raise CommandError(f"SESSION_ENGINE is {engine!r}, not a sessionkit engine")


def _when(seconds):
    if seconds is None:
        return "-"
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


class Command(BaseCommand):
    help = "Inspect sessionkit sessions: list, show KEY, stats, clear-expired, doctor."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="list stored sessions (SCAN)")
        listing.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
        show = sub.add_parser("show", help="show one session's data")
        show.add_argument("key")
        sub.add_parser("stats", help="session count and server facts")
        sub.add_parser("clear-expired", help="remove expired sessions (as clearsessions)")
        sub.add_parser("doctor", help="check the Redis server's settings for sessions")

    def handle(self, *args, action, **options):
        engine = _engine()
        try:
            store = get_store(engine)
            getattr(self, "do_" + action.replace("-", "_"))(engine, store, options)
        except SessionkitError as err:
            raise CommandError(str(err)) from err

    def do_list(self, engine, store, options):
        sessions = store.list_sessions(options["limit"])
        self.stdout.write(f"{'id':<64}  {'expires':<23}  bytes")
        for item in sessions:
            shown = item["id"] + (" (sha256)" if item["key_is_hashed"] else "")
            self.stdout.write(f"{shown:<64}  {_when(item['expires_at']):<23}  {item['bytes']}")
        self.stdout.write(f"{len(sessions)} session(s) listed ({store.describe})")

    def do_show(self, engine, store, options):
        key = options["key"]
        found = store.show(key)
        if found is None and engine == "cached_db":
            from sessionkit.django.cached_db import SessionStore

            session = SessionStore(key)
            if session.exists(key):
                data = session.load()
                self.stdout.write("in the database (not cached)")
                self.stdout.write(json.dumps(data, indent=2, sort_keys=False))
                return
        if found is None:
            raise CommandError("no session under this key")
        self.stdout.write(f"stored bytes: {found['bytes']}")
        self.stdout.write(f"expires: {_when(found['expires_at'])}")
        self.stdout.write(json.dumps(found["data"], indent=2, sort_keys=False))

    def do_stats(self, engine, store, options):
        self.stdout.write(f"store: {store.describe}")
        self.stdout.write(f"layout: {store.layout}")
        self.stdout.write(f"sessions in Redis: {store.count()}")
        if engine == "cached_db":
            from sessionkit.django.cached_db import SessionStore

            self.stdout.write(f"rows in django_session: {SessionStore.get_model_class().objects.count()}")
        for key, value in store.server_stats().items():
            self.stdout.write(f"{key}: {value}")

    def do_clear_expired(self, engine, store, options):
        from importlib import import_module

        engine_module = import_module(settings.SESSION_ENGINE)
        before = store.count()
        engine_module.SessionStore.clear_expired()
        after = store.count()
        self.stdout.write(f"cleared expired sessions ({before - after} removed from Redis)")

    def do_doctor(self, engine, store, options):
        worst = "ok"
        for status, check, message in store.doctor():
            self.stdout.write(f"[{status:>5}] {check}: {message}")
            if status == "error" or (status == "warn" and worst == "ok"):
                worst = status
        if worst == "error":
            raise CommandError("doctor found errors")
