"""The per-user API (list, log out one / all / others) and ``manage.py sessionkit``."""

import datetime
import io
import json
import time

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from sessionkit import session_id
from sessionkit.django import users

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["sessionkit.django.redis", "sessionkit.django.cached_db"])
def engine(request, settings):
    settings.SESSION_ENGINE = request.param
    return request.param


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="pw-alice-1")


def logged_in_client(agent):
    client = Client(HTTP_USER_AGENT=agent)
    assert client.login(username="alice", password="pw-alice-1")
    return client


def test_list_and_log_out_one_all_and_others(engine, alice):
    phone, laptop, tablet = (logged_in_client(a) for a in ("phone", "laptop", "tablet"))
    for c in (phone, laptop, tablet):
        assert c.get("/my-sessions/").status_code == 200  # records the user agent
    sessions = users.user_sessions(alice)
    assert len(sessions) == 3
    assert {s.user_agent for s in sessions} == {"phone", "laptop", "tablet"}
    assert all(s.expires_at and s.last_seen for s in sessions)

    tablet_id = session_id(tablet.cookies["sessionid"].value)
    assert users.logout_session(alice, tablet_id)
    assert tablet.get("/admin/").status_code == 302  # logged out (redirect to login)
    assert len(users.user_sessions(alice)) == 2

    deleted = laptop.get("/logout-others/").json()["deleted"]
    assert deleted == 1
    assert phone.get("/admin/password_change/").status_code == 302
    assert [s.id for s in users.user_sessions(alice)] == [session_id(laptop.cookies["sessionid"].value)]

    assert users.logout_all(alice) == 1
    assert users.user_sessions(alice) == []


def sessionkit(*args):
    """Runs ``manage.py sessionkit ARGS``; returns its stdout."""
    out = io.StringIO()
    call_command("sessionkit", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def failing(*args):
    """Runs ``manage.py sessionkit ARGS`` expecting a CommandError; returns it and the stdout."""
    out = io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("sessionkit", *args, stdout=out, stderr=io.StringIO())
    return raised.value, out.getvalue()


@pytest.mark.django_db(transaction=True)  # committed rows: the command reads django_session on its own connection
def test_management_command(engine, alice):
    client = logged_in_client("cli")
    key = client.cookies["sessionid"].value
    other = logged_in_client("cli-2").cookies["sessionid"].value

    listed = json.loads(sessionkit("list", "--user", str(alice.pk), "--json"))
    assert {s["key"] for s in listed["sessions"]} == {key, other}
    assert all(s["user"] == str(alice.pk) and not s["expired"] for s in listed["sessions"])
    assert listed["listed"] == 2
    if engine == "sessionkit.django.cached_db":
        assert listed["store"].startswith("cached_db:")  # the database rows, as `sessionkit --store cached_db:…`
    # Options before the subcommand are the command's too; no session of another user.
    assert json.loads(sessionkit("--json", "list", "--user", "999"))["sessions"] == []
    table = sessionkit("list")
    assert key in table and "2 session(s) listed" in table

    shown = sessionkit("show", key)
    assert '"_auth_user_id": "%s"' % alice.pk in shown
    assert "user:     %s" % alice.pk in shown
    assert json.loads(sessionkit("show", key, "--json"))["data"]["_auth_user_id"] == str(alice.pk)
    err, _ = failing("show", "nosuchkey1234567")
    assert err.returncode == 3 and str(err).startswith("no session with this key in ")

    assert sessionkit("count") == "2\n"
    stats = sessionkit("stats")
    assert "sessions:           2 (2 valid, 0 expired, 2 logged in)" in stats

    if engine == "sessionkit.django.cached_db":
        # An expired row in django_session: listed, counted, then removed by clear-expired.
        from django.contrib.sessions.backends.db import SessionStore as DBStore
        from django.contrib.sessions.models import Session

        Session.objects.create(
            session_key="expiredsession12345678",
            session_data=DBStore().encode({"old": True}),
            expire_date=timezone.now() - datetime.timedelta(hours=1),
        )
        assert sessionkit("count") == "3\n"
        assert json.loads(sessionkit("list", "--expired", "--json"))["listed"] == 1
        cleared = sessionkit("clear-expired", "--verbose")
        assert "removed 1 expired session(s)" in cleared
        assert sessionkit("count") == "2\n"
        assert not Session.objects.filter(session_key="expiredsession12345678").exists()
    else:
        cleared = sessionkit("clear-expired", "--verbose")
        assert "removed 0 expired session(s)" in cleared and "Redis expires these keys itself" in cleared
    assert sessionkit("clear-expired") == ""  # quiet without --verbose, for cron
    assert client.get("/my-sessions/").status_code == 200  # live sessions untouched

    # doctor, on the test's own redis-server (no persistence). Holding the sessions, that is an error: findings
    # are exit code 3, a CommandError. As the cache of cached_db it is not (the database holds the sessions).
    if engine == "sessionkit.django.cached_db":
        report = sessionkit("doctor")
        assert report.startswith("sessionkit doctor: cached_db:redis://")
        assert "info     role: this Redis server is the cache of a cached_db store" in report
        assert "ok       persistence: not needed: this server is a cached_db cache" in report
        assert "ok       sessions: all 2 sampled sessions decode" in report
        assert "0 problem(s) found" in report
    else:
        err, report = failing("doctor")
        assert err.returncode == 3
        assert report.startswith("sessionkit doctor: redis://")
        assert "ERROR    persistence: no persistence: save is empty and appendonly is no" in report
        assert "ok       layout record: sessionkit:layout matches" in report or "layout=django-cache" in report
        assert "problem(s) found" in report

    # Usage errors are clap's, with exit code 2; --help is the command's own.
    err, _ = failing("list", "--no-such-option")
    assert err.returncode == 2 and "--no-such-option" in str(err)
    assert "Usage: manage.py sessionkit" in sessionkit("--help")


@pytest.mark.django_db(transaction=True)  # committed rows: the command reads django_session on its own connection
def test_user_export_and_erase_command(engine, alice, django_user_model):
    phone, laptop = logged_in_client("phone"), logged_in_client("laptop")
    for c in (phone, laptop):
        assert c.get("/my-sessions/").status_code == 200  # records the user agent
    keys = {c.cookies["sessionid"].value for c in (phone, laptop)}
    bob = django_user_model.objects.create_user("bob", password="pw-bob-1")
    other = Client()
    assert other.login(username="bob", password="pw-bob-1")

    exported = sessionkit("user", "export", str(alice.pk))
    assert not any(key in exported for key in keys)  # session keys are credentials: never exported
    doc = json.loads(exported)
    assert doc["user_id"] == str(alice.pk) and doc["source"] == "index" and doc["complete"]
    assert doc["omitted_keys"] == ["_auth_user_hash"]
    assert {s["id"] for s in doc["sessions"]} == {session_id(k) for k in keys}
    assert {s["user_agent"] for s in doc["sessions"]} == {"phone", "laptop"}
    for s in doc["sessions"]:
        assert s["data"]["_auth_user_id"] == str(alice.pk)
        assert "_auth_user_hash" not in s["data"]
        assert s["expires_at"] and s["decode_error"] is None

    dry = sessionkit("user", "erase", str(alice.pk), "--dry-run")
    assert dry.startswith("dry run: would delete 2 session(s) of user %s in " % alice.pk)
    # The session the client holds is still served (a deleted one would be replaced by a new key).
    phone_key = phone.cookies["sessionid"].value
    assert phone.get("/counter/").json()["key"] == phone_key

    erased = json.loads(sessionkit("user", "erase", str(alice.pk), "--json"))
    assert erased["count"] == 2 and not erased["dry_run"]
    assert sorted(erased["session_ids"]) == sorted(session_id(k) for k in keys)
    assert phone.get("/counter/").json()["key"] != phone_key  # logged out: a new, anonymous session
    assert users.user_sessions(alice) == []
    assert json.loads(sessionkit("user", "export", str(alice.pk)))["sessions"] == []
    assert len(users.user_sessions(bob)) == 1  # another user is untouched
    bob_key = other.cookies["sessionid"].value
    assert other.get("/counter/").json()["key"] == bob_key

    err, _ = failing("user", "export", " ")
    assert err.returncode == 2 and "user id is empty" in str(err)


def test_management_command_needs_a_sessionkit_engine(settings):
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.db"
    with pytest.raises(CommandError, match="not a sessionkit engine"):
        call_command("sessionkit", "list", stdout=io.StringIO())


def test_database_url_of_django_settings(settings):
    from django.db import connections

    from sessionkit.django.management.commands.sessionkit import database_url

    db = connections["default"].settings_dict
    assert database_url() == "sqlite://" + db["NAME"] and db["NAME"].startswith("/")
    saved = dict(db)
    try:
        db.update(ENGINE="django.db.backends.postgresql", NAME="app", USER="me@x", PASSWORD="p:w/d", HOST="db", PORT=5433)
        assert database_url() == "postgres://me%40x:p%3Aw%2Fd@db:5433/app"
        db.update(ENGINE="django.db.backends.mysql", USER="", PASSWORD="", HOST="", PORT="")
        assert database_url() == "mysql://localhost/app"
        # Unix sockets: PostgreSQL's HOST is the socket directory, MySQL's the socket file (sqlx reads socket=).
        db.update(HOST="/run/mysqld/mysqld.sock")
        assert database_url() == "mysql://localhost/app?socket=%2Frun%2Fmysqld%2Fmysqld.sock"
        db.update(ENGINE="django.db.backends.postgresql", HOST="/var/run/postgresql")
        assert database_url() == "postgres:///app?host=%2Fvar%2Frun%2Fpostgresql"
        db.update(ENGINE="django.db.backends.oracle", HOST="")
        with pytest.raises(CommandError, match="oracle"):
            database_url()
    finally:
        db.clear()
        db.update(saved)


@pytest.mark.parametrize("refresh", [300, 0])
def test_saves_within_the_refresh_window_leave_the_index_alone(settings, redis_client, alice, refresh):
    """A save that changes neither the login nor the recorded client skips the per-user index (INDEX_REFRESH);
    a new user agent is written at once; INDEX_REFRESH=0 rewrites the entry on every save."""
    settings.SESSION_ENGINE = "sessionkit.django.redis"
    settings.SESSIONKIT = {**settings.SESSIONKIT, "INDEX_REFRESH": refresh}
    phone = logged_in_client("phone")
    assert phone.get("/my-sessions/").status_code == 200  # records the user agent
    details = f"sessionkit:u:{{{alice.pk}}}:m"
    field = f"{session_id(phone.cookies['sessionid'].value)}:s"
    seen = redis_client.hget(details, field)

    from sessionkit.django.redis import SessionStore

    time.sleep(0.01)
    session = SessionStore(phone.cookies["sessionid"].value)
    session["cart"] = [1, 2]
    session.save()
    assert (redis_client.hget(details, field) != seen) == (refresh == 0)
    assert SessionStore(phone.cookies["sessionid"].value)["cart"] == [1, 2]

    session = SessionStore(phone.cookies["sessionid"].value)
    session["_sessionkit_ua"] = "phone, updated"
    session.save()
    assert [s.user_agent for s in users.user_sessions(alice)] == ["phone, updated"]
