"""sessionkit.metrics(): the counters every store call records, moved by a login and a logout through Django."""

import pytest
from django.contrib.auth.models import User
from django.test import Client

import sessionkit


@pytest.fixture
def admin_user(db):
    return User.objects.create_superuser("admin", "admin@example.com", "s3cret-pass")


def counter(snapshot, name, **labels):
    """The counter ``name`` whose labels include ``labels`` (summed over the rest); 0 when never recorded."""
    return sum(
        c["value"] for c in snapshot["counters"] if c["name"] == name and labels.items() <= c["labels"].items()
    )


def histogram_count(snapshot, name, **labels):
    return sum(
        h["count"] for h in snapshot["histograms"] if h["name"] == name and labels.items() <= h["labels"].items()
    )


def moved(before, after, name, **labels):
    return counter(after, name, **labels) - counter(before, name, **labels)


def test_the_snapshot_is_plain_data():
    snapshot = sessionkit.metrics()
    assert set(snapshot) == {"counters", "histograms"}
    for item in snapshot["counters"]:
        assert set(item) == {"name", "labels", "value"}
        assert isinstance(item["value"], int) and all(isinstance(v, str) for v in item["labels"].values())


def test_login_and_logout_move_the_redis_counters(admin_user):
    before = sessionkit.metrics()
    client = Client()
    assert client.login(username="admin", password="s3cret-pass")
    assert client.get("/counter/").status_code == 200
    client.logout()
    after = sessionkit.metrics()
    assert moved(before, after, "sessionkit_creates_total", store="redis") >= 1
    assert moved(before, after, "sessionkit_loads_total", store="redis", outcome="hit") >= 1
    assert moved(before, after, "sessionkit_saves_total", store="redis", outcome="written") >= 1
    assert moved(before, after, "sessionkit_deletes_total", store="redis") >= 1
    assert histogram_count(after, "sessionkit_load_duration_seconds", store="redis") > histogram_count(
        before, "sessionkit_load_duration_seconds", store="redis"
    )
    # Labels are kinds and outcomes, never hosts or keys.
    assert all("127.0.0.1" not in str(c["labels"]) for c in after["counters"])


def test_cached_db_counts_its_database_half_too(admin_user, settings):
    settings.SESSION_ENGINE = "sessionkit.django.cached_db"
    before = sessionkit.metrics()
    client = Client()
    assert client.login(username="admin", password="s3cret-pass")
    assert client.get("/counter/").status_code == 200
    assert client.get("/counter/").status_code == 200
    client.logout()
    after = sessionkit.metrics()
    # The engine's own calls (the database through Django's ORM)...
    assert moved(before, after, "sessionkit_creates_total", store="cached_db") >= 1
    assert moved(before, after, "sessionkit_loads_total", store="cached_db", outcome="hit") >= 1
    assert moved(before, after, "sessionkit_saves_total", store="cached_db") >= 1
    assert moved(before, after, "sessionkit_deletes_total", store="cached_db") >= 1
    # ...and the cache's, in Rust (the logout's tombstone is written there).
    assert moved(before, after, "sessionkit_creates_total", store="redis") >= 1


def test_record_refuses_unknown_labels():
    from sessionkit._native import record

    with pytest.raises(ValueError):
        record("load_hit", store="mongodb")
    with pytest.raises(ValueError):
        record("no_such_event")
