"""``SESSION_ENGINE = "sessionkit.django.redis"``: Django sessions in Redis through sessionkit's Rust core.

Semantics are Django's cache engine's, with three differences, all on purpose:

- one Redis round trip per load, per save and per create (Django's cache engine: load 1, save 2, create 2);
- a save never re-creates a session that was deleted meanwhile (``UpdateError``, a 400 from Django's middleware);
- an unreachable Redis raises ``sessionkit.StoreUnavailable`` (a 500, logged) instead of silently giving an
  empty session, unless ``SESSIONKIT["FAILURE_POLICY"] = "empty"``.
"""

import logging

from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError

from sessionkit import StoreUnavailable
from sessionkit.conf import failure_policy, get_store

logger = logging.getLogger("sessionkit")

ENGINE = "redis"


def _unreachable(err):
    """With FAILURE_POLICY "empty", a store that cannot even be connected to loads as no session."""
    if failure_policy() == "empty":
        logger.warning("session store unavailable; treating the session as empty (FAILURE_POLICY=empty): %s", err)
        return True
    return False


_INDEX_KEYS = ("_auth_user_id", "_sessionkit_ua", "_sessionkit_ip")


def _index_fields(data):
    return tuple(data.get(key) for key in _INDEX_KEYS)


class SessionStore(SessionBase):
    """Django's ``SessionBase`` on sessionkit's Redis store. The session dict lives in Python (so every
    ``SessionBase`` method works unchanged); load and save cross into Rust once each."""

    @classmethod
    def _store(cls):
        return get_store(ENGINE)

    def load(self):
        try:
            data = self._store().load(self.session_key)
        except StoreUnavailable as err:
            if not _unreachable(err):
                raise
            data = None
        return self._loaded(data)

    async def aload(self):
        try:
            data = await self._store().aload(self.session_key)
        except StoreUnavailable as err:
            if not _unreachable(err):
                raise
            data = None
        return self._loaded(data)

    def _loaded(self, data):
        """The session dict of a load; nothing stored (or an unreachable store under the "empty" policy) is a new
        session, as in Django."""
        if data is None:
            self._session_key = None
            return {}
        self._loaded_index_fields = _index_fields(data)
        return data

    def _index_changed(self, data):
        """Whether the keys the per-user index keeps (login, user agent, IP) differ from what was loaded: only
        then must the save rewrite the index entry at once (else Redis' ``INDEX_REFRESH`` window applies)."""
        return getattr(self, "_loaded_index_fields", None) != _index_fields(data)

    def exists(self, session_key):
        return bool(session_key) and self._store().exists(session_key)

    async def aexists(self, session_key):
        return bool(session_key) and await self._store().aexists(session_key)

    def create(self):
        # One round trip: a fresh key is written with SET NX (retried in Rust on the rare collision), instead of
        # Django's exists() + add().
        data = self._get_session(no_load=True)
        self._session_key = self._store().create_new(data, self.get_expiry_age())
        self.modified = True

    async def acreate(self):
        data = await self._aget_session(no_load=True)
        self._session_key = await self._store().acreate_new(data, await self.aget_expiry_age())
        self.modified = True

    def save(self, must_create=False):
        if self.session_key is None:
            return self.create()
        data = self._get_session(no_load=must_create)
        if self.session_key is None:  # the load found nothing: as Django, a save does not re-create it
            raise UpdateError
        store = self._store()
        if must_create:
            if not store.create(self.session_key, data, self.get_expiry_age()):
                raise CreateError
        elif not store.save(self.session_key, data, self.get_expiry_age(), self._index_changed(data)):
            raise UpdateError

    async def asave(self, must_create=False):
        if self.session_key is None:
            return await self.acreate()
        data = await self._aget_session(no_load=must_create)
        if self.session_key is None:
            raise UpdateError
        store = self._store()
        age = await self.aget_expiry_age()
        if must_create:
            if not await store.acreate(self.session_key, data, age):
                raise CreateError
        elif not await store.asave(self.session_key, data, age, self._index_changed(data)):
            raise UpdateError

    def delete(self, session_key=None):
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        self._store().delete(session_key)

    async def adelete(self, session_key=None):
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        await self._store().adelete(session_key)

    @classmethod
    def clear_expired(cls):
        """Redis expires ``string`` and ``django-cache`` sessions itself; the ``hash`` layout on Redis < 7.4 is
        swept here (``manage.py clearsessions``)."""
        cls._store().clear_expired()

    @classmethod
    async def aclear_expired(cls):
        await cls._store().aclear_expired()
