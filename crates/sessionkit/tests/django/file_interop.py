"""Drives Django's own `file` session engine on a directory, for sessionkit's interop tests.

    python file_interop.py --dir /path/to/sessions write --data '{"a": 1}'
    python file_interop.py --dir /path/to/sessions read KEY

`write` creates a session with Django's SessionStore and prints {"key": ..., "expiry_age": ...};
`read` loads one and prints {"key": ..., "data": {...}, "expiry_age": ...} (key is null when Django found nothing).
SECRET_KEY is "interop-secret"; SESSION_COOKIE_NAME is Django's default, "sessionid".
"""
import argparse
import json
import sys

import django
from django.conf import settings


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True, help="SESSION_FILE_PATH")
    sub = parser.add_subparsers(dest="action", required=True)
    write = sub.add_parser("write")
    write.add_argument("--data", default="{}")
    read = sub.add_parser("read")
    read.add_argument("key")
    args = parser.parse_args()

    settings.configure(
        SECRET_KEY="interop-secret",
        INSTALLED_APPS=["django.contrib.sessions"],
        SESSION_ENGINE="django.contrib.sessions.backends.file",
        SESSION_FILE_PATH=args.dir,
        USE_TZ=True,
    )
    django.setup()
    from django.contrib.sessions.backends.file import SessionStore

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
