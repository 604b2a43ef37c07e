"""Per-thread connections of the sync calls: made lazily, bounded, closed with their thread, fork- and
restart-safe (src/local.rs)."""

import os
import threading
import time

import pytest

from django.core.exceptions import ImproperlyConfigured

from sessionkit import SessionkitError, StoreUnavailable
from sessionkit._native import Store
from sessionkit.conf import get_store
from sessionkit.django.redis import SessionStore

CALLS_BEFORE_OWN_CONNECTION = 4


def connected_clients(client):
    return int(client.info("clients")["connected_clients"])


def wait_for(predicate, seconds=5):
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def in_thread(work):
    """Runs ``work`` in a new thread that stays alive until the returned ``release`` is called."""
    ready, release, errors = threading.Event(), threading.Event(), []

    def body():
        try:
            work()
        except Exception as err:  # pragma: no cover - reported by the caller
            errors.append(err)
        ready.set()
        release.wait(10)

    thread = threading.Thread(target=body)
    thread.start()
    assert ready.wait(10)
    assert not errors, errors
    return thread, release


def test_a_thread_gets_its_own_connection_after_a_few_calls_and_closes_it_on_exit(redis_server, redis_client):
    store = Store.connect(redis_server.url)
    key = store.create_new({"a": 1}, 60)
    mine = store.thread_connections  # pytest's thread has made many calls already: 1
    clients_before = connected_clients(redis_client)

    few, release = in_thread(lambda: [store.load(key) for _ in range(CALLS_BEFORE_OWN_CONNECTION)])
    assert store.thread_connections == mine, "a short-lived thread uses the shared connection"
    release.set()
    few.join()

    def many():
        for _ in range(CALLS_BEFORE_OWN_CONNECTION + 3):
            assert store.load(key) == {"a": 1}

    busy, release = in_thread(many)
    assert store.thread_connections == mine + 1
    assert connected_clients(redis_client) == clients_before + 1
    release.set()
    busy.join()
    assert wait_for(lambda: store.thread_connections == mine), "the connection is given back when the thread exits"
    assert wait_for(lambda: connected_clients(redis_client) == clients_before), "and closed"


def test_the_default_bound_and_the_setting(settings, redis_server):
    assert Store.connect(redis_server.url).max_thread_connections == 64
    settings.SESSIONKIT = {"URL": redis_server.url, "THREAD_CONNECTIONS": 0}
    store = get_store("redis")
    assert store.max_thread_connections == 0
    s = SessionStore()
    s["x"] = 1
    s.save()
    for _ in range(CALLS_BEFORE_OWN_CONNECTION + 2):
        assert SessionStore(s.session_key)["x"] == 1
    assert store.thread_connections == 0, "off: every call uses the shared connection"
    settings.SESSIONKIT = {"URL": redis_server.url, "THREAD_CONNECTIONS": -1}
    with pytest.raises(ImproperlyConfigured):
        SessionStore(s.session_key).load()


def test_per_thread_connections_are_bounded(redis_server):
    limit = 5
    store = Store.connect(redis_server.url, "error", limit)
    key = store.create_new({"n": 0}, 60)
    mine = store.thread_connections
    threads = limit + 6
    barrier = threading.Barrier(threads + 1, timeout=30)
    errors = []

    def worker():
        try:
            for _ in range(CALLS_BEFORE_OWN_CONNECTION + 2):
                assert store.load(key) == {"n": 0}
            barrier.wait()  # everyone has made its calls
            assert store.save(key, {"n": 1}, 60)
            barrier.wait()
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)
            barrier.abort()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    assert store.thread_connections == limit
    barrier.wait()
    for t in pool:
        t.join()
    assert not errors, errors
    assert wait_for(lambda: store.thread_connections == mine)
    assert store.load(key) == {"n": 1}


def test_the_first_call_after_a_redis_restart_reconnects(private_redis):
    store = Store.connect(private_redis.url + "?timeout=1&connect_timeout=1")
    results = []

    def work():
        key = store.create_new({"x": 1}, 60)
        for _ in range(CALLS_BEFORE_OWN_CONNECTION + 1):
            store.load(key)
        results.append(store.thread_connections)
        private_redis.stop()
        private_redis.start()  # same port, empty: the thread's connection is closed by the server's exit
        time.sleep(0.1)
        try:  # as on the shared connection: the first call may see the old connection's end (and reconnects)
            store.exists("0" * 32)
        except StoreUnavailable:
            pass
        results.append(store.create_new({"y": 2}, 60))
        results.append(store.load(results[-1]))
        results.append(store.thread_connections)

    thread, release = in_thread(work)
    release.set()
    thread.join()
    assert results[0] == 1, "the thread had its own connection"
    assert results[2] == {"y": 2}
    assert results[3] == 1, "still the thread's own connection, reconnected"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_connects_afresh(redis_server):
    parent_store = Store.connect(redis_server.url)
    key = parent_store.create_new({"from": "parent"}, 60)
    for _ in range(CALLS_BEFORE_OWN_CONNECTION + 1):  # this thread now has its own runtime and connection
        assert parent_store.load(key) == {"from": "parent"}
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        status = 1
        try:
            try:
                parent_store.load(key)
                status = 2  # the parent's store must refuse
            except SessionkitError:
                child_store = Store.connect(redis_server.url)
                for _ in range(CALLS_BEFORE_OWN_CONNECTION + 2):
                    assert child_store.load(key) == {"from": "parent"}
                assert child_store.thread_connections == 1
                assert child_store.save(key, {"from": "child"}, 60)
                status = 0
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert parent_store.load(key) == {"from": "child"}, "the parent's connection still works"
