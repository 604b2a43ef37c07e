"""The per-user API (list, log out one / all / others) and ``manage.py sessionkit``."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

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


def test_management_command(settings, alice):
    client = logged_in_client("cli")
    key = client.cookies["sessionid"].value
    out = io.StringIO()
    call_command("sessionkit", "list", stdout=out)
    assert key in out.getvalue() and "1 session(s) listed" in out.getvalue()

    out = io.StringIO()
    call_command("sessionkit", "show", key, stdout=out)
    assert '"_auth_user_id": "%s"' % alice.pk in out.getvalue()
    with pytest.raises(CommandError):
        call_command("sessionkit", "show", "nosuchkey1234567", stdout=io.StringIO())

    out = io.StringIO()
    call_command("sessionkit", "stats", stdout=out)
    assert "sessions in Redis: 1" in out.getvalue() and "redis_version" in out.getvalue()

    out = io.StringIO()
    call_command("sessionkit", "clear-expired", stdout=out)
    assert "cleared expired sessions" in out.getvalue()

    out = io.StringIO()
    call_command("sessionkit", "doctor", stdout=out)
    text = out.getvalue()
    assert "[   ok] connection" in text
    assert "persistence: neither RDB snapshots nor AOF" in text  # our test server runs without persistence

    settings.SESSIONKIT = {"URL": settings.SESSIONKIT["URL"], "LAYOUT": "hash"}
    out = io.StringIO()
    call_command("sessionkit", "doctor", stdout=out)
    assert "HPEXPIREAT" in out.getvalue() or "[   ok] version" in out.getvalue()
    assert "listpack" in out.getvalue()

    settings.SESSION_ENGINE = "django.contrib.sessions.backends.db"
    with pytest.raises(CommandError, match="not a sessionkit engine"):
        call_command("sessionkit", "list", stdout=io.StringIO())
