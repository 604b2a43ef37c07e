"""Per-user sessions: list a user's sessions and log out one, all, or all but the current one.

Backed by the per-user index the Rust store keeps in Redis (``SESSIONKIT["USER_INDEX"]``, on by default): every
save of a session with Django's ``_auth_user_id`` records it. Works with ``sessionkit.django.redis`` and
``sessionkit.django.cached_db``; with ``cached_db`` a logout also deletes the user's rows from ``django_session``
(the database is the truth there), which reads every live row once: O(live sessions).

Sessions are named by an id (``sessionkit.session_id(key)``: the first 128 bits of SHA-256 of the key), never by
their key, which is a bearer credential.
"""

from __future__ import annotations

import datetime
from collections.abc import Collection
from dataclasses import dataclass
from typing import Optional

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from sessionkit import session_id
from sessionkit.conf import Engine, current_engine, get_store
from sessionkit.django import signals

#: Session keys under which ``record_client`` stores the user agent and IP address (the Rust core's names).
USER_AGENT_KEY = "_sessionkit_ua"
CLIENT_IP_KEY = "_sessionkit_ip"


@dataclass(frozen=True)
class UserSession:
    """One of a user's live sessions."""

    id: str
    created: Optional[datetime.datetime]
    last_seen: Optional[datetime.datetime]
    expires_at: datetime.datetime
    user_agent: Optional[str]
    ip: Optional[str]
    current: bool = False


def _engine() -> Engine:
    engine = current_engine()
    if engine is None:
        raise RuntimeError(f"sessionkit.django.users needs a sessionkit SESSION_ENGINE, not {settings.SESSION_ENGINE!r}")
    return engine


def _user_id(user: object) -> str:
    if user is None:
        raise ValueError("no user")
    pk = getattr(user, "pk", user)
    if pk is None:
        raise ValueError("the user is not saved (no primary key)")
    # Django stores the id as user._meta.pk.value_to_string(user): str(pk) for the usual key types.
    return str(pk)


def _time(seconds: float | None) -> datetime.datetime | None:
    if seconds is None:
        return None
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)


def _current_key(request: HttpRequest | None) -> str | None:
    session = getattr(request, "session", None) if request is not None else None
    key: str | None = getattr(session, "session_key", None)
    return key


def user_sessions(user: object, request: HttpRequest | None = None) -> list[UserSession]:
    """The user's live sessions, most recently seen first; the request's own session is marked ``current``."""
    current = _current_key(request)
    current_id = session_id(current) if current and len(current) >= 8 else None
    return [
        UserSession(
            id=item["id"],
            created=_time(item["created"]),
            last_seen=_time(item["last_seen"]),
            expires_at=datetime.datetime.fromtimestamp(item["expires_at"], tz=datetime.timezone.utc),
            user_agent=item["user_agent"],
            ip=item["ip"],
            current=item["id"] == current_id,
        )
        for item in get_store(_engine()).user_sessions(_user_id(user))
    ]


def _db_rows_of(user_id: str, only_ids: Collection[str] | None = None, keep_key: str | None = None) -> list[str]:
    """cached_db: the user's live rows in django_session (decoded: the database is the truth)."""
    from django.contrib.sessions.backends.db import SessionStore as DBStore

    from sessionkit.django.cached_db import SessionStore

    model = SessionStore.get_model_class()
    decoder = DBStore()
    keys: list[str] = []
    rows = model.objects.filter(expire_date__gt=timezone.now()).values_list("session_key", "session_data")
    for key, data in rows.iterator():
        if key == keep_key:
            continue
        if only_ids is not None and session_id(key) not in only_ids:
            continue
        if str(decoder.decode(data).get("_auth_user_id")) == user_id:
            keys.append(key)
    return keys


def _delete_db_rows(keys: list[str]) -> int:
    from sessionkit.django.cached_db import SessionStore

    if keys:
        SessionStore.get_model_class().objects.filter(session_key__in=keys).delete()
    store = get_store("cached_db")
    for key in keys:
        store.delete(key)
    return len(keys)


def logout_session(user: object, id: str) -> bool:
    """Logs the user out of one session (by ``UserSession.id``); False if the user has no such session."""
    engine, user_id = _engine(), _user_id(user)
    deleted = get_store(engine).delete_user_session(user_id, id)
    if engine == "cached_db":
        deleted = _delete_db_rows(_db_rows_of(user_id, only_ids={id})) > 0 or deleted
    if deleted:
        signals.revoked(logout_session, user_id, 1, None)
    return deleted


def logout_all(user: object, keep: str | None = None) -> int:
    """Logs the user out everywhere (except the session key ``keep``); returns how many sessions were deleted."""
    engine, user_id = _engine(), _user_id(user)
    deleted = get_store(engine).delete_user_sessions(user_id, keep)
    if engine == "cached_db":
        deleted = max(deleted, _delete_db_rows(_db_rows_of(user_id, keep_key=keep)))
    signals.revoked(logout_all, user_id, deleted, keep)
    return deleted


def logout_others(request: HttpRequest) -> int:
    """"Log out my other devices": deletes every session of ``request.user`` except the request's own."""
    return logout_all(request.user, keep=_current_key(request))


def record_client(request: HttpRequest) -> None:
    """Stores the client's user agent and IP address in the session, so ``user_sessions`` can show them."""
    session = request.session
    agent = request.META.get("HTTP_USER_AGENT", "")[:512]
    ip = request.META.get("REMOTE_ADDR", "")
    if session.get(USER_AGENT_KEY) != agent:
        session[USER_AGENT_KEY] = agent
    if session.get(CLIENT_IP_KEY) != ip:
        session[CLIENT_IP_KEY] = ip
