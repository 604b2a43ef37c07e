"""Django 5.x's async session API and async views on sessionkit.django.redis."""

import asyncio
import time

import django
import pytest
from django.contrib.sessions.backends.base import UpdateError
from django.test import AsyncClient

from sessionkit.django.redis import SessionStore

# Django 4.2 has no async session API (aget, aset, asave, acycle_key, ... came in Django 5.0), so there is nothing
# to call these tests with; on 4.2 async views use the session through the sync methods, as Django's own engines.
pytestmark = pytest.mark.skipif(
    django.VERSION < (5, 0), reason="the async session API (aget, aset, asave, ...) was added in Django 5.0"
)


async def test_async_session_api():
    s = SessionStore()
    await s.aset("a", 1)
    await s.aupdate({"b": [1, 2]})
    await s.asave()
    key = s.session_key
    assert key and await s.aexists(key)

    loaded = SessionStore(key)
    assert await loaded.aget("a") == 1 and await loaded.aitems() is not None
    assert dict(await loaded.aitems()) == {"a": 1, "b": [1, 2]}
    await loaded.aset_expiry(600)
    await loaded.asave()
    assert 595 <= await SessionStore(key).aget_expiry_age() <= 600

    await loaded.acycle_key()
    assert loaded.session_key != key and not await loaded.aexists(key)
    assert await SessionStore(loaded.session_key).aget("b") == [1, 2]

    await loaded.aflush()
    assert loaded.session_key is None
    await SessionStore.aclear_expired()


async def test_async_save_of_a_deleted_session_is_an_update_error():
    s = SessionStore()
    await s.aset("x", 1)
    await s.asave()
    other = SessionStore(s.session_key)
    await other.aget("x")
    await SessionStore(s.session_key).adelete()
    await other.aset("x", 2)
    with pytest.raises(UpdateError):
        await other.asave()


async def test_many_concurrent_async_sessions_on_one_loop():
    async def one(i):
        s = SessionStore()
        await s.aset("i", i)
        await s.asave()
        again = SessionStore(s.session_key)
        return await again.aget("i")

    assert await asyncio.gather(*(one(i) for i in range(200))) == list(range(200))


@pytest.mark.django_db
@pytest.mark.parametrize(
    "middleware", ["django.contrib.sessions.middleware.SessionMiddleware", "sessionkit.django.middleware.SessionMiddleware"]
)
async def test_async_views_through_the_async_client(settings, middleware):
    """Through Django's SessionMiddleware (run in sync_to_async) and sessionkit's (native async)."""
    settings.MIDDLEWARE = [middleware] + [m for m in settings.MIDDLEWARE if not m.endswith(".SessionMiddleware")]
    client = AsyncClient()
    assert (await client.get("/acounter/")).json() == {"n": 1}
    assert (await client.get("/acounter/")).json() == {"n": 2}
    key = client.cookies["sessionid"].value
    assert (await client.get("/acycle/")).json() == {"n": 2}
    assert client.cookies["sessionid"].value != key
    assert (await client.get("/acounter/")).json() == {"n": 3}
    assert await SessionStore(client.cookies["sessionid"].value).aload() == {"n": 3}


async def test_non_json_data_raises_in_async_save_too():
    s = SessionStore()
    await s.aset("x", object())
    with pytest.raises(TypeError):
        await s.asave()


def test_async_results_come_back_through_each_loops_completer():
    """Finished Rust calls are handed back through the running loop's completer (a queue and a socket the loop
    watches), one per loop, dropped with the loop; a cancelled await does not disturb the calls after it."""
    import gc

    from sessionkit import _bridge
    from sessionkit.conf import get_store

    store = get_store("redis")
    key = store.create_new({"a": 1}, 60)

    async def calls():
        cancelled = asyncio.ensure_future(store.aexists(key))
        await asyncio.sleep(0)
        cancelled.cancel()
        results = await asyncio.gather(*(store.aload(key) for _ in range(100)))
        return asyncio.get_running_loop() in _bridge.completers, results

    gc.collect()
    before = len(_bridge.completers)  # loops of earlier tests that are still alive
    for _ in range(3):
        registered, results = asyncio.run(calls())
        assert registered and results == [{"a": 1}] * 100
    # The three finished loops' completers go with their loops; a Rust call still finishing on a Tokio worker (the
    # cancelled one) may hold its loop's completer for a moment.
    deadline = time.monotonic() + 5
    while True:
        gc.collect()
        if len(_bridge.completers) <= before or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert len(_bridge.completers) <= before


def test_a_call_in_flight_when_its_loop_closes_lets_the_loop_go(redis_client):
    """A loop closed while a Rust call is still running (Redis paused) is freed with its completer once the call
    ends: the completer's only strong owner is the loop's reader registration."""
    import gc

    from sessionkit import _bridge
    from sessionkit.conf import get_store

    store = get_store("redis")
    key = store.create_new({"a": 1}, 60)

    async def leave_one_running():
        redis_client.execute_command("CLIENT", "PAUSE", "300", "ALL")
        asyncio.ensure_future(store.aexists(key))
        await asyncio.sleep(0.01)
        return asyncio.get_running_loop() in _bridge.completers

    gc.collect()
    before = len(_bridge.completers)
    for _ in range(3):
        assert asyncio.run(leave_one_running())
    time.sleep(0.8)  # the paused calls end
    # References a Tokio thread dropped are released when the extension next holds the GIL.
    assert store.exists(key)
    gc.collect()
    assert len(_bridge.completers) <= before
