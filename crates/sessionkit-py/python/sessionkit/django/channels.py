"""Django Channels session middleware that saves with the engine's native async methods.

``SessionMiddlewareStack(inner)`` replaces ``channels.sessions.SessionMiddlewareStack`` (and ``AuthMiddlewareStack``
``channels.auth.AuthMiddlewareStack``): ``scope["session"]`` is the engine's ``SessionStore`` for the session cookie,
created without I/O; consumers use the async session API (``await scope["session"].aget("k")``,
``await scope["session"].aset("k", v)``, ``await scope["session"].asave()``), which sessionkit's engines run from
Rust without a thread. For HTTP consumers the session is saved when the response starts, as by Django's
``SessionMiddleware`` (same decision, same ``Set-Cookie`` bytes, ``Vary: Cookie``, no save on a 5xx,
``SessionInterrupted`` when the session was deleted meanwhile). WebSocket consumers save the session themselves
(``await self.scope["session"].asave()``), as with Channels' own middleware: there is no response to carry a cookie.

Engines without a native ``asave`` (and every engine on Django 4.2) are saved with Channels'
``database_sync_to_async``. Needs Channels (``pip install channels``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from importlib import import_module
from typing import Any

from django.conf import settings
from django.http import HttpResponseBase

from sessionkit.django.middleware import afinish_response

try:
    from channels.auth import AuthMiddleware  # type: ignore[import-untyped, import-not-found, unused-ignore]
    from channels.db import database_sync_to_async  # type: ignore[import-untyped, import-not-found, unused-ignore]
    from channels.sessions import CookieMiddleware  # type: ignore[import-untyped, import-not-found, unused-ignore]
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "sessionkit.django.channels needs Django Channels, which is not installed: `pip install channels` "
        f"(import failed: {err})"
    ) from err

__all__ = ["AuthMiddlewareStack", "SessionMiddleware", "SessionMiddlewareStack"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class SessionMiddleware:
    """Puts ``scope["session"]`` (the engine's ``SessionStore`` for the cookie) into HTTP and WebSocket scopes;
    must run inside Channels' ``CookieMiddleware`` (``SessionMiddlewareStack`` does both). HTTP responses save the
    session and set or delete its cookie as Django's ``SessionMiddleware`` does, with the engine's ``asave``."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if "session" in scope:  # a session middleware further out owns the session (Channels does the same)
            await self.inner(scope, receive, send)
            return
        if "cookies" not in scope:
            raise ValueError(
                "No cookies in scope - SessionMiddleware needs to run inside of CookieMiddleware "
                "(use sessionkit.django.channels.SessionMiddlewareStack)."
            )
        cookies = scope["cookies"]
        session = import_module(settings.SESSION_ENGINE).SessionStore(cookies.get(settings.SESSION_COOKIE_NAME))
        scope = dict(scope, session=session)
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return

        async def send_and_save(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = await _save_into(cookies, session, message)
            await send(message)

        await self.inner(scope, receive, send_and_save)


async def _save_into(cookies: dict[str, str], session: Any, message: Message) -> Message:
    """Runs Django's end-of-request session work on a response carrying this message's status and ``Vary``, and
    puts the resulting ``Vary`` and ``Set-Cookie`` headers into a copy of the message (as Django's ASGI handler
    writes them)."""
    headers = list(message.get("headers", []))
    carrier = HttpResponseBase(status=message.get("status", 200))
    vary = [value for name, value in headers if name.lower() == b"vary"]
    if vary:
        carrier.headers["Vary"] = b", ".join(vary).decode("latin-1")
    await afinish_response(cookies, session, carrier, database_sync_to_async)
    if carrier.has_header("Vary"):
        headers = [(name, value) for name, value in headers if name.lower() != b"vary"]
        headers.append((b"Vary", carrier.headers["Vary"].encode("latin-1")))
    for cookie in carrier.cookies.values():
        headers.append((b"Set-Cookie", cookie.output(header="").encode("ascii").strip()))
    return dict(message, headers=headers)


def SessionMiddlewareStack(inner: ASGIApp) -> Any:  # noqa: N802 - Channels' name
    """Channels' ``CookieMiddleware`` around this module's ``SessionMiddleware``."""
    return CookieMiddleware(SessionMiddleware(inner))


def AuthMiddlewareStack(inner: ASGIApp) -> Any:  # noqa: N802 - Channels' name
    """``SessionMiddlewareStack`` with Channels' ``AuthMiddleware`` inside (``scope["user"]``)."""
    return CookieMiddleware(SessionMiddleware(AuthMiddleware(inner)))
