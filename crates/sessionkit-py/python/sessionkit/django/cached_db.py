"""``SESSION_ENGINE = "sessionkit.django.cached_db"``: sessionkit's Redis store in front of Django's own
``django_session`` table.

The database part *is* Django's ``db`` engine (this class subclasses it): rows are written through Django's ORM,
in the table ``manage.py migrate`` created, signed by Django, inside Django's transactions and database routers,
on any database Django supports. Only the cache part is sessionkit's (Rust, GIL released). By default the cache
uses the ``django-cache`` layout with Django's ``cached_db`` keys, so Django's own ``cached_db`` engine (with
Django's ``RedisCache`` on the same Redis) and this one share sessions; ``SESSIONKIT["LAYOUT"] = "string"`` is
faster and sessionkit-only.

Django's order and error rules (5.1+): reads try the cache, then the database (refilling the cache); writes go to
the database, then the cache (a cache failure is logged, never raised, so the database stays the truth); deletes
go to both, and a cache that cannot delete raises (a stale cached copy would keep a logged-out session alive).
"""

import logging

from django.contrib.sessions.backends.db import SessionStore as DBStore

from sessionkit import SessionkitError
from sessionkit.conf import get_store

logger = logging.getLogger("sessionkit")

ENGINE = "cached_db"


class SessionStore(DBStore):
    """Django's ``db`` engine with sessionkit's Redis store as its cache."""

    cache_key_prefix = "django.contrib.sessions.cached_db"

    @classmethod
    def _cache(cls):
        return get_store(ENGINE)

    @classmethod
    def get_model_class(cls):
        # Django's own Session model and django_session table (DBStore's default), stated for clarity.
        from django.contrib.sessions.models import Session

        return Session

    def _cache_failed(self, operation, err):
        logger.warning("session cache failed during %s; the database answers: %s", operation, err)

    def load(self):
        try:
            data = self._cache().load(self.session_key)
        except SessionkitError as err:
            self._cache_failed("load", err)
            data = None
        if data is None:
            s = self._get_session_from_db()
            if s:
                data = self.decode(s.session_data)
                try:
                    self._cache().put(s.session_key, data, self.get_expiry_age(expiry=s.expire_date))
                except SessionkitError as err:
                    self._cache_failed("refill", err)
            else:
                data = {}
        return data

    async def aload(self):
        try:
            data = await self._cache().aload(self.session_key)
        except SessionkitError as err:
            self._cache_failed("load", err)
            data = None
        if data is None:
            s = await self._aget_session_from_db()
            if s:
                data = self.decode(s.session_data)
                try:
                    await self._cache().aput(
                        s.session_key, data, await self.aget_expiry_age(expiry=s.expire_date)
                    )
                except SessionkitError as err:
                    self._cache_failed("refill", err)
            else:
                data = {}
        return data

    def exists(self, session_key):
        if not session_key:
            return False
        try:
            if self._cache().exists(session_key):
                return True
        except SessionkitError as err:
            self._cache_failed("exists", err)
        return super().exists(session_key)

    async def aexists(self, session_key):
        if not session_key:
            return False
        try:
            if await self._cache().aexists(session_key):
                return True
        except SessionkitError as err:
            self._cache_failed("exists", err)
        return await super().aexists(session_key)

    def save(self, must_create=False):
        if self.session_key is None:
            return self.create()  # create() saves with must_create=True, cache included
        super().save(must_create)
        try:
            self._cache().put(self.session_key, self._session, self.get_expiry_age(), created=must_create)
        except (SessionkitError, ValueError, TypeError) as err:
            self._cache_failed("save", err)

    async def asave(self, must_create=False):
        if self.session_key is None:
            return await self.acreate()
        await super().asave(must_create)
        try:
            data = await self._aget_session()
            await self._cache().aput(self.session_key, data, await self.aget_expiry_age(), created=must_create)
        except (SessionkitError, ValueError, TypeError) as err:
            self._cache_failed("save", err)

    def delete(self, session_key=None):
        super().delete(session_key)
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        self._cache().delete(session_key)

    async def adelete(self, session_key=None):
        await super().adelete(session_key)
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        await self._cache().adelete(session_key)

    def flush(self):
        self.clear()
        self.delete(self.session_key)
        self._session_key = None

    async def aflush(self):
        self.clear()
        await self.adelete(self.session_key)
        self._session_key = None

    @classmethod
    def clear_expired(cls):
        """Django's: delete expired rows; then the cache sweeps what Redis does not expire itself."""
        super().clear_expired()
        try:
            cls._cache().clear_expired()
        except SessionkitError as err:
            logger.warning("session cache could not clear expired sessions: %s", err)

    @classmethod
    async def aclear_expired(cls):
        await super().aclear_expired()
        try:
            await cls._cache().aclear_expired()
        except SessionkitError as err:
            logger.warning("session cache could not clear expired sessions: %s", err)
