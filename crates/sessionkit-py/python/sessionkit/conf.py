"""The ``SESSIONKIT`` setting: one dict, mapped to a store URL for the Rust core.

Every option is a query parameter of the Redis store URL (docs/redis.md); the mapping is ``OPTION_NAMES``.
``FAILURE_POLICY``, ``THREAD_CONNECTIONS`` and ``MERGE`` are applied by the extension (not part of the URL). Options already in ``URL`` are kept; an
option given in the dict wins over the same option in the URL.
"""

import os
import threading
from urllib.parse import urlencode

from django.core.exceptions import ImproperlyConfigured

from sessionkit._native import ConfigurationError, Store

DEFAULT_URL = "redis://127.0.0.1:6379/0"

#: SESSIONKIT key -> store URL query parameter.
OPTION_NAMES = {
    "LAYOUT": "layout",  # "string" (default for sessionkit.django.redis), "hash", "django-cache"
    "PREFIX": "prefix",  # key prefix of the string/hash layouts and the per-user index, default "sessionkit:"
    "COMPRESSION": "compression",  # "zstd" (default), "lz4", "none"
    "COMPRESS_MIN_BYTES": "compress_min_bytes",  # 512 (string) / 128 (hash)
    "BUCKETS": "buckets",  # hash layout: number of bucket hashes, default 1024
    "HASHED_KEYS": "hashed_keys",  # store SHA-256 of session keys (string/hash), default False
    "CONNECT_TIMEOUT": "connect_timeout",  # seconds, default 5
    "TIMEOUT": "timeout",  # seconds for any reply, default 5
    "USER_INDEX": "user_index",  # keep the per-user index, default True
    "INDEX_REFRESH": "index_refresh",  # seconds: saves within this window leave the index entry alone, default 300
    "KEY_PREFIX": "key_prefix",  # django-cache layout: the Django cache's KEY_PREFIX
    "VERSION": "version",  # django-cache layout: the Django cache's VERSION
    "CACHE_ENGINE": "engine",  # django-cache layout: "cache" or "cached_db" key prefix
    "CLIENT": "client",  # django-cache layout: "redis-cache" (Django's RedisCache) or "django-redis"
    "SERIALIZER": "serializer",  # django-cache + django-redis: "pickle", "json", "msgpack"
    "COMPRESSOR": "compressor",  # django-cache + django-redis: "zlib", "gzip", "lz4", "zstd", "lzma", "none"
    "PICKLE_PROTOCOL": "pickle_protocol",
    "SENTINEL_USERNAME": "sentinel_username",
    "SENTINEL_PASSWORD": "sentinel_password",
}
KNOWN = set(OPTION_NAMES) | {"URL", "FAILURE_POLICY", "THREAD_CONNECTIONS", "MERGE"}

#: Default of SESSIONKIT["THREAD_CONNECTIONS"]: at most this many threads per process get a Redis connection of their
#: own for the sync session calls (0: every call uses the one shared connection).
DEFAULT_THREAD_CONNECTIONS = 64

_lock = threading.Lock()
_stores = {}
#: (pid, engine) -> the store for the current settings; emptied whenever SESSIONKIT changes.
_current = {}


def _setting():
    from django.conf import settings

    value = getattr(settings, "SESSIONKIT", None) or {}
    if not isinstance(value, dict):
        raise ImproperlyConfigured("SESSIONKIT must be a dict, e.g. {'URL': 'redis://127.0.0.1:6379/0'}")
    unknown = set(value) - KNOWN
    if unknown:
        raise ImproperlyConfigured(
            f"SESSIONKIT has unknown option(s) {sorted(unknown)}; known: {sorted(KNOWN)}"
        )
    return value


def _text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


#: SESSION_ENGINE path -> the engine name ``get_store`` takes.
ENGINES = {"sessionkit.django.redis": "redis", "sessionkit.django.cached_db": "cached_db"}


def current_engine():
    """The configured sessionkit engine (``"redis"`` or ``"cached_db"``), or None when SESSION_ENGINE is another."""
    from django.conf import settings

    return ENGINES.get(settings.SESSION_ENGINE)


def store_url(options, engine="redis"):
    """The store URL for a SESSIONKIT dict. ``engine`` is ``redis`` or ``cached_db``: the cached_db engine's cache
    defaults to the ``django-cache`` layout with Django's ``cached_db`` keys (shared with Django's own engine)."""
    url = options.get("URL") or DEFAULT_URL
    params = {OPTION_NAMES[k]: _text(v) for k, v in options.items() if k in OPTION_NAMES and v is not None}
    if engine == "cached_db":
        has_layout = "layout" in params or "layout=" in url
        if not has_layout:
            params["layout"] = "django-cache"
        if params.get("layout", "django-cache") in ("django-cache", "django_cache") and "engine" not in params:
            if "engine=" not in url:
                params["engine"] = "cached_db"
    if not params:
        return url
    base, _, fragment = url.partition("#")
    joined = base + ("&" if "?" in base else "?") + urlencode(params)
    return joined + ("#" + fragment if fragment else "")


def failure_policy(options=None):
    options = _setting() if options is None else options
    return options.get("FAILURE_POLICY", "error")


def thread_connections(options=None):
    options = _setting() if options is None else options
    value = options.get("THREAD_CONNECTIONS", DEFAULT_THREAD_CONNECTIONS)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ImproperlyConfigured("SESSIONKIT['THREAD_CONNECTIONS'] must be an int >= 0 (0: one shared connection)")
    return value


def merge(options=None):
    """``SESSIONKIT["MERGE"]``: parallel saves merge (True, the default) or the last write wins (False, Django's
    behaviour)."""
    options = _setting() if options is None else options
    value = options.get("MERGE", True)
    if not isinstance(value, bool):
        raise ImproperlyConfigured("SESSIONKIT['MERGE'] must be True (merge parallel saves) or False (last write wins)")
    return value


def get_store(engine="redis"):
    """The process's store for the current SESSIONKIT setting (connected on first use; a failed connect is retried
    on the next call)."""
    fast_key = (os.getpid(), engine)
    store = _current.get(fast_key)
    if store is not None:  # the hot path: one dict lookup per call
        return store
    options = _setting()
    key = (
        os.getpid(),
        engine,
        store_url(options, engine),
        failure_policy(options),
        thread_connections(options),
        merge(options),
    )
    store = _stores.get(key)
    if store is not None:
        _current[fast_key] = store
        return store
    with _lock:
        store = _stores.get(key)
        if store is None:
            try:
                store = Store.connect(key[2], key[3], key[4], key[5])
            except ConfigurationError as err:
                raise ImproperlyConfigured(f"SESSIONKIT: {err}") from err
            # Stores of a parent process (before fork) stay in the dict, unused: their runtime is not ours.
            _stores[key] = store
        _current[fast_key] = store
    return store


def reset():
    """Forgets the open stores (tests; settings changes)."""
    with _lock:
        _current.clear()
        _stores.clear()


def _on_setting_changed(*, setting, **kwargs):
    if setting == "SESSIONKIT":
        reset()
    elif setting == "SESSION_ENGINE":
        _current.clear()


def _connect_signals():
    from django.core.signals import setting_changed

    setting_changed.connect(_on_setting_changed, dispatch_uid="sessionkit.conf.reset")


_connect_signals()
