"""Session events for an audit log: the Django signal ``session_event``.

The engines ``sessionkit.django.redis`` and ``sessionkit.django.cached_db`` send it with ``kind`` and the event's
fields, the same as the Rust core's audit events (``sessionkit::audit::AuditEvent``). Sessions are named by
``sessionkit.session_id(key)`` (a digest), never by their key, which is a bearer credential:

=================  ===========================================================================================
``kind``           fields
=================  ===========================================================================================
``cycled``         ``from_`` (id of the key given up, or None), ``to`` (id of the new key), ``user_id``
``logged_in``      ``session`` (id, or None when the login flushed another user's session: the new one gets
                   its key when it is saved), ``user_id``
``flushed``        ``session`` (id of the deleted session, or None), ``user_id`` (logout flushes)
``revoked``        ``user_id``, ``sessions`` (how many were deleted), ``kept`` (id of the session kept, or None)
``expired``        ``session``, ``user_id``, ``rule`` (``"idle"`` or ``"absolute"``)
``merge_conflict`` ``session``, ``user_id`` (another request wrote the session meanwhile; both writes were kept)
=================  ===========================================================================================

(``from_`` has its underscore because ``from`` is a Python keyword.) ``user_id`` is the ``_auth_user_id`` the
session holds (a string), or None. ``sender`` is the engine's ``SessionStore`` class (for ``revoked``:
``sessionkit.django.users.logout_session`` or ``logout_all``).

``logged_in`` comes from Django's ``user_logged_in`` signal (after ``login()`` cycled the key); a logout is the
``flushed`` event of ``logout()``'s ``flush()``. Receivers run inline on the request; keep them quick. A receiver
that raises does not break the request: its exception is logged on the ``sessionkit`` logger (``send_robust``).

Example::

    from django.dispatch import receiver
    from sessionkit.django.signals import session_event

    @receiver(session_event)
    def audit(sender, kind, **fields):
        audit_log.info("session %s %s", kind, fields)
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

from sessionkit._native import Expired, session_id

logger = logging.getLogger("sessionkit")

#: The session event signal: ``send(sender, kind=…, **fields)``; see the module docs for the kinds and fields.
session_event = Signal()

AUTH_USER_ID_KEY = "_auth_user_id"


def user_of(data: dict[str, Any] | None) -> str | None:
    """The logged-in user of session data (``_auth_user_id``) as a string, as the Rust core reads it."""
    if not data:
        return None
    value = data.get(AUTH_USER_ID_KEY)
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _id(key: str | None) -> str | None:
    if not key:
        return None
    try:
        return session_id(key)
    except ValueError:  # not a key any store would hold
        return None


def send(sender: object, kind: str, **fields: Any) -> None:
    """Sends ``session_event``; a receiver's exception is logged, never raised into the request."""
    if not session_event.receivers:
        return
    for receiver, result in session_event.send_robust(sender=sender, kind=kind, **fields):
        if isinstance(result, Exception):
            logger.error("session_event receiver %r failed on a %s event", receiver, kind, exc_info=result)


def cycled(sender: object, old_key: str | None, new_key: str | None, data: dict[str, Any] | None) -> None:
    """``cycle_key()`` moved the session from ``old_key`` to ``new_key``."""
    to = _id(new_key)
    if to is not None:
        send(sender, "cycled", **{"from_": _id(old_key), "to": to, "user_id": user_of(data)})


def flushed(sender: object, key: str | None, user_id: str | None) -> None:
    """``flush()`` deleted the session under ``key`` (if it had one)."""
    send(sender, "flushed", session=_id(key), user_id=user_id)


def expired(sender: object, ended: Expired) -> None:
    """A load met a session a lifetime rule had ended (and deleted it)."""
    send(sender, "expired", session=ended.session, user_id=ended.user_id, rule=ended.rule)


def merge_conflict(sender: object, key: str | None, data: dict[str, Any] | None) -> None:
    """A save found another request's writes and merged them."""
    session = _id(key)
    if session is not None:
        send(sender, "merge_conflict", session=session, user_id=user_of(data))


def revoked(sender: object, user_id: str, sessions: int, kept: str | None) -> None:
    """Sessions of ``user_id`` were deleted through the per-user index."""
    send(sender, "revoked", user_id=user_id, sessions=sessions, kept=_id(kept))


def _on_user_logged_in(sender: object, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    session = getattr(request, "session", None)
    if session is None or not getattr(session, "sessionkit_engine", False):
        return  # another engine's session
    pk = getattr(user, "pk", None)
    if pk is None:
        return
    send(type(session), "logged_in", session=_id(session.session_key), user_id=str(pk))


def connect() -> None:
    """Connects ``logged_in`` to Django's ``user_logged_in`` (once; the engines' modules call it at import)."""
    from django.contrib.auth.signals import user_logged_in

    user_logged_in.connect(_on_user_logged_in, dispatch_uid="sessionkit.django.signals.logged_in")
