"""Drives Django's own `db` session engine against PostgreSQL or MariaDB/MySQL, for sessionkit's interop tests.

    python db_interop.py migrate --engine postgresql --name DB [--host H --port P --user U]
    python db_interop.py write   --engine mysql --name DB --data '{"a": 1}'
    python db_interop.py read    --engine mysql --name DB --key KEY

`migrate` runs Django's `migrate sessions` (Django creates django_session with its own DDL) and prints {};
`write` creates a session with Django's SessionStore and prints {"key", "expiry_age", "expire_date"};
`read` loads one and prints {"key", "data", "expiry_age", "expire_date"} (key is null when Django found nothing).
`expire_date` is the stored row's value as naive UTC ISO text with microseconds (null when there is no row).
MySQL goes through PyMySQL (`pymysql.install_as_MySQLdb()`), PostgreSQL through psycopg 3.
"""
import argparse
import datetime
import json
import sys

import django
from django.conf import settings


def configure(args):
    if args.engine == "mysql":
        import pymysql

        pymysql.install_as_MySQLdb()
    database = {
        "ENGINE": f"django.db.backends.{args.engine}",
        "NAME": args.name,
        "USER": args.user,
        "PASSWORD": "",
        "HOST": args.host,
        "PORT": str(args.port),
    }
    settings.configure(
        SECRET_KEY="interop-secret",
        INSTALLED_APPS=["django.contrib.sessions"],
        DATABASES={"default": database},
        SESSION_ENGINE="django.contrib.sessions.backends.db",
        USE_TZ=True,
    )
    django.setup()


def stored_expire_date(key):
    from django.contrib.sessions.models import Session

    row = Session.objects.filter(session_key=key).first()
    if row is None:
        return None
    utc = row.expire_date.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return utc.isoformat(sep=" ", timespec="microseconds")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["migrate", "write", "read"])
    parser.add_argument("--engine", choices=["postgresql", "mysql"], required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int)
    parser.add_argument("--user", default="root")
    parser.add_argument("--data", default="{}")
    parser.add_argument("--key")
    args = parser.parse_args()
    if args.port is None:
        args.port = 5432 if args.engine == "postgresql" else 3306
    configure(args)

    if args.action == "migrate":
        from django.core.management import call_command

        call_command("migrate", "sessions", verbosity=0)
        out = {}
    elif args.action == "write":
        from django.contrib.sessions.backends.db import SessionStore

        store = SessionStore()
        store.update(json.loads(args.data))
        store.save()
        key = store.session_key
        out = {"key": key, "expiry_age": store.get_expiry_age(), "expire_date": stored_expire_date(key)}
    else:
        from django.contrib.sessions.backends.db import SessionStore

        store = SessionStore(session_key=args.key)
        data = dict(store.items())
        out = {
            "key": store.session_key,
            "data": data,
            "expiry_age": store.get_expiry_age(),
            "expire_date": stored_expire_date(args.key),
        }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
