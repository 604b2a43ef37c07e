"""``SESSIONKIT["CLIENT_CACHE"]``: the Django engine's loads answered from memory, and still true after another
connection's writes and deletes (the two-process proof is crates/sessionkit/tests/redis_client_cache.rs)."""

import asyncio

import django
import pytest

from sessionkit._native import Store
from sessionkit.conf import get_store
from sessionkit.django.redis import SessionStore


def get_calls(redis_client):
    return int(redis_client.info("commandstats").get("cmdstat_get", {}).get("calls", 0))


@pytest.fixture
def cached(settings, redis_server):
    settings.SESSIONKIT = {**settings.SESSIONKIT, "CLIENT_CACHE": True, "PREFIX": "cc:"}
    return settings


def test_the_engine_answers_repeated_loads_from_memory(cached, redis_client):
    session = SessionStore()
    session["visits"] = 1
    session.save()
    before = get_calls(redis_client)
    for _ in range(50):
        again = SessionStore(session.session_key)
        assert again["visits"] == 1
    # A load also asks Redis when a reply may be unread on the tracking connection (rare; more on a busy machine).
    assert get_calls(redis_client) - before <= 10, "the loads were answered from memory"


@pytest.mark.skipif(django.VERSION < (5, 0), reason="the async session API (aget, aset, asave, ...) came in Django 5.0")
def test_async_loads_are_answered_from_memory_too(cached, redis_client):
    async def scenario():
        session = SessionStore()
        await session.aset("visits", 1)
        await session.asave()
        before = get_calls(redis_client)
        for _ in range(50):
            again = SessionStore(session.session_key)
            assert await again.aget("visits") == 1
        return get_calls(redis_client) - before

    assert asyncio.run(scenario()) <= 10


def test_writes_and_deletes_through_another_connection_are_seen(cached, redis_server):
    session = SessionStore()
    session["visits"] = 1
    session.save()
    assert SessionStore(session.session_key)["visits"] == 1  # cached now
    other = Store.connect(f"{redis_server.url}?prefix=cc:")
    for visits in range(2, 30):
        record = other.load(session.session_key)
        record["visits"] = visits
        assert other.save(session.session_key, record, 3600)
        assert SessionStore(session.session_key)["visits"] == visits
    other.delete(session.session_key)
    assert SessionStore(session.session_key).load() == {}


def test_every_sync_call_uses_the_shared_connection(cached, redis_server):
    assert get_store().max_thread_connections == 0
    assert Store.connect(f"{redis_server.url}?client_cache=on", thread_connections=8).max_thread_connections == 0
    assert Store.connect(redis_server.url, thread_connections=8).max_thread_connections == 8


def test_client_cache_is_refused_on_a_cluster_url():
    with pytest.raises(Exception, match="client_cache=on works with a standalone server over plain TCP"):
        Store.connect("redis+cluster://127.0.0.1:7000?client_cache=on")
