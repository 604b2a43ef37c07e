"""Parallel requests on one session never lose each other's writes (docs/concurrency.md), on the Redis engine in
every layout and on cached_db, from threads and from asyncio tasks; MERGE=False is Django's last write wins."""

import asyncio
import threading

import django
import pytest
from django.conf import settings as django_settings
from django.contrib.sessions.backends.base import UpdateError

from sessionkit.django.cached_db import SessionStore as CachedDbStore
from sessionkit.django.redis import SessionStore as RedisStore

LAYOUTS = ["string", "hash", "django-cache"]


@pytest.fixture(params=LAYOUTS)
def layout(request, settings, redis_server):
    settings.SESSIONKIT = {"URL": redis_server.url, "LAYOUT": request.param, "TIMEOUT": 2}
    return request.param


def in_parallel(store_class, key, changes):
    """Each function of ``changes`` gets its own SessionStore of ``key`` in its own thread; all load before any
    saves. Returns what each save raised (None when it saved)."""
    loaded = threading.Barrier(len(changes))
    errors = [None] * len(changes)

    def run(i, change):
        from django.db import connections

        try:
            s = store_class(key)
            s.items()  # loads
            loaded.wait()
            change(s)
            s.save()
        except Exception as err:  # the assertions below look at each one
            errors[i] = err
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, change)) for i, change in enumerate(changes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def setter(name, value):
    def change(s):
        s[name] = value

    return change


def new_session(store_class, **data):
    s = store_class()
    s.update(data)
    s.save()
    return s.session_key


#: Rounds of the two-parallel-requests scenario (issue: 100 of 100 must keep both keys).
ROUNDS = 100


def test_two_threads_setting_different_keys_both_land(layout):
    for _ in range(ROUNDS):
        key = new_session(RedisStore, base=True)
        errors = in_parallel(RedisStore, key, [setter("a", 1), setter("b", 2)])
        assert errors == [None, None]
        assert dict(RedisStore(key).items()) == {"base": True, "a": 1, "b": 2}


def test_a_nested_value_changed_in_place_merges_as_that_key(layout):
    """Django code mutates nested values in place and sets ``modified``: the engine sees the key as changed."""
    key = new_session(RedisStore, cart={"items": ["tea"]}, other=0)

    def add_to_cart(s):
        s["cart"]["items"].append("bread")
        s.modified = True

    errors = in_parallel(RedisStore, key, [add_to_cart, setter("other", 1)])
    assert errors == [None, None]
    assert dict(RedisStore(key).items()) == {"cart": {"items": ["tea", "bread"]}, "other": 1}


def test_removal_and_clear_are_changes_too(layout):
    key = new_session(RedisStore, gone=1, kept=2)

    def remove(s):
        del s["gone"]

    errors = in_parallel(RedisStore, key, [remove, setter("added", 3)])
    assert errors == [None, None]
    assert dict(RedisStore(key).items()) == {"kept": 2, "added": 3}

    def clear(s):
        s.clear()
        s["only"] = True

    other = new_session(RedisStore, old=1)
    errors = in_parallel(RedisStore, other, [clear])
    assert errors == [None]
    assert dict(RedisStore(other).items()) == {"only": True}


def clear_and_set_again_racing_a_write(store_class):
    """After ``clear()``, a key set back to the value it was loaded with is still this request's write, also when
    another request wrote the key meanwhile. Returns the session as stored."""
    key = new_session(store_class, a=1, other=0)
    slow = store_class(key)
    slow.items()
    fast = store_class(key)
    fast["a"] = 2
    fast.save()
    slow.clear()
    slow["a"] = 1
    slow.save()
    return dict(store_class(key).items())


def test_a_key_set_again_after_clear_survives_a_conflict(layout):
    assert clear_and_set_again_racing_a_write(RedisStore) == {"a": 1}


def command_calls(redis_client):
    """How often the server ran each command so far (commands a script runs count too)."""
    return {name: v["calls"] for name, v in redis_client.info("commandstats").items()}


def test_a_save_after_create_is_one_round_trip(layout, redis_client):
    """The create keeps what it wrote, so the next save is the compare-and-set script alone (its one read
    inside), with no load first."""
    warm = RedisStore()
    warm["x"] = 1
    warm.save()
    warm["x"] = 2
    warm.save()  # the script is loaded into the server now
    s = RedisStore()
    s["a"] = 1
    s.save()  # creates
    before = command_calls(redis_client)
    s["b"] = 2
    s.save()
    after = command_calls(redis_client)
    ran = {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}
    reads = ran.get("cmdstat_get", 0) + ran.get("cmdstat_hget", 0)
    assert ran.get("cmdstat_evalsha", 0) + ran.get("cmdstat_eval", 0) == 1 and reads == 1, ran
    assert dict(RedisStore(s.session_key).items()) == {"a": 1, "b": 2}


def test_after_a_merged_save_the_session_holds_the_merged_data(layout):
    key = new_session(RedisStore)
    first = RedisStore(key)
    first.items()
    second = RedisStore(key)
    second["from_second"] = 2
    second.save()
    first["from_first"] = 1
    first.save()
    assert first["from_second"] == 2, "merged in"
    first["again"] = True
    first.save()
    assert dict(RedisStore(key).items()) == {"from_second": 2, "from_first": 1, "again": True}


def test_a_logout_during_a_slow_request_stays_a_logout(layout):
    key = new_session(RedisStore, user="1")
    slow = RedisStore(key)
    slow.items()
    logout = RedisStore(key)
    logout.flush()
    slow["late"] = "write"
    with pytest.raises(UpdateError):
        slow.save()
    assert not RedisStore().exists(key)


def test_djangos_own_cache_engine_reads_the_merged_session(settings, redis_server):
    settings.SESSIONKIT = {"URL": redis_server.url, "LAYOUT": "django-cache"}
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_server.url}}
    from django.contrib.sessions.backends.cache import SessionStore as DjangoCacheStore

    key = new_session(RedisStore, base=True)
    errors = in_parallel(RedisStore, key, [setter("a", 1), setter("b", 2)])
    assert errors == [None, None]
    assert dict(DjangoCacheStore(key).items()) == {"base": True, "a": 1, "b": 2}
    # A write by Django's own engine in between is merged with too (its bytes changed).
    ours = RedisStore(key)
    ours.items()
    theirs = DjangoCacheStore(key)
    theirs["django"] = "wrote this"
    theirs.save()
    ours["sessionkit"] = "wrote that"
    ours.save()
    assert dict(DjangoCacheStore(key).items())["django"] == "wrote this"
    assert dict(DjangoCacheStore(key).items())["sessionkit"] == "wrote that"


def test_merge_false_is_djangos_last_write_wins(settings, redis_server):
    settings.SESSIONKIT = {"URL": redis_server.url, "MERGE": False}
    key = new_session(RedisStore, base=True)
    errors = in_parallel(RedisStore, key, [setter("a", 1), setter("b", 2)])
    assert errors == [None, None]
    stored = dict(RedisStore(key).items())
    assert ("a" in stored) != ("b" in stored), f"exactly one write survives without merging: {stored}"


def cached_db_rounds(using):
    from django.contrib.sessions.models import Session

    for _ in range(ROUNDS):
        key = new_session(CachedDbStore, base=True)
        errors = in_parallel(CachedDbStore, key, [setter("a", 1), setter("b", 2)])
        assert errors == [None, None]
        # Through the cache (or the database when a tombstone stepped aside) and in the database itself.
        assert dict(CachedDbStore(key).items()) == {"base": True, "a": 1, "b": 2}
        row = Session.objects.using(using).get(session_key=key)
        assert CachedDbStore().decode(row.session_data) == {"base": True, "a": 1, "b": 2}


@pytest.mark.django_db(transaction=True)
def test_cached_db_threads_setting_different_keys_both_land(settings):
    settings.SESSION_ENGINE = "sessionkit.django.cached_db"
    cached_db_rounds("default")


class SessionsOnPostgres:
    """Puts the session table on the "postgres" database."""

    def db_for_read(self, model, **hints):
        return "postgres" if model._meta.app_label == "sessions" else None

    db_for_write = db_for_read


@pytest.mark.skipif("postgres" not in django_settings.DATABASES, reason="no PostgreSQL server (scripts/test runs one)")
@pytest.mark.django_db(transaction=True, databases=["default", "postgres"])
def test_cached_db_on_postgresql_threads_setting_different_keys_both_land(settings):
    settings.SESSION_ENGINE = "sessionkit.django.cached_db"
    settings.DATABASE_ROUTERS = [f"{__name__}.SessionsOnPostgres"]
    cached_db_rounds("postgres")


@pytest.mark.django_db(transaction=True)
def test_cached_db_key_set_again_after_clear_survives_a_conflict(settings):
    settings.SESSION_ENGINE = "sessionkit.django.cached_db"
    assert clear_and_set_again_racing_a_write(CachedDbStore) == {"a": 1}


@pytest.mark.django_db(transaction=True)
def test_cached_db_logout_during_a_slow_request_stays_a_logout(settings):
    settings.SESSION_ENGINE = "sessionkit.django.cached_db"
    key = new_session(CachedDbStore, user="1")
    slow = CachedDbStore(key)
    slow.items()
    CachedDbStore(key).flush()
    slow["late"] = "write"
    with pytest.raises(UpdateError):
        slow.save()
    assert not CachedDbStore().exists(key)
    assert CachedDbStore(key).items() is not None and not dict(CachedDbStore(key).items())


@pytest.mark.skipif(django.VERSION < (5, 0), reason="the async session API (aget, asave, ...) came in Django 5.0")
async def test_two_async_tasks_setting_different_keys_both_land(layout):
    for _ in range(5):
        s = RedisStore()
        await s.aset("base", True)
        await s.asave()
        key = s.session_key
        loaded = asyncio.Barrier(2)

        async def task(name, value):
            mine = RedisStore(key)
            await mine.aitems()
            await loaded.wait()
            await mine.aset(name, value)
            await mine.asave()

        await asyncio.gather(task("a", 1), task("b", 2))
        assert dict(await RedisStore(key).aitems()) == {"base": True, "a": 1, "b": 2}


@pytest.mark.skipif(django.VERSION < (5, 0), reason="the async session API (aget, asave, ...) came in Django 5.0")
@pytest.mark.django_db(transaction=True)
async def test_cached_db_async_tasks_setting_different_keys_both_land(settings):
    settings.SESSION_ENGINE = "sessionkit.django.cached_db"
    s = CachedDbStore()
    await s.aset("base", True)
    await s.asave()
    key = s.session_key
    loaded = asyncio.Barrier(2)

    async def task(name, value):
        mine = CachedDbStore(key)
        await mine.aitems()
        await loaded.wait()
        await mine.aset(name, value)
        await mine.asave()

    await asyncio.gather(task("a", 1), task("b", 2))
    assert dict(await CachedDbStore(key).aitems()) == {"base": True, "a": 1, "b": 2}
