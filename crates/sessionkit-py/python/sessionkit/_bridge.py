"""Completes asyncio futures for the Rust side (from each loop's completer, see ``src/bridge.rs``; or through
``loop.call_soon_threadsafe`` for loops that cannot watch a socket)."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

#: Each running event loop's completer (``sessionkit._native``'s hand-back of finished Rust calls: a queue and a
#: socket pair the loop watches with ``add_reader``), as a weak reference: the loop's reader registration owns it,
#: so it goes with ``loop.close()``.
completers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()


def resolve(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    """Sets the result (``ok``) or exception of ``future`` unless it was cancelled or completed meanwhile."""
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
