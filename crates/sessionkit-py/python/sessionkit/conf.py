"""The ``SESSIONKIT`` setting: one dict, mapped to a store URL for the Rust core.

Every option is a query parameter of the Redis store URL (docs/redis.md); the mapping is ``OPTION_NAMES``.
``FAILURE_POLICY``, ``THREAD_CONNECTIONS`` and ``MERGE`` are applied by the extension (not part of the URL).
Options already in ``URL`` are kept; an option given in the dict wins over the same option in the URL.

The session lifetime settings ``SESSION_IDLE_TIMEOUT``, ``SESSION_ABSOLUTE_TIMEOUT`` and ``SESSION_TOUCH_INTERVAL``
(top-level Django settings, like Django's ``SESSION_*``) may also be given as ``SESSIONKIT`` keys ``IDLE_TIMEOUT``,
``ABSOLUTE_TIMEOUT`` and ``TOUCH_INTERVAL``; the ``SESSIONKIT`` key wins (as a ``SESSIONKIT`` key wins over the URL),
and a top-level setting it overrides with another value is reported (``sessionkit.W004``). ``lifetime()`` gives
the values the engines use.

``problems()`` is the one validation of the setting: Django's system checks (``sessionkit.django.checks``,
``sessionkit.E001`` …) report what it finds, and the first use of the store raises ``ImproperlyConfigured`` for
the first error it finds.
"""

from __future__ import annotations

import difflib
import math
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard
from urllib.parse import parse_qsl, urlencode, urlsplit

from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from sessionkit._native import ConfigurationError, Store, check_lifetime, parse_redis_url

#: The engines ``get_store`` serves: ``"redis"`` (``sessionkit.django.redis``) or ``"cached_db"``.
Engine = Literal["redis", "cached_db"]
#: ``SESSIONKIT["FAILURE_POLICY"]``.
FailurePolicy = Literal["error", "empty"]

DEFAULT_URL = "redis://127.0.0.1:6379/0"

#: SESSIONKIT key -> store URL query parameter.
OPTION_NAMES = {
    "LAYOUT": "layout",  # "string" (default for sessionkit.django.redis), "hash", "django-cache"
    "PREFIX": "prefix",  # key prefix of the string/hash layouts and the per-user index, default "sessionkit:"
    "COMPRESSION": "compression",  # "zstd" (default), "lz4", "none"
    "COMPRESS_MIN_BYTES": "compress_min_bytes",  # 512 (string) / 128 (hash)
    "BUCKETS": "buckets",  # hash layout: number of bucket hashes, default 1024
    "HASHED_KEYS": "hashed_keys",  # store SHA-256 of session keys (string/hash), default False
    "ADOPT_LAYOUT": "adopt_layout",  # string/hash: rewrite a layout record of another shape, default False
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
    "CLIENT_CACHE": "client_cache",  # answer loads from memory, kept true by Redis invalidations, default False
    "CLIENT_CACHE_SIZE": "client_cache_size",  # with CLIENT_CACHE: sessions kept in memory, default 10000
}
#: Top-level Django setting -> the SESSIONKIT key that may give it instead (the lifetime rules, off by default).
LIFETIME_SETTINGS = {
    "SESSION_IDLE_TIMEOUT": "IDLE_TIMEOUT",
    "SESSION_ABSOLUTE_TIMEOUT": "ABSOLUTE_TIMEOUT",
    "SESSION_TOUCH_INTERVAL": "TOUCH_INTERVAL",
}
KNOWN = set(OPTION_NAMES) | {"URL", "FAILURE_POLICY", "THREAD_CONNECTIONS", "MERGE"} | set(LIFETIME_SETTINGS.values())
#: The largest lifetime setting accepted (seconds; about 34,000 years).
MAX_LIFETIME_SECONDS = 2**40


# -- validation ----------------------------------------------------------------------------------------------------


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


def _one_of(*choices: object) -> Callable[[object], bool]:
    return lambda value: isinstance(value, (str, int)) and not isinstance(value, bool) and value in choices


@dataclass(frozen=True)
class _Rule:
    """What one SESSIONKIT key accepts (the values the Rust store accepts, as Python values)."""

    accepts: Callable[[object], bool]
    #: "must be …" in the error message.
    form: str
    #: A valid value, shown in the hint (and in the message unless ``form`` lists the choices).
    example: object
    #: What the key does (the start of the hint).
    meaning: str
    #: ``form`` lists every valid value.
    choices: bool = False


_SECONDS = "a number of seconds > 0 and < 86400"
_LIFETIME_FORM = "a positive integer number of seconds"


def _lifetime_seconds(value: object) -> bool:
    return _is_int(value) and 0 < value <= MAX_LIFETIME_SECONDS

_RULES: dict[str, _Rule] = {
    "URL": _Rule(
        lambda v: isinstance(v, str),
        "a Redis URL string",
        DEFAULT_URL,
        "The Redis server: redis://, rediss:// (TLS), unix://, redis+sentinel://…/MASTER, redis+cluster://h1,h2",
    ),
    # Aliases the Rust store also takes (django_cache, cached-db, rediscache, …) are accepted, not advertised.
    "LAYOUT": _Rule(
        _one_of("string", "hash", "django-cache", "django_cache"),
        "'string', 'hash' or 'django-cache'",
        "hash",
        "The storage layout: 'string' (one key per session, fastest), 'hash' (bucket hashes, smallest), "
        "'django-cache' (exactly what Django's cache engine stores)",
        choices=True,
    ),
    "PREFIX": _Rule(
        lambda v: isinstance(v, str), "a string", "sessionkit:", "Key prefix of the sessions and the per-user index"
    ),
    "COMPRESSION": _Rule(
        _one_of("zstd", "lz4", "none", ""),
        "'zstd', 'lz4' or 'none'",
        "zstd",
        "Value compression of the string and hash layouts",
        choices=True,
    ),
    "COMPRESS_MIN_BYTES": _Rule(
        lambda v: _is_int(v) and v >= 0,
        "an integer >= 0",
        512,
        "Values shorter than this many bytes are stored uncompressed",
    ),
    "BUCKETS": _Rule(
        lambda v: _is_int(v) and 0 < v < 2**32,
        "a positive integer",
        64,
        "The number of bucket hashes of the 'hash' layout (about sessions / 200)",
    ),
    "CLIENT_CACHE": _Rule(
        lambda v: isinstance(v, bool),
        "True or False",
        True,
        "Loads of sessions this process has seen are answered from memory, kept true by Redis's invalidation "
        "messages (standalone redis:// over TCP; docs/redis.md, Client-side cache)",
    ),
    "CLIENT_CACHE_SIZE": _Rule(
        lambda v: _is_int(v) and 0 < v < 2**32,
        "a positive integer",
        10000,
        "With CLIENT_CACHE: at most this many sessions are kept in memory per process",
    ),
    "HASHED_KEYS": _Rule(
        lambda v: isinstance(v, bool), "True or False", True, "Redis holds SHA-256 of each session key, never the key"
    ),
    "ADOPT_LAYOUT": _Rule(
        lambda v: isinstance(v, bool),
        "True or False",
        True,
        "Rewrite the prefix's layout record when it names another layout, bucket count or key form (the sessions "
        "written with the old one become unreachable) instead of refusing to connect",
    ),
    "CONNECT_TIMEOUT": _Rule(
        lambda v: _is_number(v) and 0 < v < 86400,
        _SECONDS,
        5,
        "Seconds to wait for a connection to Redis",
    ),
    "TIMEOUT": _Rule(
        lambda v: _is_number(v) and 0 < v < 86400,
        _SECONDS,
        5,
        "Seconds to wait for any reply from Redis",
    ),
    "USER_INDEX": _Rule(lambda v: isinstance(v, bool), "True or False", True, "Keep the per-user session index"),
    "INDEX_REFRESH": _Rule(
        lambda v: _is_number(v) and 0 <= v <= 86400,
        "a number of seconds from 0 to 86400",
        300,
        "Saves within this many seconds leave a session's per-user index entry alone (0: every save writes it)",
    ),
    "KEY_PREFIX": _Rule(
        lambda v: isinstance(v, str), "a string", "", "The 'django-cache' layout's KEY_PREFIX (your Django cache's)"
    ),
    "VERSION": _Rule(_is_int, "an integer", 1, "The 'django-cache' layout's VERSION (your Django cache's)"),
    "CACHE_ENGINE": _Rule(
        _one_of("cache", "cached_db", "cached-db"),
        "'cache' or 'cached_db'",
        "cached_db",
        "Whose session keys the 'django-cache' layout uses: Django's cache engine or its cached_db engine",
        choices=True,
    ),
    "CLIENT": _Rule(
        _one_of("redis-cache", "django-redis", "rediscache", "django", "django_redis"),
        "'redis-cache' or 'django-redis'",
        "django-redis",
        "Which Django cache backend writes the 'django-cache' layout: Django's RedisCache or django-redis",
        choices=True,
    ),
    "SERIALIZER": _Rule(
        _one_of("pickle", "json", "msgpack"),
        "'pickle', 'json' or 'msgpack'",
        "json",
        "django-redis' SERIALIZER",
        choices=True,
    ),
    "COMPRESSOR": _Rule(
        _one_of("zlib", "gzip", "lz4", "zstd", "lzma", "none", ""),
        "'zlib', 'gzip', 'lz4', 'zstd', 'lzma' or 'none'",
        "zlib",
        "django-redis' COMPRESSOR",
        choices=True,
    ),
    "PICKLE_PROTOCOL": _Rule(
        _one_of(4, 5), "4 or 5", 5, "The pickle protocol written to the 'django-cache' layout", choices=True
    ),
    "SENTINEL_USERNAME": _Rule(lambda v: isinstance(v, str), "a string", "sentinel", "Username for the Sentinels"),
    "SENTINEL_PASSWORD": _Rule(lambda v: isinstance(v, str), "a string", "secret", "Password for the Sentinels"),
    "FAILURE_POLICY": _Rule(
        _one_of("error", "empty"),
        "'error' or 'empty'",
        "empty",
        "'error': an unreachable Redis raises StoreUnavailable; 'empty': loads give an empty session instead",
        choices=True,
    ),
    "THREAD_CONNECTIONS": _Rule(
        lambda v: _is_int(v) and v >= 0,
        "an integer >= 0",
        64,
        "At most this many threads get a Redis connection of their own (0: one shared connection)",
    ),
    "MERGE": _Rule(
        lambda v: isinstance(v, bool),
        "True or False",
        True,
        "True: parallel saves merge; False: the last write wins, as in Django",
    ),
    "IDLE_TIMEOUT": _Rule(
        _lifetime_seconds,
        _LIFETIME_FORM,
        1800,
        "SESSION_IDLE_TIMEOUT: a session without a request for this long has expired",
    ),
    "ABSOLUTE_TIMEOUT": _Rule(
        _lifetime_seconds,
        _LIFETIME_FORM,
        43200,
        "SESSION_ABSOLUTE_TIMEOUT: a session created or cycled (at login) this long ago has expired",
    ),
    "TOUCH_INTERVAL": _Rule(
        _lifetime_seconds,
        _LIFETIME_FORM,
        60,
        "SESSION_TOUCH_INTERVAL: a request that only reads moves the idle expiry at most once per interval",
    ),
}
assert set(_RULES) == KNOWN

#: Options that only the given layouts read: elsewhere they are ignored (sessionkit.W001).
_LAYOUT_OPTIONS: dict[str, tuple[str, ...]] = {
    "BUCKETS": ("hash",),
    "ADOPT_LAYOUT": ("string", "hash"),
    "COMPRESSION": ("string", "hash"),
    "COMPRESS_MIN_BYTES": ("string", "hash"),
    **{
        key: ("django-cache",)
        for key in ("KEY_PREFIX", "VERSION", "CACHE_ENGINE", "CLIENT", "SERIALIZER", "COMPRESSOR", "PICKLE_PROTOCOL")
    },
}
_LAYOUT_ALIASES = {"django_cache": "django-cache"}


def _key(key: str) -> str:
    return f"SESSIONKIT[{key!r}]"


def _wrong_value(key: str, value: object) -> checks.CheckMessage:
    rule = _RULES[key]
    example = "" if rule.choices else f", e.g. {rule.example!r}"
    return checks.Error(
        f"{_key(key)} must be {rule.form}{example}; got {value!r}",
        hint=f"{rule.meaning}. Expected: SESSIONKIT = {{…, {key!r}: {rule.example!r}}}.",
        id="sessionkit.E003",
    )


def _url_params(url: str) -> dict[str, str]:
    """The query parameters of a store URL (the last one of a name wins, as in the Rust parser)."""
    return dict(parse_qsl(urlsplit(url.partition("#")[0]).query, keep_blank_values=True))


def effective_layout(options: Mapping[str, Any], engine: Engine = "redis") -> str:
    """The layout the store uses: ``LAYOUT``, else the URL's ``layout=``, else the engine's default
    (``django-cache`` for ``cached_db``, ``string`` for ``redis``)."""
    layout = options.get("LAYOUT")
    if layout is None:
        layout = _url_params(options.get("URL") or DEFAULT_URL).get("layout")
    if layout is None:
        layout = "django-cache" if engine == "cached_db" else "string"
    return _LAYOUT_ALIASES.get(str(layout), str(layout))


def _top_level_lifetime() -> dict[str, object]:
    """The top-level lifetime settings Django has (``SESSION_IDLE_TIMEOUT`` …; unset: None)."""
    from django.conf import settings

    return {name: getattr(settings, name, None) for name in LIFETIME_SETTINGS}


def _lifetime_values(
    options: Mapping[str, Any], top: Mapping[str, object]
) -> tuple[dict[str, Any], list[checks.CheckMessage]]:
    """The lifetime settings in effect (by top-level name) and what is wrong with the top-level ones."""
    found: list[checks.CheckMessage] = []
    values: dict[str, Any] = {}
    for name, key in LIFETIME_SETTINGS.items():
        top_value = top.get(name)
        if top_value is not None and not _lifetime_seconds(top_value):
            rule = _RULES[key]
            found.append(
                checks.Error(
                    f"settings.{name} must be {_LIFETIME_FORM}, e.g. {rule.example!r}; got {top_value!r}",
                    hint=f"{rule.meaning}. Expected: {name} = {rule.example!r} (or leave it unset: off).",
                    id="sessionkit.E006",
                )
            )
            top_value = None
        own = options.get(key)
        if own is not None and top_value is not None and own != top_value:
            found.append(
                checks.Warning(
                    f"{_key(key)} = {own!r} overrides settings.{name} = {top_value!r}",
                    hint=f"Set the lifetime in one place: remove settings.{name} or {_key(key)} (the SESSIONKIT "
                    "key wins).",
                    id="sessionkit.W004",
                )
            )
        values[name] = own if own is not None else top_value
    return values, found


def lifetime(options: Mapping[str, Any] | None = None) -> tuple[int | None, int | None, int | None]:
    """``(idle timeout, absolute timeout, touch interval)`` in seconds (None: off / default) from the
    ``SESSIONKIT`` keys and the top-level settings; ``ImproperlyConfigured`` for a value ``problems`` refuses."""
    options = _setting() if options is None else options
    values, found = _lifetime_values(
        {k: v for k, v in options.items() if k in LIFETIME_SETTINGS.values() and v is not None},
        _top_level_lifetime(),
    )
    for problem in found:
        if problem.is_serious():
            raise _improperly_configured(problem)
    idle, absolute, touch = (values[name] for name in LIFETIME_SETTINGS)
    return idle, absolute, touch


def _lifetime_problems(options: Mapping[str, Any], top: Mapping[str, object] | None) -> list[checks.CheckMessage]:
    """What is wrong with the lifetime settings: E006 (a top-level value), W004 (set twice), E007 (settings that
    contradict each other, by the Rust core's own rule, ``sessionkit::lifetime::check``)."""
    own = {k: v for k, v in options.items() if k in LIFETIME_SETTINGS.values() and _RULES[k].accepts(v)}
    values, found = _lifetime_values(own, _top_level_lifetime() if top is None else top)
    if any(p.is_serious() for p in found):
        return found
    conflict = check_lifetime(*(values[name] for name in LIFETIME_SETTINGS))
    if conflict is not None:
        found.append(
            checks.Error(
                conflict,
                hint="SESSION_TOUCH_INTERVAL < SESSION_IDLE_TIMEOUT <= SESSION_ABSOLUTE_TIMEOUT, e.g. 60, 1800 and "
                "43200; each may be left unset (off).",
                id="sessionkit.E007",
            )
        )
    return found


def problems(
    value: object, engine: Engine = "redis", lifetime_settings: Mapping[str, object] | None = None
) -> list[checks.CheckMessage]:
    """Everything wrong with ``value``, the ``SESSIONKIT`` setting, for ``engine``, and with the lifetime settings
    (``lifetime_settings``: the top-level ``SESSION_IDLE_TIMEOUT`` … by name; default: Django's settings): Django
    system check messages (``sessionkit.E001`` …, ``sessionkit.W001`` …; README "System checks"). Connects to
    nothing."""
    found = _store_problems(value, engine)
    if value is None or isinstance(value, dict):
        options = {k: v for k, v in (value or {}).items() if v is not None}
        found += _lifetime_problems(options, lifetime_settings)
    return found


def _store_problems(value: object, engine: Engine) -> list[checks.CheckMessage]:
    """``problems`` of the SESSIONKIT dict itself."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        return [
            checks.Error(
                f"SESSIONKIT must be a dict; got {type(value).__name__} {value!r}",
                hint=f"Expected: SESSIONKIT = {{'URL': {DEFAULT_URL!r}}}.",
                id="sessionkit.E001",
            )
        ]
    found: list[checks.CheckMessage] = []
    for key in value:
        if key in KNOWN:
            continue
        close = difflib.get_close_matches(str(key), sorted(KNOWN), n=1)
        found.append(
            checks.Error(
                f"SESSIONKIT has an unknown key {key!r}" + (f"; did you mean {close[0]!r}?" if close else ""),
                hint=f"Known keys: {', '.join(sorted(KNOWN))}.",
                id="sessionkit.E002",
            )
        )
    options = {k: v for k, v in value.items() if k in KNOWN and v is not None}
    found += [_wrong_value(k, v) for k, v in options.items() if not _RULES[k].accepts(v)]
    if found:
        return found
    layout = effective_layout(options, engine)
    if options.get("HASHED_KEYS") and layout == "django-cache":
        default = "LAYOUT" not in options and engine == "cached_db"
        because = "the cached_db engine's default layout" if default else "the layout"
        return [
            checks.Error(
                f"{_key('HASHED_KEYS')} = True cannot be used with the django-cache layout ({because}): Django "
                "looks sessions up by their key",
                hint="Remove HASHED_KEYS, or choose a sessionkit layout: SESSIONKIT = {…, 'LAYOUT': 'string'} "
                "(or 'hash').",
                id="sessionkit.E004",
            )
        ]
    url = store_url(options, engine)
    try:
        parsed = parse_redis_url(url)
    except ConfigurationError as err:
        return [
            checks.Error(
                f"SESSIONKIT gives an invalid store URL: {err}",
                hint="URL is a Redis URL (redis://[user:password@]host[:port][/db]; rediss://, unix://, "
                "redis+sentinel://…/MASTER, redis+cluster://h1,h2); every other option is a SESSIONKIT key.",
                id="sessionkit.E005",
            )
        ]
    for key, layouts in _LAYOUT_OPTIONS.items():
        if key in options and layout not in layouts:
            readers = f"the {' and '.join(layouts)} layout{'s read' if len(layouts) > 1 else ' reads'}"
            found.append(
                checks.Warning(
                    f"{_key(key)} has no effect: the store uses the {layout} layout, and only {readers} it",
                    hint=f"Remove {key}, or set SESSIONKIT['LAYOUT'] to {' or '.join(map(repr, layouts))}.",
                    id="sessionkit.W001",
                )
            )
    client = options.get("CLIENT", "redis-cache")
    if layout == "django-cache" and client not in ("django-redis", "django_redis"):
        for key in ("SERIALIZER", "COMPRESSOR"):
            if key in options:
                found.append(
                    checks.Warning(
                        f"{_key(key)} has no effect: it is a django-redis option, and CLIENT is {client!r} "
                        "(Django's RedisCache pickles and never compresses)",
                        hint=f"Remove {key}, or set SESSIONKIT['CLIENT'] = 'django-redis' if django-redis writes "
                        "this cache.",
                        id="sessionkit.W001",
                    )
                )
    if parsed["topology"] != "sentinel":
        for key in ("SENTINEL_USERNAME", "SENTINEL_PASSWORD"):
            if key in options:
                found.append(
                    checks.Warning(
                        f"{_key(key)} has no effect: URL is not a Sentinel URL (it is {parsed['topology']})",
                        hint=f"Remove {key}, or use URL = 'redis+sentinel://host:26379/MASTER_NAME'.",
                        id="sessionkit.W002",
                    )
                )
    if options.get("USER_INDEX") is False and "INDEX_REFRESH" in options:
        found.append(
            checks.Warning(
                f"{_key('INDEX_REFRESH')} has no effect: USER_INDEX is False, so there is no per-user index to "
                "refresh",
                hint="Remove INDEX_REFRESH, or keep the index (USER_INDEX = True).",
                id="sessionkit.W003",
            )
        )
    return found


def _improperly_configured(problem: checks.CheckMessage) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{problem.msg} (HINT: {problem.hint}) [{problem.id}]")


def _setting(engine: Engine | None = None) -> dict[str, Any]:
    """``settings.SESSIONKIT`` (``{}`` when unset), validated: ``ImproperlyConfigured`` for the first error
    ``problems`` finds."""
    from django.conf import settings

    value = getattr(settings, "SESSIONKIT", None)
    for problem in problems(value, engine or current_engine() or "redis"):
        if problem.is_serious():
            raise _improperly_configured(problem)
    return dict(value or {})


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


#: SESSION_ENGINE path -> the engine name ``get_store`` takes.
ENGINES: dict[str, Engine] = {"sessionkit.django.redis": "redis", "sessionkit.django.cached_db": "cached_db"}


def current_engine() -> Engine | None:
    """The configured sessionkit engine (``"redis"`` or ``"cached_db"``), or None when SESSION_ENGINE is another."""
    from django.conf import settings

    return ENGINES.get(settings.SESSION_ENGINE)


def store_url(options: Mapping[str, Any], engine: Engine = "redis") -> str:
    """The store URL for a SESSIONKIT dict. ``engine`` is ``redis`` or ``cached_db``: the cached_db engine's cache
    defaults to the ``django-cache`` layout with Django's ``cached_db`` keys (shared with Django's own engine)."""
    url: str = options.get("URL") or DEFAULT_URL
    params = {OPTION_NAMES[k]: _text(v) for k, v in options.items() if k in OPTION_NAMES and v is not None}
    if engine == "cached_db":
        in_url = _url_params(url)
        if "layout" not in params and "layout" not in in_url:
            params["layout"] = "django-cache"
        layout = params.get("layout", in_url.get("layout", "django-cache"))
        if layout in ("django-cache", "django_cache") and "engine" not in params and "engine" not in in_url:
            params["engine"] = "cached_db"
    if not params:
        return url
    base, _, fragment = url.partition("#")
    joined = base + ("&" if "?" in base else "?") + urlencode(params)
    return joined + ("#" + fragment if fragment else "")


#: Default of SESSIONKIT["THREAD_CONNECTIONS"]: at most this many threads per process get a Redis connection of their
#: own for the sync session calls (0: every call uses the one shared connection).
DEFAULT_THREAD_CONNECTIONS = 64

_lock = threading.Lock()
#: (pid, engine, url, failure policy, thread connections, merge, lifetime, cookie age) -> an open store.
_Lifetime = tuple[int | None, int | None, int | None]
_stores: dict[tuple[int, Engine, str, FailurePolicy, int, bool, _Lifetime, int], Store] = {}
#: (pid, engine) -> the store for the current settings; emptied whenever SESSIONKIT changes.
_current: dict[tuple[int, Engine], Store] = {}


def _option(options: Mapping[str, Any], key: str, default: Any) -> Any:
    """``options[key]`` (``default`` when missing or None), which must be what ``problems`` accepts."""
    value = options.get(key)
    if value is None:
        return default
    if not _RULES[key].accepts(value):
        raise _improperly_configured(_wrong_value(key, value))
    return value


def failure_policy(options: Mapping[str, Any] | None = None) -> FailurePolicy:
    """``SESSIONKIT["FAILURE_POLICY"]``: ``"error"`` (the default) or ``"empty"``."""
    options = _setting() if options is None else options
    value: FailurePolicy = _option(options, "FAILURE_POLICY", "error")
    return value


def thread_connections(options: Mapping[str, Any] | None = None) -> int:
    """``SESSIONKIT["THREAD_CONNECTIONS"]``: at most this many threads get a connection of their own."""
    options = _setting() if options is None else options
    value: int = _option(options, "THREAD_CONNECTIONS", DEFAULT_THREAD_CONNECTIONS)
    return value


def merge(options: Mapping[str, Any] | None = None) -> bool:
    """``SESSIONKIT["MERGE"]``: parallel saves merge (True, the default) or the last write wins (False, Django's
    behaviour)."""
    options = _setting() if options is None else options
    value: bool = _option(options, "MERGE", True)
    return value


def get_store(engine: Engine = "redis") -> Store:
    """The process's store for the current SESSIONKIT setting (connected on first use; a failed connect is retried
    on the next call)."""
    fast_key = (os.getpid(), engine)
    store = _current.get(fast_key)
    if store is not None:  # the hot path: one dict lookup per call
        return store
    from django.conf import settings

    options = _setting(engine)
    key = (
        os.getpid(),
        engine,
        store_url(options, engine),
        failure_policy(options),
        thread_connections(options),
        merge(options),
        lifetime(options),
        int(settings.SESSION_COOKIE_AGE),
    )
    store = _stores.get(key)
    if store is not None:
        _current[fast_key] = store
        return store
    with _lock:
        store = _stores.get(key)
        if store is None:
            try:
                idle, absolute, touch = key[6]
                store = Store.connect(
                    key[2],
                    key[3],
                    key[4],
                    key[5],
                    idle_timeout=idle,
                    absolute_timeout=absolute,
                    touch_interval=touch,
                    cookie_age=key[7],
                )
            except ConfigurationError as err:
                raise ImproperlyConfigured(f"SESSIONKIT: {err}") from err
            # Stores of a parent process (before fork) stay in the dict, unused: their runtime is not ours.
            _stores[key] = store
        _current[fast_key] = store
    return store


def reset() -> None:
    """Forgets the open stores (tests; settings changes)."""
    with _lock:
        _current.clear()
        _stores.clear()


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "SESSIONKIT":
        reset()
    elif setting in ("SESSION_ENGINE", "SESSION_COOKIE_AGE") or setting in LIFETIME_SETTINGS:
        _current.clear()


def _connect_signals() -> None:
    from django.core.signals import setting_changed

    setting_changed.connect(_on_setting_changed, dispatch_uid="sessionkit.conf.reset")


_connect_signals()
