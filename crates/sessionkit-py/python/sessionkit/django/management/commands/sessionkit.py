"""``manage.py sessionkit list|show|count|stats|clear-expired|migrate|doctor|user``: the ``sessionkit`` command,
run by the extension with the same Rust code as the binary, on the configured engine's store and Django's settings.

Django's standard options (``--settings``, ``--pythonpath``, ``-v``/``--verbosity``, ``--traceback``,
``--no-color``, ``--force-color``, ``--skip-checks``) are Django's, before or after the subcommand, and work as for
any command (``-v 0`` drops the command's notes on stderr, ``-v 2`` or more makes ``clear-expired`` verbose); every
other argument goes to the command as it is: ``manage.py sessionkit list --user 3 --json``, ``manage.py
sessionkit show KEY``, ``manage.py sessionkit --help`` (the command's help, then Django's options). ``-v`` is
Django's when a verbosity (0-3) follows it, else ``clear-expired``'s ``-v`` (``--verbose``). After ``--`` every
argument is the command's.

The store is the engine's: the Redis URL built from ``SESSIONKIT`` for ``sessionkit.django.redis``;
``cached_db:<that Redis URL>|<DATABASES["default"] as a URL>`` for ``sessionkit.django.cached_db``, so ``list`` and
``count`` read the ``django_session`` rows (``doctor`` checks the cache's Redis server, graded as a cache). ``--store URL`` picks
another store. The secrets and ``SESSION_COOKIE_AGE`` are Django's settings. A non-zero exit code raises
``CommandError`` with the same code (3: ``show`` found no session, ``doctor`` found problems, ``migrate`` left
sessions behind).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sessionkit import conf
from sessionkit._native import run_cli

#: Options of the ``sessionkit`` command that take a value (to find the subcommand after them).
_VALUED_OPTIONS = {"--store", "--secret-file"}

#: Django's options of every command (``BaseCommand.create_parser``) that ``manage.py sessionkit`` takes, before or
#: after the subcommand: option -> its ``dest``, and whether it takes a value.
DJANGO_OPTIONS: dict[str, tuple[str, bool]] = {
    "--settings": ("settings", True),
    "--pythonpath": ("pythonpath", True),
    "-v": ("verbosity", True),
    "--verbosity": ("verbosity", True),
    "--traceback": ("traceback", False),
    "--no-color": ("no_color", False),
    "--force-color": ("force_color", False),
    "--skip-checks": ("skip_checks", False),
}
_VERBOSITIES = ("0", "1", "2", "3")
_HELP = ("-h", "--help")


def split_args(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """Splits a command line into Django's options (``DJANGO_OPTIONS``, with their values) and the ``sessionkit``
    command's arguments. ``-v`` is Django's when a verbosity follows it (``-v 2``, ``-v2``), else it is the
    command's (``clear-expired -v``); after ``--`` everything is the command's."""
    django: list[str] = []
    command: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        following = args[i + 1] if i + 1 < len(args) else None
        name, equals, _ = arg.partition("=")
        option = DJANGO_OPTIONS.get(name)
        if arg == "--":
            command += args[i:]
            break
        if arg.startswith("-v") and not arg.startswith("--"):
            if arg[2:] in _VERBOSITIES:  # -v2
                django.append(arg)
            elif arg == "-v" and following in _VERBOSITIES:  # -v 2
                django += [arg, args[i + 1]]
                i += 1
            else:  # clear-expired -v
                command.append(arg)
        elif option is not None and (option[1] or not equals):
            django.append(arg)
            if option[1] and not equals and following is not None:  # --settings X (not --settings=X)
                django.append(following)
                i += 1
        else:
            command.append(arg)
        i += 1
    return django, command


def _wants_help(args: Sequence[str]) -> bool:
    before_end = args[: args.index("--")] if "--" in args else args
    return any(arg in _HELP for arg in before_end)


def _engine() -> conf.Engine:
    engine = conf.current_engine()
    if engine is None:
        raise CommandError(f"SESSION_ENGINE is {settings.SESSION_ENGINE!r}, not a sessionkit engine")
    return engine


def _subcommand(args: Sequence[str]) -> str | None:
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _VALUED_OPTIONS:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def database_url(alias: str = "default") -> str:
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
    if host.startswith("/") and scheme == "mysql":  # MySQL: HOST is the socket file itself (sqlx's socket=)
        query, host = "?socket=" + quote(host, safe=""), "localhost"
    elif host.startswith("/"):  # PostgreSQL: a Unix socket directory
        query, host = "?host=" + quote(host, safe=""), ""
    elif ":" in host:  # IPv6
        host = f"[{host}]"
    netloc = auth + (host or ("" if query else "localhost")) + (":" + port if port else "")
    return f"{scheme}://{netloc}/{quote(name, safe='')}{query}"


def store_url(engine: conf.Engine) -> str:
    """The store URL of the configured engine, as the ``sessionkit`` command takes it."""
    options = conf._setting(engine)
    cache = conf.store_url(options, engine)
    if engine == "cached_db":
        return f"cached_db:{cache}|{database_url()}"
    return cache


def cli_settings() -> dict[str, str]:
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
        "doctor, user export ID, user erase ID. `manage.py sessionkit --help` lists its options."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.add_argument("args", nargs="*", metavar="ARGS", help="the sessionkit command's arguments")
        parse_args = parser.parse_args

        def pass_through(
            args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
        ) -> argparse.Namespace:
            # Django's own options (wherever they are) are parsed by Django's parser, so they work as for any
            # command (manage.py also reads --settings and --pythonpath before this); the rest, --help included,
            # is the sessionkit command's.
            django, command = split_args([str(a) for a in (args or [])])
            options = parse_args(django, namespace)
            options.args = command
            return options

        parser.parse_args = pass_through  # type: ignore[method-assign,assignment]
        self._prog = f"{os.path.basename(prog_name) or 'manage.py'} {subcommand}"
        self._parser = parser
        return parser

    def django_options_help(self, parser: CommandParser) -> str:
        """The help of Django's options, as a section after the command's own help."""
        formatter = parser._get_formatter()
        formatter.start_section("Django options (before or after the subcommand)")
        dests = {dest for dest, _ in DJANGO_OPTIONS.values()}
        formatter.add_arguments([action for action in parser._actions if action.dest in dests])
        formatter.end_section()
        return formatter.format_help()

    def command_help(self, args: Sequence[str], prog: str, parser: CommandParser) -> str:
        """The ``sessionkit`` command's help for ``args`` (``--help``, ``list --help``, …), then Django's options."""
        code, out, err = run_cli([prog, *args], None, {})
        if code != 0:
            raise CommandError(err.strip() or f"sessionkit --help exited with code {code}", returncode=code)
        return out.rstrip("\n") + "\n\n" + self.django_options_help(parser)

    def print_help(self, prog_name: str, subcommand: str) -> None:
        """``manage.py help sessionkit``: the same help as ``manage.py sessionkit --help``."""
        parser = self.create_parser(prog_name, subcommand)
        self.stdout.write(self.command_help(["--help"], self._prog, parser), ending="")

    def handle(self, *args: str, **options: Any) -> None:
        command = [str(a) for a in args]
        prog = getattr(self, "_prog", "manage.py sessionkit")
        verbosity = int(options.get("verbosity", 1))
        if _wants_help(command) or _subcommand(command) == "help":
            parser = getattr(self, "_parser", None) or self.create_parser("manage.py", "sessionkit")
            self.stdout.write(self.command_help(command, prog, parser), ending="")
            return
        engine = _engine()
        subcommand = _subcommand(command)
        if verbosity >= 2 and subcommand == "clear-expired" and "--" not in command:
            if not {"-v", "--verbose"} & set(command):
                command.append("--verbose")
        # doctor on cached_db gets the whole cached_db URL too: it checks the cache's Redis server as a cache (the
        # database holds the sessions) and samples the database's rows.
        store = store_url(engine)
        code, out, err = run_cli([prog, *command], store, cli_settings())
        if out:
            self.stdout.write(out, ending="")
        if code == 0:
            if err and verbosity > 0:
                self.stderr.write(err, ending="")
            return
        message = err.strip()
        if message.startswith("sessionkit: error: ") and "\n" not in message:
            message = message[len("sessionkit: error: ") :]
        if not message:
            message = f"sessionkit {subcommand or ''} exited with code {code}".replace("  ", " ")
            if code == 3:
                message += " (findings: see the output above)"
        raise CommandError(message, returncode=code)
