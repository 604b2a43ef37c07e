"""Completes asyncio futures for the Rust side (called through ``loop.call_soon_threadsafe``)."""

from __future__ import annotations

import asyncio
from typing import Any


def resolve(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    """Sets the result (``ok``) or exception of ``future`` unless it was cancelled or completed meanwhile."""
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
