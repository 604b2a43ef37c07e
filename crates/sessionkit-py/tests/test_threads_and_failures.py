"""Threads sharing one store, the GIL released during Redis I/O, and Redis going away mid-test."""

import threading
import time

import pytest
from django.test import Client

from sessionkit import StoreUnavailable
from sessionkit.conf import get_store
from sessionkit.django.redis import SessionStore


def test_threads_share_one_store(redis_client):
    errors = []
    keys = []

    def worker(n):
        try:
            for i in range(100):
                s = SessionStore()
                s["thread"] = n
                s["i"] = i
                s.save()
                again = SessionStore(s.session_key)
                again["i"] += 1
                again.save()
                assert SessionStore(s.session_key)["i"] == i + 1
                keys.append(s.session_key)
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(set(keys)) == 800
    assert len(redis_client.keys("sessionkit:s:*")) == 800
    assert len({id(get_store("redis"))}) == 1


def test_the_gil_is_released_while_waiting_for_redis(redis_client):
    s = SessionStore()
    s["x"] = 1
    s.save()
    ticks = 0
    done = threading.Event()

    def load_while_paused():
        SessionStore(s.session_key).load()
        done.set()

    redis_client.execute_command("CLIENT", "PAUSE", 600, "ALL")
    waiter = threading.Thread(target=load_while_paused)
    started = time.monotonic()
    waiter.start()
    while not done.is_set() and time.monotonic() - started < 5:
        ticks += 1  # pure Python: runs only if the waiting thread let go of the GIL
    waiter.join()
    assert done.is_set()
    assert time.monotonic() - started >= 0.4, "the load waited for the paused server"
    assert ticks > 10_000, f"the main thread was starved while Redis was paused ({ticks} ticks)"


def test_redis_restart_with_failure_policy_error(settings, private_redis, db):
    settings.SESSIONKIT = {"URL": private_redis.url, "TIMEOUT": 0.5, "CONNECT_TIMEOUT": 0.5}
    s = SessionStore()
    s["x"] = 1
    s.save()
    private_redis.stop()

    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        SessionStore(s.session_key).load()
    assert time.monotonic() - started < 3, "bounded by the timeout"

    client = Client(raise_request_exception=False)
    started = time.monotonic()
    response = client.get("/counter/")
    assert response.status_code == 500, "an unreachable store is an error, never a silent logout"
    assert time.monotonic() - started < 3

    private_redis.start()  # same port, empty (no persistence)
    deadline = time.monotonic() + 10
    while True:  # the connection comes back by itself
        try:
            fresh = SessionStore()
            fresh["y"] = 2
            fresh.save()
            break
        except StoreUnavailable:
            assert time.monotonic() < deadline, "did not reconnect"
            time.sleep(0.2)
    assert SessionStore(fresh.session_key)["y"] == 2
    assert client.get("/counter/").status_code == 200


def test_redis_down_with_failure_policy_empty(settings, private_redis, db):
    settings.SESSIONKIT = {
        "URL": private_redis.url,
        "TIMEOUT": 0.5,
        "CONNECT_TIMEOUT": 0.5,
        "FAILURE_POLICY": "empty",
    }
    s = SessionStore()
    s["x"] = 1
    s.save()
    private_redis.stop()
    started = time.monotonic()
    assert SessionStore(s.session_key).get("x") is None, "loads as an empty session"
    assert time.monotonic() - started < 3
    failing = SessionStore()
    failing["y"] = 1
    with pytest.raises(StoreUnavailable):
        failing.save()  # writes still fail loudly

    # Not even connected yet (a fresh process while Redis is down): still an empty session.
    from sessionkit.conf import reset

    reset()
    assert SessionStore(s.session_key).get("x") is None
    private_redis.start()
