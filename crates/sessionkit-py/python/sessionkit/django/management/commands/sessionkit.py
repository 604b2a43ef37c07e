"""``manage.py sessionkit list|show|count|stats|clear-expired|migrate|doctor``: the ``sessionkit`` command
(docs/cli.md), run by the extension with the same Rust code as the binary, on the configured engine's store and
Django's settings.

Every argument goes to the command as it is: ``manage.py sessionkit list --user 3 --json``,
``manage.py sessionkit show KEY``, ``manage.py sessionkit --help``. The store is the engine's: the Redis URL built
from ``SESSIONKIT`` for ``sessionkit.django.redis``; ``cached_db:<that Redis URL>|<DATABASES["default"] as a
URL>`` for ``sessionkit.django.cached_db``, so ``list`` and ``count`` read the ``django_session`` rows (``doctor``
checks the cache's Redis server). ``--store URL`` picks another store. The secrets and ``SESSION_COOKIE_AGE`` are
Django's settings. A non-zero exit code raises ``CommandError`` with the same code (3: ``show`` found no session,
``doctor`` found problems, ``migrate`` left sessions behind).
"""

import json
import os
from urllib.parse import quote

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from sessionkit import conf
from sessionkit._native import run_cli

#: Options of the ``sessionkit`` command that take a value (to find the subcommand after them).
_VALUED_OPTIONS = {"--store", "--secret-file"}


def _engine():
    engine = conf.current_engine()
    if engine is None:
        raise CommandError(f"SESSION_ENGINE is {settings.SESSION_ENGINE!r}, not a sessionkit engine")
    return engine


def _subcommand(args):
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _VALUED_OPTIONS:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def database_url(alias="default"):
    """Django's database ``alias`` as a store URL of the ``sessionkit`` command (``sqlite:///…``,
    ``postgres://…``, ``mysql://…``)."""
    from django.db import connections

    db = connections[alias].settings_dict
    engine = db.get("ENGINE", "")
    name = str(db.get("NAME") or "")
    user, password = quote(str(db.get("USER") or ""), safe=""), quote(str(db.get("PASSWORD") or ""), safe="")
    host, port = str(db.get("HOST") or ""), str(db.get("PORT") or "")
    if engine.endswith(("sqlite3", "spatialite")):
        if not name or name == ":memory:" or "mode=memory" in name:
            raise CommandError(
                f"DATABASES[{alias!r}] is an in-memory SQLite database, which only Django's own connection sees; "
                "pass --store URL"
            )
        return "sqlite://" + os.path.abspath(name)
    if engine.endswith(("postgresql", "postgis", "postgresql_psycopg2")):
        scheme = "postgres"
    elif engine.endswith("mysql"):
        scheme = "mysql"
    else:
        raise CommandError(
            f"DATABASES[{alias!r}] uses {engine!r}: the sessionkit command reads SQLite, PostgreSQL and "
            "MySQL/MariaDB; pass --store URL"
        )
    auth = ""
    if user:
        auth = user + (":" + password if password else "") + "@"
    query = ""
    if host.startswith("/"):  # a Unix socket directory
        query, host = "?host=" + quote(host, safe=""), ""
    elif ":" in host:  # IPv6
        host = f"[{host}]"
    netloc = auth + (host or ("" if query else "localhost")) + (":" + port if port else "")
    return f"{scheme}://{netloc}/{quote(name, safe='')}{query}"


def store_url(engine):
    """The store URL of the configured engine, as the ``sessionkit`` command takes it."""
    options = conf._setting()
    cache = conf.store_url(options, engine)
    if engine == "cached_db":
        return f"cached_db:{cache}|{database_url()}"
    return cache


def cli_settings():
    """The Django settings the ``sessionkit`` command reads (in its environment variables' format)."""
    values = {
        "SECRET_KEY": str(settings.SECRET_KEY),
        "SECRET_KEY_FALLBACKS": json.dumps([str(k) for k in getattr(settings, "SECRET_KEY_FALLBACKS", [])]),
        "SESSION_COOKIE_AGE": str(int(settings.SESSION_COOKIE_AGE)),
        "SESSION_COOKIE_NAME": str(settings.SESSION_COOKIE_NAME),
    }
    return values


class Command(BaseCommand):
    help = (
        "The sessionkit command on this site's sessions: list, show KEY, count, stats, clear-expired, migrate, "
        "doctor (docs/cli.md). `manage.py sessionkit --help` lists its options."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.add_argument("args", nargs="*", metavar="ARGS", help="the sessionkit command's arguments")
        parse_args = parser.parse_args

        def pass_through(args=None, namespace=None):
            # Every argument (options before the subcommand, --help, -v) is the sessionkit command's; Django's
            # own options keep their defaults (--settings and --pythonpath are read by manage.py before this).
            options = parse_args([], namespace)
            options.args = [str(a) for a in (args or [])]
            return options

        parser.parse_args = pass_through
        self._prog = f"{os.path.basename(prog_name) or 'manage.py'} {subcommand}"
        return parser

    def handle(self, *args, **options):
        args = [str(a) for a in args]
        engine = _engine()
        if engine == "cached_db" and _subcommand(args) == "doctor":
            store = conf.store_url(conf._setting(), engine)  # doctor checks the cache's Redis server
        else:
            store = store_url(engine)
        prog = getattr(self, "_prog", "manage.py sessionkit")
        code, out, err = run_cli([prog, *args], store, cli_settings())
        if out:
            self.stdout.write(out, ending="")
        if code == 0:
            if err:
                self.stderr.write(err, ending="")
            return
        message = err.strip()
        if message.startswith("sessionkit: error: ") and "\n" not in message:
            message = message[len("sessionkit: error: ") :]
        if not message:
            message = f"sessionkit {_subcommand(args) or ''} exited with code {code}".replace("  ", " ")
            if code == 3:
                message += " (findings: see the output above)"
        raise CommandError(message, returncode=code)
