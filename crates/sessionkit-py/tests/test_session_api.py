"""The whole SessionBase API on sessionkit.django.redis, in every layout, against a real Redis."""

import datetime
import logging

import pytest
from django.contrib.sessions.backends.base import UpdateError
from django.utils import timezone

from sessionkit.django.redis import SessionStore

LAYOUTS = ["string", "hash", "django-cache"]


@pytest.fixture(params=LAYOUTS)
def layout(request, settings, redis_server):
    settings.SESSIONKIT = {"URL": redis_server.url, "LAYOUT": request.param, "TIMEOUT": 2}
    return request.param


def test_dict_api_round_trips_json_values(layout):
    s = SessionStore()
    s["str"] = "é ünïcode ✓"
    s["int"] = 42
    s["big"] = 2**80
    s["float"] = 0.1
    s["list"] = [1, "two", None, True, {"nested": [1.5]}]
    s.update({"a": 1, "b": 2})
    assert s.setdefault("a", 99) == 1 and s.setdefault("c", 3) == 3
    assert s.pop("b") == 2 and s.pop("missing", "dflt") == "dflt"
    del s["c"]
    s.save()
    key = s.session_key
    assert key and len(key) == 32

    loaded = SessionStore(key)
    assert dict(loaded.items()) == {
        "str": "é ünïcode ✓",
        "int": 42,
        "big": 2**80,
        "float": 0.1,
        "list": [1, "two", None, True, {"nested": [1.5]}],
        "a": 1,
    }
    assert list(loaded.keys()) == ["str", "int", "big", "float", "list", "a"], "insertion order kept"
    assert "a" in loaded and loaded.get("zzz", 5) == 5 and not loaded.is_empty()
    assert type(loaded["float"]) is float and type(loaded["big"]) is int


def test_modify_and_save_updates_and_missing_sessions_are_new(layout):
    s = SessionStore()
    s["n"] = 1
    s.save()
    again = SessionStore(s.session_key)
    again["n"] += 1
    again.save()
    assert SessionStore(s.session_key)["n"] == 2
    # An unknown, a too-short and a hostile key: empty sessions, new keys on save.
    for key in ["nosuchsession0000000000000000000", "short", "../../etc/passwd-with-slashes"]:
        fresh = SessionStore(key)
        assert fresh.get("n") is None
        fresh["x"] = 1
        fresh.save()
        assert fresh.session_key != key and SessionStore(fresh.session_key)["x"] == 1


def test_save_of_a_session_deleted_meanwhile_is_an_update_error(layout):
    s = SessionStore()
    s["n"] = 1
    s.save()
    other = SessionStore(s.session_key)
    other["n"]  # loaded
    SessionStore(s.session_key).delete()
    other["n"] = 2
    with pytest.raises(UpdateError):
        other.save()
    assert not SessionStore().exists(s.session_key)


def test_set_expiry_forms(layout, redis_client):
    s = SessionStore()
    s.set_expiry(300)
    s.save()
    assert s.get_expiry_age() == 300
    assert 295 <= SessionStore(s.session_key).get_expiry_age() <= 300
    s.set_expiry(0)
    assert s.get_expire_at_browser_close()
    at = timezone.now() + datetime.timedelta(hours=3)
    s.set_expiry(at)
    s.save()
    loaded = SessionStore(s.session_key)
    assert abs(loaded.get_expiry_date() - at) < datetime.timedelta(seconds=1)
    s.set_expiry(None)
    s.save()
    assert SessionStore(s.session_key).get_expiry_age() == 1209600


def test_expired_sessions_do_not_load(layout):
    s = SessionStore()
    s["x"] = 1
    s.set_expiry(1)
    s.save()
    import time

    time.sleep(1.2)
    assert SessionStore(s.session_key).get("x") is None
    SessionStore.clear_expired()  # manage.py clearsessions: works in every layout


def test_cycle_key_keeps_data_and_drops_the_old_key(layout):
    s = SessionStore()
    s["cart"] = [1, 2]
    s.save()
    old = s.session_key
    s.cycle_key()
    assert s.session_key != old
    assert not s.exists(old)
    assert SessionStore(s.session_key)["cart"] == [1, 2]


def test_flush_deletes_and_forgets_the_key(layout):
    s = SessionStore()
    s["x"] = 1
    s.save()
    key = s.session_key
    s.flush()
    assert s.session_key is None and not s.exists(key) and dict(s.items()) == {}


def test_values_json_would_refuse_are_refused(layout):
    s = SessionStore()
    s["when"] = datetime.datetime.now()
    with pytest.raises(TypeError, match="not JSON serializable"):
        s.save()


def test_corrupt_data_loads_as_an_empty_session_with_a_log_line(layout, redis_client, caplog):
    s = SessionStore()
    s["x"] = 1
    s.save()
    from sessionkit.conf import get_store

    store = get_store("redis")
    if layout == "hash":
        bucket = [k for k in redis_client.keys("sessionkit:h:*")][0]
        field = redis_client.hkeys(bucket)[0]
        redis_client.hset(bucket, field, b"\x01garbage")
    else:
        key = [k for k in redis_client.keys("*") if s.session_key.encode() in k][0]
        redis_client.set(key, b"\x80\x05garbage", keepttl=True)
    with caplog.at_level(logging.WARNING, logger="sessionkit.corrupt"):
        assert SessionStore(s.session_key).get("x") is None
    assert any("corrupt" in r.getMessage().lower() for r in caplog.records), caplog.records
    assert store.layout == layout


def test_django_cache_layout_is_read_by_djangos_own_cache_engine(settings, redis_server):
    """Django's cache engine with Django's RedisCache sees the same sessions (and vice versa)."""
    settings.SESSIONKIT = {"URL": redis_server.url, "LAYOUT": "django-cache"}
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_server.url}}
    from django.contrib.sessions.backends.cache import SessionStore as DjangoCacheStore

    ours = SessionStore()
    ours["from"] = "sessionkit"
    ours.save()
    theirs = DjangoCacheStore(ours.session_key)
    assert theirs["from"] == "sessionkit"
    theirs["from"] = "django"
    theirs.save()
    assert SessionStore(ours.session_key)["from"] == "django"


def test_hash_layout_sweeps_expired_fields_on_clear_expired(settings, redis_server, redis_client):
    settings.SESSIONKIT = {"URL": redis_server.url, "LAYOUT": "hash", "BUCKETS": 4}
    s = SessionStore()
    s.set_expiry(1)
    s.save()
    keep = SessionStore()
    keep["k"] = 1
    keep.save()
    import time

    time.sleep(1.1)
    from django.core.management import call_command

    call_command("clearsessions")
    fields = sum(redis_client.hlen(k) for k in redis_client.keys("sessionkit:h:*"))
    assert fields == 1 and SessionStore(keep.session_key)["k"] == 1


def test_bad_settings_are_improperly_configured(settings, redis_server):
    from django.core.exceptions import ImproperlyConfigured

    settings.SESSIONKIT = {"URL": redis_server.url, "LAYOUT": "tree"}
    with pytest.raises(ImproperlyConfigured, match="layout"):
        SessionStore().save()
    settings.SESSIONKIT = {"URL": redis_server.url, "NOPE": 1}
    with pytest.raises(ImproperlyConfigured, match="NOPE"):
        SessionStore().save()


def test_store_url_mapping():
    from sessionkit.conf import store_url

    assert store_url({"URL": "redis://h/1"}) == "redis://h/1"
    assert (
        store_url({"URL": "redis://h/1?protocol=resp3", "LAYOUT": "hash", "BUCKETS": 64, "HASHED_KEYS": True})
        == "redis://h/1?protocol=resp3&layout=hash&buckets=64&hashed_keys=true"
    )
    assert store_url({}, "cached_db") == "redis://127.0.0.1:6379/0?layout=django-cache&engine=cached_db"
    assert store_url({"LAYOUT": "string"}, "cached_db") == "redis://127.0.0.1:6379/0?layout=string"


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ["redis", "cached_db"])
def test_load_without_a_key_is_an_empty_session(engine, settings):
    """Django's engines return {} from load() on a session with no key (SessionMiddleware can get there when a
    view answers 5xx on a new session); sessionkit's did raise TypeError."""
    import importlib

    settings.SESSION_ENGINE = f"sessionkit.django.{engine}"
    store_class = importlib.import_module(settings.SESSION_ENGINE).SessionStore
    s = store_class()
    assert s.load() == {}
    assert s.session_key is None
    assert not s.exists(None)
    s.delete()  # nothing to delete: no error


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ["redis", "cached_db"])
async def test_aload_without_a_key_is_an_empty_session(engine, settings):
    import importlib

    import django

    if django.VERSION < (5, 0):
        pytest.skip("the async session API came in Django 5.0")
    settings.SESSION_ENGINE = f"sessionkit.django.{engine}"
    store_class = importlib.import_module(settings.SESSION_ENGINE).SessionStore
    assert await store_class().aload() == {}


def test_exceptions_name_their_module_and_pickle():
    """Celery and Django's parallel test runner pickle exceptions: they must round-trip and name a module users
    can import."""
    import pickle

    import sessionkit
    from sessionkit import exceptions

    for name in exceptions.__all__:
        cls = getattr(exceptions, name)
        assert cls.__module__ == "sessionkit.exceptions", cls
        assert getattr(sessionkit, name) is cls
        err = pickle.loads(pickle.dumps(cls("store at redis://x is unavailable")))
        assert type(err) is cls and err.args == ("store at redis://x is unavailable",)
        assert issubclass(cls, exceptions.SessionkitError)
