"""``SESSION_ENGINE = "sessionkit.django.redis"``: Django sessions in Redis through sessionkit's Rust core.

Semantics are Django's cache engine's, with four differences, all on purpose:

- one Redis round trip per load, per save and per create (Django's cache engine: load 1, save 2, create 2);
- parallel requests never lose each other's writes: a save applies the keys this request changed (found by
  comparing the dict with what was loaded, so a nested value changed in place counts) on top of what is stored
  now, and the session dict then holds the merged data (``docs/concurrency.md``; ``SESSIONKIT["MERGE"] = False``
  gives Django's last-write-wins);
- a save never re-creates a session that was deleted meanwhile (``UpdateError``, a 400 from Django's middleware),
  so a logout in another tab is never undone;
- an unreachable Redis raises ``sessionkit.StoreUnavailable`` (a 500, logged) instead of silently giving an
  empty session, unless ``SESSIONKIT["FAILURE_POLICY"] = "empty"``.

With ``SESSION_IDLE_TIMEOUT`` / ``SESSION_ABSOLUTE_TIMEOUT`` (off by default) the Rust core's lifetime rules apply:
a load of a session a rule has ended deletes it and gives a new session (signal ``expired``); a load that finds an
idle timeout's touch due, or that adds ``_sessionkit_created``, marks the session modified, so Django's
``SessionMiddleware`` saves it, and a save that changes nothing only moves the expiry (a touch). Session events go
to the signal ``sessionkit.django.signals.session_event``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError

from sessionkit import StoreUnavailable
from sessionkit._native import Expired, Snapshot, Store
from sessionkit.conf import Engine, failure_policy, get_store
from sessionkit.django import checks, signals

logger = logging.getLogger("sessionkit")

ENGINE: Engine = "redis"

# The system checks of SESSIONKIT, also for sites that set SESSION_ENGINE without installing the app.
checks.register()
signals.connect()


def _unreachable(err: StoreUnavailable) -> bool:
    """With FAILURE_POLICY "empty", a store that cannot even be connected to loads as no session."""
    if failure_policy() == "empty":
        logger.warning("session store unavailable; treating the session as empty (FAILURE_POLICY=empty): %s", err)
        return True
    return False


class SessionStore(SessionBase):
    """Django's ``SessionBase`` on sessionkit's Redis store. The session dict lives in Python (so every
    ``SessionBase`` method works unchanged); load and save cross into Rust once each."""

    if TYPE_CHECKING:  # Django's own (private) API this engine builds on

        def _get_session(self, no_load: bool = False) -> dict[str, Any]: ...

        async def _aget_session(self, no_load: bool = False) -> dict[str, Any]: ...

        _session_cache: dict[str, Any]

    #: Marks sessionkit's engines (``sessionkit.django.signals`` sends ``logged_in`` only for them).
    sessionkit_engine = True

    @classmethod
    def _store(cls) -> Store:
        return get_store(ENGINE)

    #: What the last load (or save) read: kept in Rust for the next save's compare-and-set and change set.
    _sessionkit_snapshot: Snapshot | None = None
    #: The session key the snapshot belongs to.
    _sessionkit_snapshot_key: str | None = None
    #: True once ``clear()`` ran: the save then also removes keys other requests added meanwhile.
    _sessionkit_cleared = False

    def load(self) -> dict[str, Any]:
        if self.session_key is None:  # no cookie yet: an empty session, as Django's engines give
            return self._loaded(None)
        try:
            loaded = self._store().load_versioned(self.session_key)
        except StoreUnavailable as err:
            if not _unreachable(err):
                raise
            loaded = None
        return self._loaded(loaded)

    async def aload(self) -> dict[str, Any]:
        if self.session_key is None:
            return self._loaded(None)
        try:
            loaded = await self._store().aload_versioned(self.session_key)
        except StoreUnavailable as err:
            if not _unreachable(err):
                raise
            loaded = None
        return self._loaded(loaded)

    def _loaded(self, loaded: tuple[dict[str, Any], Snapshot] | Expired | None) -> dict[str, Any]:
        """The session dict of a load; nothing stored (or an unreachable store under the "empty" policy, or a
        session a lifetime rule has ended) is a new session, as in Django. A load that added
        ``_sessionkit_created`` or found a touch due marks the session modified (the save at the end of the
        request writes the key, or only moves the expiry)."""
        if isinstance(loaded, Expired):
            signals.expired(type(self), loaded)
            loaded = None
        if loaded is None:
            self._session_key = None
            self._sessionkit_snapshot = None
            return {}
        data, snapshot = loaded
        self._sessionkit_snapshot = snapshot
        self._sessionkit_snapshot_key = self.session_key
        if snapshot.touch_due or snapshot.created_added:
            self.modified = True
        return data

    def _snapshot(self) -> Snapshot | None:
        """The snapshot of this session key, if this request loaded it."""
        if self._sessionkit_snapshot_key != self.session_key:
            return None
        return self._sessionkit_snapshot

    def _saved(self, result: tuple[dict[str, Any] | None, Snapshot] | None) -> None:
        """Takes a ``save_changes`` result: ``None`` (the session vanished: ``UpdateError``) or the merged data
        (when other requests' writes were merged in, the session dict becomes it) and the new snapshot."""
        if result is None:
            raise UpdateError
        merged, self._sessionkit_snapshot = result
        self._sessionkit_snapshot_key = self.session_key
        self._sessionkit_cleared = False
        if merged is not None:
            self._session_cache = merged
            signals.merge_conflict(type(self), self.session_key, merged)

    def cycle_key(self) -> None:
        old = self.session_key
        super().cycle_key()
        signals.cycled(type(self), old, self.session_key, self._session_cache)

    async def acycle_key(self) -> None:
        old = self.session_key
        await super().acycle_key()
        signals.cycled(type(self), old, self.session_key, self._session_cache)

    def flush(self) -> None:
        key, user_id = self.session_key, signals.user_of(getattr(self, "_session_cache", None))
        super().flush()
        signals.flushed(type(self), key, user_id)

    async def aflush(self) -> None:
        key, user_id = self.session_key, signals.user_of(getattr(self, "_session_cache", None))
        await super().aflush()
        signals.flushed(type(self), key, user_id)

    def clear(self) -> None:
        super().clear()
        self._sessionkit_cleared = True

    def exists(self, session_key: str | None) -> bool:
        if not session_key:
            return False
        return self._store().exists(session_key)

    async def aexists(self, session_key: str | None) -> bool:
        if not session_key:
            return False
        return await self._store().aexists(session_key)

    def create(self) -> None:
        # One round trip: a fresh key is written with SET NX (retried in Rust on the rare collision), instead of
        # Django's exists() + add().
        # The snapshot of what was written lets a later save of this request compare-and-set in one round trip.
        data = self._get_session(no_load=True)
        self._created(self._store().create_fresh(data, self.get_expiry_age()))

    async def acreate(self) -> None:
        data = await self._aget_session(no_load=True)
        self._created(await self._store().acreate_fresh(data, await self.aget_expiry_age()))

    def _created(self, created: tuple[str, Snapshot]) -> None:
        self._session_key, self._sessionkit_snapshot = created
        self._sessionkit_snapshot_key = self._session_key
        self._sessionkit_cleared = False
        self.modified = True

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            self.create()
            return
        data = self._get_session(no_load=must_create)
        if self.session_key is None:  # the load found nothing: as Django, a save does not re-create it
            raise UpdateError
        store = self._store()
        if must_create:
            if not store.create(self.session_key, data, self.get_expiry_age()):
                raise CreateError
            return
        age = self.get_expiry_age()
        self._saved(store.save_changes(self.session_key, data, age, self._snapshot(), self._sessionkit_cleared))

    async def asave(self, must_create: bool = False) -> None:
        if self.session_key is None:
            await self.acreate()
            return
        data = await self._aget_session(no_load=must_create)
        if self.session_key is None:
            raise UpdateError
        store = self._store()
        age = await self.aget_expiry_age()
        if must_create:
            if not await store.acreate(self.session_key, data, age):
                raise CreateError
            return
        snapshot, cleared = self._snapshot(), self._sessionkit_cleared
        self._saved(await store.asave_changes(self.session_key, data, age, snapshot, cleared))

    def delete(self, session_key: str | None = None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        self._store().delete(session_key)

    async def adelete(self, session_key: str | None = None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        await self._store().adelete(session_key)

    @classmethod
    def clear_expired(cls) -> None:
        """Redis expires ``string`` and ``django-cache`` sessions itself; the ``hash`` layout on Redis < 7.4 is
        swept here (``manage.py clearsessions``)."""
        cls._store().clear_expired()

    @classmethod
    async def aclear_expired(cls) -> None:
        await cls._store().aclear_expired()
