"""Django system checks of SESSIONKIT (sessionkit.E001 …, sessionkit.W001 …), and the same facts at first use."""

import os
import subprocess
import sys
import textwrap

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

TESTS = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def url(redis_server):
    return redis_server.url


def found(sessionkit, engine="sessionkit.django.redis"):
    """The sessionkit messages of ``run_checks()`` with SESSIONKIT = ``sessionkit``: ``[(id, msg, hint)]``."""
    with override_settings(SESSIONKIT=sessionkit, SESSION_ENGINE=engine):
        messages = checks.run_checks()
    return [(m.id, m.msg, m.hint) for m in messages if (m.id or "").startswith("sessionkit.")]


def ids(sessionkit, engine="sessionkit.django.redis"):
    return [i for i, _, _ in found(sessionkit, engine)]


def test_the_app_registers_the_check():
    from sessionkit.django.checks import check_settings

    assert check_settings in checks.registry.registry.get_checks()


def test_a_valid_setting_has_no_findings(url):
    assert found({"URL": url}) == []
    assert found(None) == []
    assert found({"URL": url, "LAYOUT": "hash", "BUCKETS": 64, "HASHED_KEYS": True, "TIMEOUT": 0.5}) == []
    assert found({"URL": url + "?layout=hash", "BUCKETS": 64}) == []  # the layout may be in the URL
    assert found({"URL": url, "CLIENT": "django-redis", "SERIALIZER": "json"}, "sessionkit.django.cached_db") == []
    assert found({"URL": url, "THREAD_CONNECTIONS": 0, "MERGE": False, "FAILURE_POLICY": "empty"}) == []


def test_wrong_types(url):
    [(id, msg, hint)] = found({"URL": url, "BUCKETS": "many"})
    assert id == "sessionkit.E003"
    assert msg == "SESSIONKIT['BUCKETS'] must be a positive integer, e.g. 64; got 'many'"
    assert "'BUCKETS': 64" in hint
    for key, value in [
        ("BUCKETS", 0),
        ("BUCKETS", True),
        ("LAYOUT", "tree"),
        ("TIMEOUT", 0),
        ("TIMEOUT", "5"),
        ("HASHED_KEYS", "yes"),
        ("PICKLE_PROTOCOL", 3),
        ("FAILURE_POLICY", "ignore"),
        ("THREAD_CONNECTIONS", -1),
        ("MERGE", 1),
        ("URL", 6379),
    ]:
        [(id, msg, hint)] = found({"URL": url, key: value})
        assert id == "sessionkit.E003" and msg.startswith(f"SESSIONKIT[{key!r}] must be ") and repr(value) in msg
        assert hint.endswith("}.") and f"{key!r}: " in hint, hint
    [(_, msg, _)] = found({"URL": url, "LAYOUT": "tree"})
    assert msg == "SESSIONKIT['LAYOUT'] must be 'string', 'hash' or 'django-cache'; got 'tree'"


def test_unknown_keys_name_the_closest_and_list_the_known(url):
    [(id, msg, hint)] = found({"URL": url, "BUCKET": 64})
    assert id == "sessionkit.E002"
    assert msg == "SESSIONKIT has an unknown key 'BUCKET'; did you mean 'BUCKETS'?"
    assert hint.startswith("Known keys: ABSOLUTE_TIMEOUT, ADOPT_LAYOUT, BUCKETS, CACHE_ENGINE, CLIENT,") and "URL" in hint
    [(_, msg, _)] = found({"URL": url, "ZZZZZZ": 1})
    assert msg == "SESSIONKIT has an unknown key 'ZZZZZZ'"


def test_not_a_dict():
    [(id, msg, hint)] = found("redis://127.0.0.1:6379/0")
    assert id == "sessionkit.E001" and "must be a dict" in msg and "'URL'" in hint


def test_impossible_combinations(url):
    [(id, msg, hint)] = found({"URL": url, "LAYOUT": "django-cache", "HASHED_KEYS": True})
    assert id == "sessionkit.E004" and "HASHED_KEYS" in msg and "'LAYOUT': 'string'" in hint
    # The cached_db engine's cache defaults to the django-cache layout.
    [(id, msg, _)] = found({"URL": url, "HASHED_KEYS": True}, "sessionkit.django.cached_db")
    assert id == "sessionkit.E004" and "default layout" in msg
    assert found({"URL": url, "HASHED_KEYS": True, "LAYOUT": "string"}, "sessionkit.django.cached_db") == []


def test_an_invalid_url_is_reported_with_the_rust_parsers_reason(url):
    [(id, msg, hint)] = found({"URL": "http://127.0.0.1:6379/0"})
    assert id == "sessionkit.E005" and "is not a Redis scheme" in msg and "redis://" in hint
    [(id, msg, _)] = found({"URL": url + "?buckets=0"})
    assert id == "sessionkit.E005" and "buckets" in msg


def test_options_without_effect_are_warnings(url):
    [(id, msg, hint)] = found({"URL": url, "BUCKETS": 64})
    assert id == "sessionkit.W001"
    assert msg == "SESSIONKIT['BUCKETS'] has no effect: the store uses the string layout, and only the hash layout reads it"
    assert "'hash'" in hint
    assert ids({"URL": url, "LAYOUT": "django-cache", "COMPRESSION": "lz4"}) == ["sessionkit.W001"]
    assert ids({"URL": url, "KEY_PREFIX": "app", "VERSION": 2}) == ["sessionkit.W001", "sessionkit.W001"]
    # django-redis options with Django's RedisCache (the default client).
    [(id, msg, _)] = found({"URL": url, "SERIALIZER": "json"}, "sessionkit.django.cached_db")
    assert id == "sessionkit.W001" and "CLIENT is 'redis-cache'" in msg
    assert ids({"URL": url, "SENTINEL_PASSWORD": "x"}) == ["sessionkit.W002"]
    assert ids({"URL": "redis+sentinel://127.0.0.1:26379/mymaster", "SENTINEL_PASSWORD": "x"}) == []
    assert ids({"URL": url, "USER_INDEX": False, "INDEX_REFRESH": 60}) == ["sessionkit.W003"]


def test_every_finding_has_a_hint(url):
    settings = [
        "x",
        {"URL": url, "NOPE": 1},
        {"URL": url, "BUCKETS": "many"},
        {"URL": url, "LAYOUT": "django-cache", "HASHED_KEYS": True},
        {"URL": "http://x"},
        {"URL": url, "BUCKETS": 64, "SENTINEL_USERNAME": "u", "USER_INDEX": False, "INDEX_REFRESH": 1},
    ]
    seen = set()
    for value in settings:
        for id, msg, hint in found(value):
            assert hint, (id, msg)
            seen.add(id)
    assert seen == {f"sessionkit.E00{n}" for n in range(1, 6)} | {f"sessionkit.W00{n}" for n in range(1, 4)}


def test_first_use_raises_the_same_error(url):
    from sessionkit.django.redis import SessionStore

    with override_settings(SESSIONKIT={"URL": url, "BUCKETS": "many"}):
        with pytest.raises(ImproperlyConfigured) as raised:
            SessionStore().save()
    assert "SESSIONKIT['BUCKETS'] must be a positive integer, e.g. 64; got 'many'" in str(raised.value)
    assert "[sessionkit.E003]" in str(raised.value)
    # Warnings do not stop the store.
    with override_settings(SESSIONKIT={"URL": url, "BUCKETS": 64}):
        s = SessionStore()
        s["x"] = 1
        s.save()
        assert SessionStore(s.session_key)["x"] == 1


def test_the_engine_alone_registers_the_check(tmp_path, redis_server):
    """Without "sessionkit.django" in INSTALLED_APPS, importing the engine (as SessionMiddleware does) registers
    the check."""
    (tmp_path / "engineonly.py").write_text(
        textwrap.dedent(
            f"""
            from settings import *

            INSTALLED_APPS = [app for app in INSTALLED_APPS if not app.startswith("sessionkit")]
            SESSIONKIT = {{"URL": {redis_server.url!r}, "BUCKETS": "many"}}
            """
        )
    )
    script = textwrap.dedent(
        """
        import django
        from django.conf import settings
        from django.core import checks
        from importlib import import_module

        django.setup()
        before = [m.id for m in checks.run_checks() if m.id.startswith("sessionkit.")]
        import_module(settings.SESSION_ENGINE)
        after = [m.id for m in checks.run_checks() if m.id.startswith("sessionkit.")]
        print(before, after)
        """
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "engineonly"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), TESTS, env.get("PYTHONPATH", "")])
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[] ['sessionkit.E003']"
