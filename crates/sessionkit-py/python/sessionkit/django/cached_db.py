"""``SESSION_ENGINE = "sessionkit.django.cached_db"``: sessionkit's Redis store in front of Django's own
``django_session`` table.

The database part *is* Django's ``db`` engine (this class subclasses it): rows are written through Django's ORM,
in the table ``manage.py migrate`` created, signed by Django, inside Django's database routers, on any database
Django supports. Only the cache part is sessionkit's (Rust, GIL released). By default the cache uses the
``django-cache`` layout with Django's ``cached_db`` keys, so Django's own ``cached_db`` engine (with Django's
``RedisCache`` on the same Redis) and this one share sessions; ``SESSIONKIT["LAYOUT"] = "string"`` is faster and
sessionkit-only.

Django's order and error rules (5.1+): reads try the cache, then the database (refilling the cache); writes go to
the database, then the cache (a cache failure is logged, never raised, so the database stays the truth); deletes
go to both, and a cache that cannot delete raises (a stale cached copy would keep a logged-out session alive).

Parallel requests never lose each other's writes (``docs/concurrency.md``): the database decides. A save updates
the row only if it still holds the token this request read (``UPDATE … WHERE session_data = <token>``, compared
with the column's collation: on MySQL/MariaDB a case-insensitive one, where two different signed tokens that
differ only in letter case would compare equal; they never do in practice, their signatures differ throughout);
when another request wrote it meanwhile, the live row is read again from the database written to, this request's
changes are applied on top (the keys whose value differs from what was loaded) and the update is tried again
(after a short random pause from the third try on). Then the cache gets what the database now holds, if the cache
still holds the copy this request saw; else (another request's newer copy, or a logout), or when the database
write took longer than the refill deadline, the cache *steps aside*: a one-minute tombstone unless one is there
already, and loads read the database until it expires. A delete leaves a tombstone too, so a refill from a
database read made before a logout cannot bring the session back. These guarantees hold among sessionkit
processes: Django's own ``cached_db`` engine writes and refills the cache unconditionally.
``SESSIONKIT["MERGE"] = False`` gives Django's last-write-wins.

The lifetime rules (``SESSION_IDLE_TIMEOUT``, ``SESSION_ABSOLUTE_TIMEOUT``; off by default) are the Rust core's,
applied to both halves: the row's ``expire_date`` and the cached copy's TTL are the core's store expiry, a load of
a session a rule has ended deletes the row and buries the copy, and a request that changed nothing only moves the
expiry once per touch interval: ``UPDATE … SET expire_date`` of the row (through the ORM) and the copy's TTL.
Session events go to ``sessionkit.django.signals.session_event``.

Metrics (``sessionkit.metrics()``, docs/observability.md): the cache's calls are counted in Rust with
``store="redis"``; this engine's own loads, creates, saves (with their conflicts and retries), deletes and cache
failures are counted with ``store="cached_db"`` through ``sessionkit._native.record``.
"""

from __future__ import annotations

import datetime
import logging
import random
import time
from typing import TYPE_CHECKING, Any, TypeVar

from django.contrib.sessions.backends.base import CreateError, UpdateError
from django.contrib.sessions.backends.db import SessionStore as DBStore
from django.contrib.sessions.base_session import AbstractBaseSession
from django.db import IntegrityError, router, transaction
from django.utils import timezone

from sessionkit import SessionkitError
from sessionkit._native import CREATED_KEY, Expired, Snapshot, Store, StoreContended, merge, record
from sessionkit.conf import Engine, get_store
from sessionkit.conf import merge as merge_enabled
from sessionkit.django import checks, signals

logger = logging.getLogger("sessionkit")

ENGINE: Engine = "cached_db"

# The system checks of SESSIONKIT, also for sites that set SESSION_ENGINE without installing the app.
checks.register()
signals.connect()
_T = TypeVar("_T")

#: How many times a save tries its compare-and-set before ``StoreContended`` (as the Rust stores).
MAX_SAVE_ATTEMPTS = 10
EXPIRY_KEY = "_session_expiry"


def _datetime(seconds: float) -> datetime.datetime:
    """Unix seconds as an aware datetime (UTC), for ``expire_date``."""
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)


def _back_off(attempt: int) -> None:
    """After the ``attempt``-th compare-and-set lost: nothing after the first two, then a random pause of up to
    1 ms, 2 ms, 4 ms, ... (64 ms at most), as the Rust stores do, so many writers of one session stop colliding
    in lockstep."""
    if attempt >= 3:
        time.sleep(random.uniform(0, 0.00025 * (1 << min(attempt - 1, 8))))


class SessionStore(DBStore):
    """Django's ``db`` engine with sessionkit's Redis store as its cache."""

    cache_key_prefix = "django.contrib.sessions.cached_db"
    #: Marks sessionkit's engines (``sessionkit.django.signals`` sends ``logged_in`` only for them).
    sessionkit_engine = True

    if TYPE_CHECKING:  # Django's own (private) API this engine builds on

        def _get_session(self, no_load: bool = False) -> dict[str, Any]: ...

        async def _aget_session(self, no_load: bool = False) -> dict[str, Any]: ...

        def _get_session_from_db(self) -> AbstractBaseSession | None: ...

        async def _aget_session_from_db(self) -> AbstractBaseSession | None: ...

        _session_cache: dict[str, Any]

    #: The session key the fields below belong to.
    _sk_key: str | None = None
    #: The data as this request loaded it (a Snapshot), for telling which keys it changed.
    _sk_loaded: Snapshot | None = None
    #: The ``session_data`` token read from the database (None when the data came from the cache).
    _sk_token: str | None = None
    #: The cache's snapshot of its copy (from a cache hit or a refill), for the compare-only cache write.
    _sk_cache: Snapshot | None = None
    #: True once ``clear()`` ran: the save then also removes keys other requests added meanwhile.
    _sk_cleared = False

    @classmethod
    def _cache(cls) -> Store:
        return get_store(ENGINE)

    @classmethod
    def get_model_class(cls) -> type[AbstractBaseSession]:
        # Django's own Session model and django_session table (DBStore's default), stated for clarity.
        from django.contrib.sessions.models import Session

        return Session

    def _rules(self) -> Store | None:
        """The store that applies the lifetime rules, or None when it cannot even be opened (the database still
        answers then, under Django's expiry alone; logged)."""
        try:
            return self._cache()
        except SessionkitError as err:
            self._cache_failed("open", err)
            return None

    def _start_lifetime(self, data: dict[str, Any]) -> None:
        store = self._rules()
        if store is not None:
            store.start_lifetime(data)

    def _store_expiry(self, data: dict[str, Any]) -> float | None:
        store = self._rules()
        return None if store is None else store.store_expiry(data)

    #: How many compare-and-set writes the last database save took (for the metrics).
    _sk_attempts = 1

    def _cache_failed(self, operation: str, err: Exception) -> None:
        logger.warning("session cache failed during %s; the database answers: %s", operation, err)
        record("cache_error", operation=operation)

    @staticmethod
    def _count_load(started: float, data: dict[str, Any] | None) -> None:
        """Counts a load of this engine: a hit when a session was found (in the cache or the database)."""
        record("load_hit" if data is not None else "load_miss", seconds=time.monotonic() - started)

    def _remember(
        self, loaded: Snapshot | None = None, token: str | None = None, cache: Snapshot | None = None
    ) -> None:
        self._sk_key, self._sk_loaded, self._sk_token, self._sk_cache = self.session_key, loaded, token, cache

    def _mine(self, value: _T) -> _T | None:
        """A remembered value, if it belongs to this session key."""
        return value if self._sk_key == self.session_key else None

    # -- loading ----------------------------------------------------------------------------------------------

    def _from_cache(self, loaded: tuple[dict[str, Any], Snapshot] | Expired | None) -> dict[str, Any] | None:
        """A cache hit with data is the session; an empty or missing copy (or a tombstone) is not trusted."""
        if loaded is not None and not isinstance(loaded, Expired):
            data, snapshot = loaded
            if len(data) > (1 if snapshot.created_added else 0):
                self._remember(loaded=snapshot, cache=snapshot)
                self._lifetime_due(snapshot)
                return data
        return None

    def _lifetime_due(self, snapshot: Snapshot) -> None:
        """A load that added ``_sessionkit_created`` or found a touch due: the session is saved at the end of the
        request (the save of an unchanged session only moves the expiry)."""
        if snapshot.touch_due or snapshot.created_added:
            self.modified = True

    def _judge(self, s: AbstractBaseSession, data: dict[str, Any]) -> Snapshot | Expired:
        """A row read from the database, under the lifetime rules (off: the snapshot of what was read)."""
        store = self._rules()
        if store is None or not store.lifetime_rules:
            return Snapshot.of(data)
        return store.judge_loaded(s.session_key, data, s.expire_date.timestamp())

    def _ended(self, ended: Expired) -> None:
        """A session a lifetime rule has ended: the row goes (and the copy, under a tombstone); a new session."""
        signals.expired(type(self), ended)
        self._session_key = None

    @staticmethod
    def _as_stored(data: dict[str, Any], snapshot: Snapshot) -> dict[str, Any]:
        """The data as the database holds it (without a ``_sessionkit_created`` the load only added)."""
        if not snapshot.created_added:
            return data
        return {k: v for k, v in data.items() if k != CREATED_KEY}

    def load(self) -> dict[str, Any]:
        if self.session_key is None:  # no cookie yet: an empty session, as Django's engines give
            return {}
        started = time.monotonic()
        data = self._load()
        self._count_load(started, data)
        return {} if data is None else data

    def _load(self) -> dict[str, Any] | None:
        """The session from the cache or the database; ``None`` when there is none."""
        assert self.session_key is not None
        try:
            loaded = self._cache().load_versioned(self.session_key)
        except SessionkitError as err:
            self._cache_failed("load", err)
            loaded = None
        if isinstance(loaded, Expired):
            self.delete(self.session_key)
            self._ended(loaded)
            return {}
        data = self._from_cache(loaded)
        if data is not None:
            return data
        started = time.monotonic()
        s = self._get_session_from_db()
        if not s:
            return None
        data = self.decode(s.session_data)
        judged = self._judge(s, data)
        if isinstance(judged, Expired):
            self.delete(self.session_key)
            self._ended(judged)
            return {}
        cache = None
        try:
            age = self.get_expiry_age(expiry=s.expire_date)
            stored = self._as_stored(data, judged)
            cache = self._cache().refill(s.session_key, stored, age, time.monotonic() - started)
        except SessionkitError as err:
            self._cache_failed("refill", err)
        self._remember(loaded=judged, token=s.session_data, cache=cache)
        self._lifetime_due(judged)
        return data

    async def aload(self) -> dict[str, Any]:
        if self.session_key is None:
            return {}
        started = time.monotonic()
        data = await self._aload()
        self._count_load(started, data)
        return {} if data is None else data

    async def _aload(self) -> dict[str, Any] | None:
        assert self.session_key is not None
        try:
            loaded = await self._cache().aload_versioned(self.session_key)
        except SessionkitError as err:
            self._cache_failed("load", err)
            loaded = None
        if isinstance(loaded, Expired):
            await self.adelete(self.session_key)
            self._ended(loaded)
            return {}
        data = self._from_cache(loaded)
        if data is not None:
            return data
        started = time.monotonic()
        s = await self._aget_session_from_db()
        if not s:
            return None
        data = self.decode(s.session_data)
        judged = self._judge(s, data)
        if isinstance(judged, Expired):
            await self.adelete(self.session_key)
            self._ended(judged)
            return {}
        cache = None
        try:
            age = await self.aget_expiry_age(expiry=s.expire_date)
            stored = self._as_stored(data, judged)
            cache = await self._cache().arefill(s.session_key, stored, age, time.monotonic() - started)
        except SessionkitError as err:
            self._cache_failed("refill", err)
        self._remember(loaded=judged, token=s.session_data, cache=cache)
        self._lifetime_due(judged)
        return data

    def exists(self, session_key: str | None) -> bool:
        # The database decides: the cache may hold a tombstone of a deleted session.
        if not session_key:
            return False
        return super().exists(session_key)

    async def aexists(self, session_key: str | None) -> bool:
        if not session_key:
            return False
        return await super().aexists(session_key)

    def clear(self) -> None:
        super().clear()
        self._sk_cleared = True

    # -- saving -----------------------------------------------------------------------------------------------

    def _merged(
        self, row: AbstractBaseSession, current: dict[str, Any]
    ) -> tuple[dict[str, Any], datetime.datetime]:
        """What to write over ``row`` (the database's live row): this request's changes applied to its data, and
        the expiry (this request's when the merged ``_session_expiry`` is its own, else the row's)."""
        stored = self.decode(row.session_data)
        merged = merge(stored, self._mine(self._sk_loaded), current, self._sk_cleared)
        return merged, row.expire_date

    def create_model_instance(self, data: dict[str, Any]) -> AbstractBaseSession:
        """Django's, with the lifetime rules' store expiry as ``expire_date`` while a rule is on."""
        obj = super().create_model_instance(data)
        at = self._store_expiry(data)
        if at is not None:
            obj.expire_date = _datetime(at)
        return obj

    def _expiry_date(self, data: dict[str, Any]) -> datetime.datetime:
        """The ``expire_date`` a save of ``data`` writes: the lifetime rules' store expiry, else Django's."""
        at = self._store_expiry(data)
        return self.get_expiry_date() if at is None else _datetime(at)

    def _cache_age(self, data: dict[str, Any], django_age: int) -> int:
        """The cached copy's age in seconds: the lifetime rules' store expiry from now, else Django's."""
        at = self._store_expiry(data)
        return django_age if at is None else max(0, int(at - time.time()))

    def _touch_only(self) -> bool:
        """Under an idle timeout, the save of a session this request loaded and did not change: moves the expiry
        of the row (``UPDATE … SET expire_date``) and of the cached copy when a touch is due (the Rust core
        decides), else writes nothing. False when the session must be saved."""
        store = self._rules()
        if store is None or not store.lifetime_rules:
            return False
        data = self._get_session()
        loaded = self._mine(self._sk_loaded)
        plan = store.unchanged_touch(data, loaded, self._sk_cleared)
        if plan is None:
            return False
        if plan:
            using = router.db_for_write(self.model)
            rows = self.model.objects.using(using).filter(session_key=self.session_key, expire_date__gt=timezone.now())
            if not rows.update(expire_date=_datetime(plan)):
                raise UpdateError
            key = self.session_key
            if key is not None and self._mine(self._sk_cache) is not None:
                try:
                    store.touch(key, data, plan)
                except SessionkitError as err:
                    self._cache_failed("touch", err)
            self._sk_loaded = Snapshot.of(data, plan)
        return True

    def _fields(self, data: dict[str, Any], expire_date: datetime.datetime) -> dict[str, Any]:
        """The column values of a row holding ``data`` (``create_model_instance``, so a custom model's extra fields
        are filled as Django fills them)."""
        obj = self.create_model_instance(data)
        obj.expire_date = expire_date
        return {f.attname: getattr(obj, f.attname) for f in self.model._meta.concrete_fields if not f.primary_key}

    def _insert(self, data: dict[str, Any]) -> str:
        """Django's ``save(must_create=True)`` of the row (its router, a transaction, ``CreateError`` when the key
        is taken); returns the ``session_data`` token written, for the compare-and-set of a later save."""
        obj = self.create_model_instance(data)
        using = router.db_for_write(self.model, instance=obj)
        try:
            with transaction.atomic(using=using):
                obj.save(force_insert=True, using=using)
        except IntegrityError as err:
            raise CreateError from err
        token: str = obj.session_data
        return token

    def _save_to_db(self, current: dict[str, Any]) -> dict[str, Any]:
        """The merging save of the database row; returns what it holds now. ``UpdateError`` when the row is gone
        (deleted or expired)."""
        using = router.db_for_write(self.model)
        rows = self.model.objects.using(using)
        token = self._mine(self._sk_token)
        if not merge_enabled():
            fields = self._fields(current, self._expiry_date(current))
            if not rows.filter(session_key=self.session_key).update(**fields):
                raise UpdateError
            self._sk_token, self._sk_attempts = fields["session_data"], 1
            return current
        data, expire_date = current, self._expiry_date(current)
        for attempt in range(1, MAX_SAVE_ATTEMPTS + 1):
            if token is None:
                # The row as the database that is written holds it now (not a replica), live.
                row = rows.filter(session_key=self.session_key, expire_date__gt=timezone.now()).first()
                if row is None:
                    raise UpdateError
                token = row.session_data
                data, stored_expiry = self._merged(row, current)
                own = data.get(EXPIRY_KEY) == current.get(EXPIRY_KEY)
                expire_date = self._expiry_date(data) if own else stored_expiry
            fields = self._fields(data, expire_date)
            if rows.filter(session_key=self.session_key, session_data=token).update(**fields):
                self._sk_key, self._sk_token = self.session_key, fields["session_data"]
                self._sk_attempts = attempt
                return data
            if attempt == MAX_SAVE_ATTEMPTS:
                break
            _back_off(attempt)
            token = None
        record("save_contended", attempts=MAX_SAVE_ATTEMPTS)
        raise StoreContended(
            f"other requests kept writing the session while this one tried to save it ({MAX_SAVE_ATTEMPTS} attempts); "
            "nothing was saved, try again"
        )

    def _stored(self, data: dict[str, Any], cache: Snapshot | None, token: str | None) -> None:
        """After a database save: the session dict is what the database holds (``token``), and later saves compare
        with it (the cache's snapshot holds the same data, so it serves as the loaded one)."""
        current = self._session_cache
        if data is not current:
            self._session_cache = data
            if data != current:  # another request's writes were merged in
                signals.merge_conflict(type(self), self.session_key, data)
        if cache is None:
            at = self._store_expiry(data)
            cache_or_data = Snapshot.of(data, at)
        else:
            cache_or_data = cache
        self._remember(loaded=cache_or_data, token=token, cache=cache)
        self._sk_cleared = False

    def _write_copy(
        self, key: str, data: dict[str, Any], age: int, snapshot: Snapshot | None, db_seconds: float
    ) -> Snapshot | None:
        """The cache part of a save: the copy, or a step aside; a cache failure is logged, never raised."""
        try:
            return self._cache().write_copy(key, data, age, snapshot, db_seconds)
        except (SessionkitError, ValueError, TypeError) as err:
            self._cache_failed("save", err)
            return None

    async def _awrite_copy(
        self, key: str, data: dict[str, Any], age: int, snapshot: Snapshot | None, db_seconds: float
    ) -> Snapshot | None:
        try:
            return await self._cache().awrite_copy(key, data, age, snapshot, db_seconds)
        except (SessionkitError, ValueError, TypeError) as err:
            self._cache_failed("save", err)
            return None

    def _count_save(self, started: float) -> None:
        """Counts a database save: merged when another request's write was met (more than one attempt)."""
        attempts = self._sk_attempts
        event = "save_merged" if attempts > 1 else "save_written"
        record(event, seconds=time.monotonic() - started, attempts=attempts)

    def save(self, must_create: bool = False) -> None:
        key = self.session_key
        if key is None:
            self.create()  # create() saves with must_create=True, cache included
            return
        if not must_create and self._touch_only():
            return
        started = time.monotonic()
        token: str | None
        if must_create:
            data = self._get_session(no_load=True)
            self._start_lifetime(data)
            token = self._insert(data)
            snapshot = None
            record("create")
        else:
            data = self._save_to_db(self._get_session())
            token, snapshot = self._sk_token, self._mine(self._sk_cache)
            self._count_save(started)
        age = self._cache_age(data, self.get_expiry_age())
        cache = self._write_copy(key, data, age, snapshot, time.monotonic() - started)
        self._stored(data, cache, token)

    async def asave(self, must_create: bool = False) -> None:
        key = self.session_key
        if key is None:
            await self.acreate()
            return
        from asgiref.sync import sync_to_async

        if not must_create:
            await self._aget_session()  # loaded here, so the thread below needs no load
            if await sync_to_async(self._touch_only)():
                return
        started = time.monotonic()
        token: str | None
        if must_create:
            data = await self._aget_session(no_load=True)
            self._start_lifetime(data)
            token = await sync_to_async(self._insert)(data)
            snapshot = None
            record("create")
        else:
            current = await self._aget_session()
            data = await sync_to_async(self._save_to_db)(current)
            token, snapshot = self._sk_token, self._mine(self._sk_cache)
            self._count_save(started)
        age = self._cache_age(data, await self.aget_expiry_age())
        cache = await self._awrite_copy(key, data, age, snapshot, time.monotonic() - started)
        self._stored(data, cache, token)

    # -- deleting ---------------------------------------------------------------------------------------------

    def delete(self, session_key: str | None = None) -> None:
        super().delete(session_key)
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        record("delete")
        # A tombstone, not just a delete: a refill from a database read made before this delete fails on it.
        self._cache().bury(session_key)

    async def adelete(self, session_key: str | None = None) -> None:
        await super().adelete(session_key)
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        record("delete")
        await self._cache().abury(session_key)

    def flush(self) -> None:
        key, user_id = self.session_key, signals.user_of(getattr(self, "_session_cache", None))
        self.clear()
        self.delete(self.session_key)
        self._session_key = None
        signals.flushed(type(self), key, user_id)

    async def aflush(self) -> None:
        key, user_id = self.session_key, signals.user_of(getattr(self, "_session_cache", None))
        self.clear()
        await self.adelete(self.session_key)
        self._session_key = None
        signals.flushed(type(self), key, user_id)

    def cycle_key(self) -> None:
        old = self.session_key
        super().cycle_key()
        signals.cycled(type(self), old, self.session_key, self._session_cache)

    async def acycle_key(self) -> None:
        old = self.session_key
        await super().acycle_key()
        signals.cycled(type(self), old, self.session_key, self._session_cache)

    @classmethod
    def clear_expired(cls) -> None:
        """Django's: delete expired rows; then the cache sweeps what Redis does not expire itself."""
        super().clear_expired()
        try:
            cls._cache().clear_expired()
        except SessionkitError as err:
            logger.warning("session cache could not clear expired sessions: %s", err)

    @classmethod
    async def aclear_expired(cls) -> None:
        await super().aclear_expired()
        try:
            await cls._cache().aclear_expired()
        except SessionkitError as err:
            logger.warning("session cache could not clear expired sessions: %s", err)
