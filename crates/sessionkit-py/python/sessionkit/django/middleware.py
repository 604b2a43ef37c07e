"""``sessionkit.django.middleware.SessionMiddleware``: Django's ``SessionMiddleware``, also native under ASGI.

One line in ``MIDDLEWARE`` replaces ``"django.contrib.sessions.middleware.SessionMiddleware"`` with
``"sessionkit.django.middleware.SessionMiddleware"``. It is a subclass of Django's (so the admin's and auth's system
checks find it) and behaves the same to the byte: the same ``Set-Cookie`` (``SESSION_COOKIE_*``: name, domain,
path, ``Secure``, ``HttpOnly``, ``SameSite``; ``Max-Age`` and ``expires`` unless the session expires at browser
close), ``Vary: Cookie`` when the session was accessed or a cookie is set, no save on a 5xx response,
``SessionInterrupted`` (a 400) when the session was deleted meanwhile, ``SESSION_SAVE_EVERY_REQUEST``, and the cookie
deleted once the session is emptied.

The difference is in async mode (an ASGI server, an async middleware chain): Django's middleware has only sync
hooks, so Django runs each of them in ``sync_to_async`` (two hand-offs to the thread that runs sync code, per
request) and saves with the sync ``save()``. This one creates the session in the event loop (no I/O: the session
loads lazily, at the first ``await request.session.aget(...)``), and saves with ``await session.asave()`` when the
engine has async methods of its own (sessionkit's engines complete them from Rust, without a thread). Engines whose
``asave`` is Django's ``SessionBase.asave`` (a ``sync_to_async(save)`` wrapper), and every engine on Django 4.2
(no async session API), are saved as Django does: the cookie and expiry work and ``save()`` in one
``sync_to_async`` call, and only when there is something to save.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NamedTuple, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase, UpdateError
from django.contrib.sessions.exceptions import SessionInterrupted
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.http import HttpRequest, HttpResponseBase
from django.utils.cache import patch_vary_headers
from django.utils.http import http_date

__all__ = ["SessionMiddleware", "afinish_response", "finish_response", "has_native_async_save"]

_R = TypeVar("_R", bound=HttpResponseBase)
#: Runs a sync function off the event loop: ``sync_to_async`` (thread-sensitive) for Django's request path,
#: Channels' ``database_sync_to_async`` for consumers.
RunSync = Callable[[Callable[..., Any]], Callable[..., Awaitable[Any]]]

_INTERRUPTED = (
    "The request's session was deleted before the request completed. The user may have logged out in a concurrent "
    "request, for example."
)


def has_native_async_save(store_class: type[Any]) -> bool:
    """Whether ``store_class.asave`` is the engine's own coroutine, not Django's ``SessionBase.asave`` (which runs
    the sync ``save`` in ``sync_to_async``). Always false on Django 4.2, which has no async session API."""
    inherited = getattr(SessionBase, "asave", None)
    if inherited is None:
        return False
    own = getattr(store_class, "asave", inherited)
    return own is not inherited


class _Plan(NamedTuple):
    """What the end of a request does to the session: decided from attributes only (no I/O)."""

    delete_cookie: bool
    save: bool
    vary: bool


def _plan(cookies: Mapping[str, str], session: Any) -> _Plan | None:
    """Django's decision: delete the cookie of a session that is now empty; else save (and set the cookie) when
    the session was modified or ``SESSION_SAVE_EVERY_REQUEST``; ``Vary: Cookie`` when accessed. ``None``: the
    request has no session (another middleware removed it)."""
    try:
        accessed, modified, empty = session.accessed, session.modified, session.is_empty()
    except AttributeError:
        return None
    if empty and settings.SESSION_COOKIE_NAME in cookies:
        return _Plan(delete_cookie=True, save=False, vary=True)
    save = bool(modified or settings.SESSION_SAVE_EVERY_REQUEST) and not empty
    return _Plan(delete_cookie=False, save=save, vary=accessed)


@contextmanager
def _interrupted_on_update_error() -> Iterator[None]:
    """A save that finds the session deleted meanwhile (``UpdateError``) is Django's ``SessionInterrupted``."""
    try:
        yield
    except UpdateError:
        raise SessionInterrupted(_INTERRUPTED) from None


def _set_cookie(
    plan: _Plan, response: HttpResponseBase, session_key: str, expire_at_browser_close: bool, age: int
) -> _Plan:
    """Sets the session cookie (as Django: ``Max-Age`` and ``expires`` unless the session ends with the browser);
    a response with a session cookie varies on ``Cookie``."""
    max_age: int | None = None
    expires: str | None = None
    if not expire_at_browser_close:
        max_age = age
        expires = http_date(time.time() + age)
    response.set_cookie(
        settings.SESSION_COOKIE_NAME,
        session_key,
        max_age=max_age,
        expires=expires,
        domain=settings.SESSION_COOKIE_DOMAIN,
        path=settings.SESSION_COOKIE_PATH,
        secure=settings.SESSION_COOKIE_SECURE or None,  # type: ignore[arg-type]  # Django passes None, as here
        httponly=settings.SESSION_COOKIE_HTTPONLY or None,  # type: ignore[arg-type]
        samesite=settings.SESSION_COOKIE_SAMESITE,
    )
    return plan._replace(vary=True)


def _finish(plan: _Plan, response: HttpResponseBase) -> None:
    if plan.delete_cookie:
        response.delete_cookie(
            settings.SESSION_COOKIE_NAME,
            path=settings.SESSION_COOKIE_PATH,
            domain=settings.SESSION_COOKIE_DOMAIN,
            samesite=settings.SESSION_COOKIE_SAMESITE,
        )
    if plan.vary:
        patch_vary_headers(response, ("Cookie",))


def finish_response(cookies: Mapping[str, str], session: Any, response: _R) -> _R:
    """The end of a request, sync: Django's ``SessionMiddleware.process_response`` on ``response``."""
    plan = _plan(cookies, session)
    if plan is None:
        return response
    if plan.save:
        # As Django: the expiry is read before the save, and a 5xx response is not saved (nor given a cookie).
        at_browser_close = session.get_expire_at_browser_close()
        age = 0 if at_browser_close else session.get_expiry_age()
        if response.status_code < 500:
            with _interrupted_on_update_error():
                session.save()
            plan = _set_cookie(plan, response, session.session_key, at_browser_close, age)
    _finish(plan, response)
    return response


async def afinish_response(cookies: Mapping[str, str], session: Any, response: _R, run_sync: RunSync) -> _R:
    """The end of a request, async: the same as ``finish_response``, with the engine's own ``asave`` (and the
    async expiry getters, so a session that was never loaded loads without blocking the loop). An engine without
    a native ``asave`` gets one ``run_sync`` call of ``finish_response``, and only when there is something to save."""
    plan = _plan(cookies, session)
    if plan is None:
        return response
    if plan.save:
        if not has_native_async_save(type(session)):
            return await run_sync(finish_response)(cookies, session, response)  # type: ignore[no-any-return]
        at_browser_close = await session.aget_expire_at_browser_close()
        age = 0 if at_browser_close else await session.aget_expiry_age()
        if response.status_code < 500:
            with _interrupted_on_update_error():
                await session.asave()
            plan = _set_cookie(plan, response, session.session_key, at_browser_close, age)
    _finish(plan, response)
    return response


def _thread_sensitive(func: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    return sync_to_async(func, thread_sensitive=True)


class SessionMiddleware(DjangoSessionMiddleware):
    """Django's ``SessionMiddleware`` with a native async path (see the module's docstring). Sync mode (WSGI, or a
    sync middleware chain) is Django's, written as ``finish_response``."""

    sync_capable = True
    async_capable = True

    def process_response(self, request: HttpRequest, response: _R) -> _R:
        return finish_response(request.COOKIES, getattr(request, "session", None), response)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        # Django's MiddlewareMixin runs process_request and process_response through sync_to_async; creating the
        # session does no I/O, so it happens here, and the session loads when the view first awaits it.
        self.process_request(request)
        response = await self.get_response(request)  # type: ignore[misc]  # async mode: get_response is async
        return await afinish_response(request.COOKIES, request.session, response, _thread_sensitive)
