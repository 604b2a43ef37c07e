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
