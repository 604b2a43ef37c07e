"""Idle timeout, absolute lifetime and touch throttling in the Django engines (the Rust core's rules), and the
``session_event`` signal. Time moves with the rules' test clock (``_set_clock_offset``), never by sleeping; Redis'
own TTLs still run on the real time, so a stored expiry is checked as the instant ``now + PTTL``."""

import time

import django
import pytest
from django.contrib.sessions.models import Session
from django.test import Client

from sessionkit import session_id
from sessionkit._native import CREATED_KEY, _set_clock_offset
from sessionkit.conf import get_store
from sessionkit.django import users
from sessionkit.django.signals import session_event

pytestmark = pytest.mark.django_db

ENGINES = ["sessionkit.django.redis", "sessionkit.django.cached_db"]


@pytest.fixture
def clock():
    """Moves the rules' clock: ``clock(61)`` = 61 s after the test started."""
    yield _set_clock_offset
    _set_clock_offset(0)


@pytest.fixture
def events():
    """The ``session_event``s sent during the test, as ``(kind, fields)``."""
    seen = []

    def receiver(sender, kind, **fields):
        fields.pop("signal", None)
        seen.append((kind, fields))

    session_event.connect(receiver, dispatch_uid="test_lifetime")
    yield seen
    session_event.disconnect(dispatch_uid="test_lifetime")


@pytest.fixture(params=ENGINES)
def engine(request, settings):
    settings.SESSION_ENGINE = request.param
    return request.param


def rules(settings, idle=None, absolute=None, touch=None):
    settings.SESSION_IDLE_TIMEOUT = idle
    settings.SESSION_ABSOLUTE_TIMEOUT = absolute
    settings.SESSION_TOUCH_INTERVAL = touch


def engine_class(engine):
    if engine.endswith("cached_db"):
        from sessionkit.django.cached_db import SessionStore
    else:
        from sessionkit.django.redis import SessionStore
    return SessionStore


def redis_key(engine, key):
    if engine.endswith("cached_db"):
        return f":1:django.contrib.sessions.cached_db{key}"
    return f"sessionkit:s:{key}"


def stored(engine, redis_client, key):
    """What is stored: ``(redis value, Redis expiry instant, row session_data, row expire_date instant)``."""
    rkey = redis_key(engine, key)
    value, pttl = redis_client.get(rkey), redis_client.pttl(rkey)
    at = time.time() + pttl / 1000 if pttl > 0 else None
    if not engine.endswith("cached_db"):
        return value, at, None, None
    row = Session.objects.filter(session_key=key).first()
    if row is None:
        return value, at, None, None
    return value, at, row.session_data, row.expire_date.timestamp()


def payload(engine, value):
    """The stored value without the string layout's 6-byte header (which carries the expiry a touch moves)."""
    if value is None or engine.endswith("cached_db"):
        return value
    return value[6:]


def expiry(engine, state):
    """The stored expiry instant: the row's for cached_db (the truth), else Redis'."""
    return state[3] if engine.endswith("cached_db") else state[1]


def test_idle_timeout_touches_at_most_once_per_interval_and_expires(engine, settings, clock, events, redis_client):
    rules(settings, idle=600, touch=60)
    client = Client()
    start = time.time()
    assert client.get("/counter/").json()["n"] == 1
    key = client.cookies["sessionid"].value
    first = stored(engine, redis_client, key)
    assert expiry(engine, first) == pytest.approx(start + 600, abs=3), "a save sets the idle deadline"
    assert client.cookies["sessionid"]["max-age"] == 1209600, "the cookie keeps Django's max-age"

    clock(30)  # within the touch interval: nothing is written
    assert client.get("/peek/").json() == {"n": 1, "key": key}
    assert stored(engine, redis_client, key)[2:] == first[2:]
    assert expiry(engine, stored(engine, redis_client, key)) == pytest.approx(start + 600, abs=3)

    clock(61)  # one touch: only the expiry moves
    assert client.get("/peek/").json()["n"] == 1
    touched = stored(engine, redis_client, key)
    assert payload(engine, touched[0]) == payload(engine, first[0]), "the data is not rewritten"
    assert touched[2] == first[2], "django_session.session_data is unchanged"
    assert expiry(engine, touched) == pytest.approx(start + 661, abs=3), "the touch moved the expiry"
    if engine.endswith("cached_db"):
        assert touched[1] == pytest.approx(start + 661, abs=3), "the cached copy's TTL moved too"

    clock(90)  # within the interval of that touch: nothing again
    client.get("/peek/")
    assert expiry(engine, stored(engine, redis_client, key)) == pytest.approx(start + 661, abs=3)
    assert events == []

    clock(662)  # no request for more than 600 s: expired, deleted, a new session
    assert client.get("/peek/").json() == {"n": None, "key": None}
    assert stored(engine, redis_client, key)[0::2] in [(None, None)] or (
        engine.endswith("cached_db") and stored(engine, redis_client, key)[2] is None
    )
    assert [kind for kind, _ in events] == ["expired"]
    assert events[0][1] == {"session": session_id(key), "user_id": None, "rule": "idle"}


def test_absolute_lifetime_ends_an_active_session(engine, settings, clock, events, redis_client):
    rules(settings, idle=600, absolute=1000)
    client = Client()
    start = time.time()
    client.get("/counter/")
    key = client.cookies["sessionid"].value
    SessionStore = engine_class(engine)
    created = SessionStore(key)[CREATED_KEY]
    assert created == pytest.approx(start, abs=2)
    for at in (300, 600, 900):
        clock(at)
        assert client.get("/counter/").json()["key"] == key
    # At 900 the idle deadline (1500) is past the absolute one (1000): the store keeps the earlier.
    assert expiry(engine, stored(engine, redis_client, key)) == pytest.approx(start + 1000, abs=3)
    clock(1001)
    assert client.get("/counter/").json()["n"] == 1, "a new session"
    assert client.cookies["sessionid"].value != key
    assert [(kind, f["rule"]) for kind, f in events] == [("expired", "absolute")]


@pytest.mark.skipif(django.VERSION < (5, 0), reason="Django's async session API is 5.0+")
async def test_async_load_and_save_touch_and_expire(engine, settings, clock, events, redis_client):
    from asgiref.sync import sync_to_async

    rules(settings, idle=600, touch=60)
    SessionStore = engine_class(engine)
    s = SessionStore()
    await s.aset("x", 1)
    await s.asave()
    key = s.session_key
    start = time.time()
    first = await sync_to_async(stored)(engine, redis_client, key)

    async def read_only_request():
        s = SessionStore(key)
        value = await s.aget("x")
        if s.modified:  # what SessionMiddleware does
            await s.asave()
        return value, s.modified

    clock(30)
    assert await read_only_request() == (1, False)
    clock(61)
    assert await read_only_request() == (1, True), "a touch is due: the session is saved"
    touched = await sync_to_async(stored)(engine, redis_client, key)
    assert payload(engine, touched[0]) == payload(engine, first[0]) and touched[2] == first[2]
    assert expiry(engine, touched) == pytest.approx(start + 661, abs=3)
    clock(662)
    assert await read_only_request() == (None, False)
    assert [(kind, f["rule"]) for kind, f in events] == [("expired", "idle")]


def test_login_cycles_the_key_and_restarts_the_lifetime(engine, settings, clock, events, django_user_model):
    rules(settings, absolute=1000)
    user = django_user_model.objects.create_user("ann", password="pw")
    client = Client()
    client.get("/counter/")
    anonymous = client.cookies["sessionid"].value
    clock(500)
    assert client.login(username="ann", password="pw")
    key = client.cookies["sessionid"].value
    assert key != anonymous
    SessionStore = engine_class(engine)
    assert SessionStore(key)[CREATED_KEY] == pytest.approx(time.time() + 500, abs=2), "the lifetime starts again"
    clock(1200)  # past the first start's deadline, within the login's
    assert client.get("/peek/").json()["n"] == 1
    kinds = [kind for kind, _ in events]
    assert kinds == ["cycled", "logged_in"]
    assert events[0][1] == {"from_": session_id(anonymous), "to": session_id(key), "user_id": None}
    assert events[1][1] == {"session": session_id(key), "user_id": str(user.pk)}
    client.logout()
    assert events[2] == ("flushed", {"session": session_id(key), "user_id": str(user.pk)})


def test_rules_off_write_nothing_of_their_own(engine, settings, redis_client):
    client = Client()
    start = time.time()
    client.get("/counter/")
    key = client.cookies["sessionid"].value
    assert CREATED_KEY not in engine_class(engine)(key).load()
    assert expiry(engine, stored(engine, redis_client, key)) == pytest.approx(start + 1209600, abs=3)


def test_djangos_own_engines_read_sessions_written_under_the_rules(settings, redis_server, redis_client, clock):
    rules(settings, idle=600, absolute=1000)
    # Django's cache engine (Django's RedisCache) on the django-cache layout.
    settings.SESSIONKIT = {"URL": redis_server.url, "LAYOUT": "django-cache"}
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_server.url}}
    from django.contrib.sessions.backends.cache import SessionStore as DjangoCache
    from django.contrib.sessions.backends.db import SessionStore as DjangoDb

    from sessionkit.django.cached_db import SessionStore as CachedDb
    from sessionkit.django.redis import SessionStore as Redis

    ours = Redis()
    ours["x"] = 1
    ours.save()
    theirs = DjangoCache(ours.session_key)
    assert theirs["x"] == 1 and CREATED_KEY in theirs
    theirs["x"] = 2
    theirs.save()
    assert Redis(ours.session_key)["x"] == 2
    # Django's db engine reading the row our cached_db engine wrote.
    settings.SESSION_ENGINE = "sessionkit.django.cached_db"
    settings.SESSIONKIT = {"URL": redis_server.url}
    row = CachedDb()
    row["y"] = 3
    row.save()
    db = DjangoDb(row.session_key)
    assert db["y"] == 3 and CREATED_KEY in db
    db["y"] = 4
    db.save()
    redis_client.delete(redis_key("cached_db", row.session_key))  # Django's db engine leaves our cache alone
    assert CachedDb(row.session_key)["y"] == 4


def test_a_session_stored_before_the_rule_gets_its_start_once(engine, settings, clock):
    SessionStore = engine_class(engine)
    s = SessionStore()
    s["x"] = 1
    s.save()
    rules(settings, absolute=1000)
    later = SessionStore(s.session_key)
    assert later["x"] == 1 and later.modified, "the load added the start: saved once"
    later.save()
    assert SessionStore(s.session_key)[CREATED_KEY] == pytest.approx(time.time(), abs=2)
    again = SessionStore(s.session_key)
    assert again["x"] == 1 and not again.modified


def test_signals_flush_merge_and_revoke(engine, settings, events, django_user_model):
    user = django_user_model.objects.create_user("bob", password="pw")
    SessionStore = engine_class(engine)
    s = SessionStore()
    s["_auth_user_id"] = str(user.pk)
    s.save()
    key = s.session_key
    one, two = SessionStore(key), SessionStore(key)
    one["a"], two["b"] = 1, 2
    one.save()
    two.save()
    assert two["a"] == 1, "merged"
    assert events == [("merge_conflict", {"session": session_id(key), "user_id": str(user.pk)})]
    other = SessionStore()
    other["_auth_user_id"] = str(user.pk)
    other.save()
    assert users.logout_all(user, keep=key) == 1
    assert events[-1] == ("revoked", {"user_id": str(user.pk), "sessions": 1, "kept": session_id(key)})
    two.flush()
    assert events[-1] == ("flushed", {"session": session_id(key), "user_id": str(user.pk)})


def test_a_failing_receiver_does_not_break_the_request(settings, caplog):
    def broken(sender, **kwargs):
        raise RuntimeError("audit log down")

    session_event.connect(broken, dispatch_uid="broken")
    try:
        from sessionkit.django.redis import SessionStore

        s = SessionStore()
        s["x"] = 1
        s.save()
        s.flush()
    finally:
        session_event.disconnect(dispatch_uid="broken")
    assert "audit log down" in caplog.text or "session_event receiver" in caplog.text


def test_settings_in_the_sessionkit_dict_win(settings, redis_server):
    settings.SESSION_IDLE_TIMEOUT = 100
    settings.SESSIONKIT = {"URL": redis_server.url, "IDLE_TIMEOUT": 600}
    from sessionkit.conf import lifetime

    assert lifetime() == (600, None, None)
    assert get_store("redis").lifetime_rules


def lifetime_check_ids(settings, **top):
    from django.core import checks

    for name, value in top.items():
        setattr(settings, name, value)
    return [(m.id, m.msg) for m in checks.run_checks() if (m.id or "").startswith("sessionkit.")]


def test_checks_of_the_lifetime_settings(settings, redis_server):
    settings.SESSIONKIT = {"URL": redis_server.url}
    assert lifetime_check_ids(settings) == []
    assert lifetime_check_ids(settings, SESSION_IDLE_TIMEOUT=1800, SESSION_ABSOLUTE_TIMEOUT=43200) == []
    [(id, msg)] = lifetime_check_ids(settings, SESSION_IDLE_TIMEOUT=0)
    assert id == "sessionkit.E006" and "SESSION_IDLE_TIMEOUT" in msg
    [(id, msg)] = lifetime_check_ids(settings, SESSION_IDLE_TIMEOUT=60, SESSION_TOUCH_INTERVAL=60)
    assert id == "sessionkit.E007" and msg.startswith("SESSION_TOUCH_INTERVAL (60 s) must be shorter")
    [(id, _)] = lifetime_check_ids(settings, SESSION_IDLE_TIMEOUT=600, SESSION_TOUCH_INTERVAL=None,
                                   SESSION_ABSOLUTE_TIMEOUT=300)
    assert id == "sessionkit.E007"
    settings.SESSIONKIT = {"URL": redis_server.url, "IDLE_TIMEOUT": 100}
    [(id, _)] = lifetime_check_ids(settings, SESSION_IDLE_TIMEOUT=200, SESSION_ABSOLUTE_TIMEOUT=None)
    assert id == "sessionkit.W004"
    settings.SESSIONKIT = {"URL": redis_server.url, "TOUCH_INTERVAL": True}
    assert [i for i, _ in lifetime_check_ids(settings, SESSION_IDLE_TIMEOUT=None)] == ["sessionkit.E003"]
