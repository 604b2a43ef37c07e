"""pytest fixtures: one redis-server for the run (plus private ones for restart tests), settings pointing at it."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")

from redis_server import RedisServer  # noqa: E402


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def sessionkit_settings(redis_server, settings):
    """Every test starts on the run's Redis (flushed), with the string layout, unless it overrides SESSIONKIT."""
    redis_server.client().flushall()
    settings.SESSIONKIT = {"URL": redis_server.url, "TIMEOUT": 2, "CONNECT_TIMEOUT": 2}
    yield


@pytest.fixture
def redis_client(redis_server):
    client = redis_server.client()
    yield client
    client.close()


@pytest.fixture
def private_redis():
    server = RedisServer()
    yield server
    server.close()
