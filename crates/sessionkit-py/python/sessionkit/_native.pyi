"""Types of ``sessionkit._native``, the Rust extension module (crates/sessionkit-py/src/lib.rs).

The ``a…`` methods return an ``asyncio.Future`` made on the running event loop (call them from a coroutine);
session data is a dict that ``json.dumps`` accepts (Django's ``JSONSerializer``).
"""

from collections.abc import Awaitable, Sequence
from typing import Any, Final, Literal, TypedDict, final

__all__ = [
    "CREATED_KEY",
    "ConfigurationError",
    "Expired",
    "REFILL_DEADLINE_SECONDS",
    "SessionkitError",
    "Snapshot",
    "Store",
    "StoreContended",
    "StoreUnavailable",
    "TOMBSTONE_SECONDS",
    "_set_clock_offset",
    "check_lifetime",
    "merge",
    "metrics",
    "parse_redis_url",
    "record",
    "run_cli",
    "session_id",
]

class SessionkitError(Exception):
    """Base class of sessionkit's errors."""

class StoreUnavailable(SessionkitError):
    """The session store could not be reached, or did not answer within its timeout."""

class ConfigurationError(SessionkitError):
    """The store URL or an option is invalid."""

class StoreContended(SessionkitError):
    """So many requests wrote the session at once that this save never got its changes in; nothing was saved."""

class _UserSessionInfo(TypedDict):
    """One item of ``Store.user_sessions``: times are Unix seconds (a type for checkers only)."""

    id: str
    created: float | None
    last_seen: float | None
    expires_at: float
    user_agent: str | None
    ip: str | None

class _RedisUrlInfo(TypedDict):
    """What ``parse_redis_url`` returns (a type for checkers only)."""

    layout: Literal["string", "hash", "django-cache"]
    topology: Literal["standalone", "sentinel", "cluster"]

class _CounterSample(TypedDict):
    """One counter of ``metrics()``: its name, labels (``store``, ``outcome``, …) and total since the process started."""

    name: str
    labels: dict[str, str]
    value: int

class _HistogramSample(TypedDict):
    """One histogram of ``metrics()``: how many values (durations) it got and their sum in seconds."""

    name: str
    labels: dict[str, str]
    count: int
    sum: float

class _MetricsSnapshot(TypedDict):
    """What ``metrics()`` returns."""

    counters: list[_CounterSample]
    histograms: list[_HistogramSample]

def metrics() -> _MetricsSnapshot:
    """The counters and histograms the stores recorded in this process (series in docs/observability.md), sorted by
    name and labels; empty lists when another ``metrics`` recorder was installed in the process first."""

def record(
    event: str,
    store: str = "cached_db",
    seconds: float = 0.0,
    attempts: int = 1,
    operation: str = "load",
) -> None:
    """Records a call made outside a Rust store (the cached_db engine's database half); ``store`` is a store kind
    (``cached_db``, ``redis``, …). Raises ``ValueError`` for an unknown event, kind or operation."""

@final
class Snapshot:
    """What a load read (version and data), for the save of the same request; opaque."""

    @staticmethod
    def of(data: dict[str, Any], expires_at: float | None = None) -> Snapshot: ...
    @property
    def expires_at(self) -> float | None:
        """The expiry the store reported with the data (Unix seconds), if known."""
    @property
    def touch_due(self) -> bool:
        """The load found an idle timeout's touch due: save the session (the save only moves the expiry)."""
    @property
    def created_added(self) -> bool:
        """The load added ``_sessionkit_created`` to the dict: save the session once for it."""

@final
class Expired:
    """A session a lifetime rule has ended (a load deleted it and gives a new session)."""

    @property
    def rule(self) -> Literal["idle", "absolute"]: ...
    @property
    def session(self) -> str:
        """The session's id (``session_id(key)``), never its key."""
    @property
    def user_id(self) -> str | None: ...

@final
class Store:
    """A Redis session store (any layout and topology; options in the URL) with its failure policy."""

    @staticmethod
    def connect(
        url: str,
        failure_policy: Literal["error", "empty"] = "error",
        thread_connections: int = ...,
        merge: bool = True,
        idle_timeout: int | None = None,
        absolute_timeout: int | None = None,
        touch_interval: int | None = None,
        cookie_age: int = 1209600,
    ) -> Store: ...
    @property
    def describe(self) -> str: ...
    @property
    def layout(self) -> Literal["string", "hash", "django-cache"]: ...
    @property
    def failure_policy(self) -> Literal["error", "empty"]: ...
    @property
    def merge(self) -> bool: ...
    @property
    def thread_connections(self) -> int: ...
    @property
    def max_thread_connections(self) -> int: ...
    def load(self, key: str) -> dict[str, Any] | None: ...
    def load_versioned(self, key: str) -> tuple[dict[str, Any], Snapshot] | Expired | None: ...
    def judge_loaded(self, key: str, data: dict[str, Any], expires_at: float | None) -> Snapshot | Expired: ...
    @property
    def lifetime_rules(self) -> bool: ...
    def store_expiry(self, data: dict[str, Any]) -> float | None: ...
    def start_lifetime(self, data: dict[str, Any]) -> None: ...
    def unchanged_touch(
        self, data: dict[str, Any], snapshot: Snapshot | None = None, cleared: bool = False
    ) -> float | None: ...
    def touch(self, key: str, data: dict[str, Any], expires_at: float) -> bool: ...
    def atouch(self, key: str, data: dict[str, Any], expires_at: float) -> Awaitable[bool]: ...
    def save_changes(
        self,
        key: str,
        data: dict[str, Any],
        age: int,
        snapshot: Snapshot | None = None,
        cleared: bool = False,
    ) -> tuple[dict[str, Any] | None, Snapshot] | None: ...
    def asave_changes(
        self,
        key: str,
        data: dict[str, Any],
        age: int,
        snapshot: Snapshot | None = None,
        cleared: bool = False,
    ) -> Awaitable[tuple[dict[str, Any] | None, Snapshot] | None]: ...
    def write_copy(
        self,
        key: str,
        data: dict[str, Any],
        age: int,
        snapshot: Snapshot | None = None,
        db_seconds: float = 0.0,
    ) -> Snapshot | None: ...
    def awrite_copy(
        self,
        key: str,
        data: dict[str, Any],
        age: int,
        snapshot: Snapshot | None = None,
        db_seconds: float = 0.0,
    ) -> Awaitable[Snapshot | None]: ...
    def refill(self, key: str, data: dict[str, Any], age: int, db_seconds: float = 0.0) -> Snapshot | None: ...
    def arefill(
        self, key: str, data: dict[str, Any], age: int, db_seconds: float = 0.0
    ) -> Awaitable[Snapshot | None]: ...
    def bury(self, key: str) -> None: ...
    def abury(self, key: str) -> Awaitable[None]: ...
    def create(self, key: str, data: dict[str, Any], age: int) -> bool: ...
    def acreate(self, key: str, data: dict[str, Any], age: int) -> Awaitable[bool]: ...
    def create_new(self, data: dict[str, Any], age: int) -> str: ...
    def acreate_new(self, data: dict[str, Any], age: int) -> Awaitable[str]: ...
    def create_fresh(self, data: dict[str, Any], age: int) -> tuple[str, Snapshot]: ...
    def acreate_fresh(self, data: dict[str, Any], age: int) -> Awaitable[tuple[str, Snapshot]]: ...
    def save(self, key: str, data: dict[str, Any], age: int) -> bool: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def clear_expired(self) -> int: ...
    def aload(self, key: str) -> Awaitable[dict[str, Any] | None]: ...
    def aload_versioned(self, key: str) -> Awaitable[tuple[dict[str, Any], Snapshot] | Expired | None]: ...
    def aexists(self, key: str) -> Awaitable[bool]: ...
    def adelete(self, key: str) -> Awaitable[None]: ...
    def aclear_expired(self) -> Awaitable[int]: ...
    def user_sessions(self, user_id: str) -> list[_UserSessionInfo]: ...
    def delete_user_session(self, user_id: str, session_id: str) -> bool: ...
    def delete_user_sessions(self, user_id: str, keep: str | None = None) -> int: ...
    def count(self) -> int: ...

def merge(
    stored: dict[str, Any], snapshot: Snapshot | None, current: dict[str, Any], cleared: bool = False
) -> dict[str, Any]: ...
def session_id(key: str) -> str: ...
def check_lifetime(
    idle_timeout: int | None = None, absolute_timeout: int | None = None, touch_interval: int | None = None
) -> str | None: ...
def _set_clock_offset(seconds: float) -> None:
    """Test-only: moves the lifetime rules' clock ``seconds`` ahead of the real time (0: the real time)."""
def run_cli(
    argv: Sequence[str], store_url: str | None = None, settings: dict[str, str] | None = None
) -> tuple[int, str, str]: ...
def parse_redis_url(url: str) -> _RedisUrlInfo: ...

REFILL_DEADLINE_SECONDS: Final[int]
TOMBSTONE_SECONDS: Final[int]
CREATED_KEY: Final[str]
