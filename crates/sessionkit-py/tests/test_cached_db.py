"""sessionkit.django.cached_db: Redis (Rust) in front of Django's own django_session table (ORM)."""

import datetime
import pickle

import django
import pytest
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.utils import timezone

from sessionkit.conf import get_store
from sessionkit.django.cached_db import SessionStore

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def engine(settings):
    settings.SESSION_ENGINE = "sessionkit.django.cached_db"


def cache_key(key):
    return f":1:django.contrib.sessions.cached_db{key}"


def test_writes_go_to_the_table_django_migrated_and_to_redis(redis_client):
    s = SessionStore()
    s["cart"] = [1, 2]
    s.save()
    row = Session.objects.get(session_key=s.session_key)
    assert row.get_decoded() == {"cart": [1, 2]}, "Django itself decodes the row"
    assert redis_client.get(cache_key(s.session_key)) is not None
    assert SessionStore(s.session_key)["cart"] == [1, 2]


def test_cache_miss_reads_the_database_and_refills_the_cache(redis_client):
    s = SessionStore()
    s["x"] = 1
    s.save()
    redis_client.delete(cache_key(s.session_key))
    assert SessionStore(s.session_key)["x"] == 1
    assert redis_client.get(cache_key(s.session_key)) is not None


def test_djangos_own_cached_db_engine_shares_the_sessions(settings, redis_server):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_server.url}}
    from django.contrib.sessions.backends.cached_db import SessionStore as DjangoCachedDb

    ours = SessionStore()
    ours["from"] = "sessionkit"
    ours.save()
    theirs = DjangoCachedDb(ours.session_key)
    assert theirs["from"] == "sessionkit"
    theirs["from"] = "django"
    theirs.save()
    assert SessionStore(ours.session_key)["from"] == "django"


def test_flush_and_delete_remove_row_and_cache(redis_client):
    s = SessionStore()
    s["x"] = 1
    s.save()
    key = s.session_key
    s.flush()
    assert not Session.objects.filter(session_key=key).exists()
    # The cached copy is replaced by a tombstone: Python's None, which Django's cache reads as a miss, for a minute.
    assert redis_client.get(cache_key(key)) == pickle.dumps(None, 5)
    assert 0 < redis_client.pttl(cache_key(key)) <= 60_000
    assert not SessionStore().exists(key)


def test_a_failing_cache_falls_back_to_the_database(settings):
    s = SessionStore()
    s["x"] = 1
    s.save()
    settings.SESSIONKIT = {"URL": "redis://127.0.0.1:1/0", "TIMEOUT": 0.3, "CONNECT_TIMEOUT": 0.3}
    loaded = SessionStore(s.session_key)
    assert loaded["x"] == 1, "the database answers"
    loaded["x"] = 2
    loaded.save()  # cache failure logged, not raised
    assert Session.objects.get(session_key=s.session_key).get_decoded() == {"x": 2}


def test_clearsessions_deletes_expired_rows():
    s = SessionStore()
    s["x"] = 1
    s.save()
    Session.objects.filter(session_key=s.session_key).update(expire_date=timezone.now() - datetime.timedelta(days=1))
    live = SessionStore()
    live["y"] = 1
    live.save()
    call_command("clearsessions")
    assert list(Session.objects.values_list("session_key", flat=True)) == [live.session_key]


@pytest.mark.skipif(
    django.VERSION < (5, 0), reason="the async session API (aget, aset, asave, ...) was added in Django 5.0"
)
async def test_async_api(redis_client):
    s = SessionStore()
    await s.aset("a", 1)
    await s.asave()
    key = s.session_key
    assert await Session.objects.filter(session_key=key).aexists()
    redis_client.delete(cache_key(key))
    assert await SessionStore(key).aget("a") == 1
    await s.acycle_key()
    assert not await SessionStore().aexists(key)
    await s.aflush()
    assert not await Session.objects.filter(session_key=key).aexists()
    assert get_store("cached_db").layout == "django-cache"


def test_admin_login_with_cached_db(client, django_user_model, redis_client):
    django_user_model.objects.create_superuser("boss", "b@example.com", "pw-123456")
    response = client.post("/admin/login/?next=/admin/", {"username": "boss", "password": "pw-123456"})
    assert response.status_code == 302
    key = client.cookies["sessionid"].value
    assert Session.objects.get(session_key=key).get_decoded()["_auth_user_id"]
    assert redis_client.get(cache_key(key)) is not None
    assert client.get("/admin/").status_code == 200


def test_a_save_after_create_needs_no_read():
    """The create remembers the token it wrote, so the next save is one compare-and-set UPDATE."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    s = SessionStore()
    s["a"] = 1
    s.save()
    s["b"] = 2
    with CaptureQueriesContext(connection) as queries:
        s.save()
    assert [q["sql"].split()[0] for q in queries] == ["UPDATE"], queries.captured_queries
    assert dict(SessionStore(s.session_key).items()) == {"a": 1, "b": 2}


class ReadsFromReplica:
    """Sends session reads to the "replica" database, which lags (it holds nothing), and writes to "default"."""

    def db_for_read(self, model, **hints):
        return "replica"

    def db_for_write(self, model, **hints):
        return "default"


@pytest.mark.django_db(databases=["default", "replica"])
def test_a_merge_reads_the_row_from_the_database_it_writes(settings):
    """The row a conflicting save merges with comes from the database the UPDATE goes to, not a lagging replica
    (which would find no row and raise UpdateError, losing the save)."""
    s = SessionStore()
    s["base"] = True
    s.save()
    settings.DATABASE_ROUTERS = [f"{__name__}.ReadsFromReplica"]
    slow = SessionStore(s.session_key)
    slow.items()  # from the cache
    fast = SessionStore(s.session_key)
    fast["fast"] = 1
    fast.save()
    slow["slow"] = 2
    slow.save()
    row = Session.objects.using("default").get(session_key=s.session_key)
    assert SessionStore().decode(row.session_data) == {"base": True, "fast": 1, "slow": 2}


def test_a_busy_session_gets_its_cache_back(redis_client):
    """A cache write that meets another request's copy steps aside (a tombstone), and a tombstone already there
    keeps its expiry: the cache is used again once it expires, even while the session is written all the time."""
    s = SessionStore()
    s["v"] = 0
    s.save()
    key = cache_key(s.session_key)
    first = SessionStore(s.session_key)
    first.items()
    second = SessionStore(s.session_key)
    second["second"] = 2
    second.save()
    first["first"] = 1
    first.save()
    assert redis_client.get(key) == pickle.dumps(None, 5), "stepped aside"
    redis_client.pexpire(key, 1500)
    third = SessionStore(s.session_key)
    third["third"] = 3
    third.save()
    assert 0 < redis_client.pttl(key) <= 1500, "the tombstone was not extended"


def test_cache_writes_after_a_slow_database_step_aside(redis_client):
    from sessionkit._native import REFILL_DEADLINE_SECONDS

    s = SessionStore()
    s["v"] = 1
    s.save()
    key = cache_key(s.session_key)
    assert pickle.loads(redis_client.get(key)) == {"v": 1}
    store = get_store("cached_db")
    assert store.write_copy(s.session_key, {"v": 2}, 60, None, REFILL_DEADLINE_SECONDS) is None
    assert redis_client.get(key) == pickle.dumps(None, 5), "a late write leaves a tombstone, not its copy"
    redis_client.delete(key)
    assert store.refill(s.session_key, {"v": 2}, 60, REFILL_DEADLINE_SECONDS) is None
    assert redis_client.get(key) is None, "a late refill writes nothing"
