"""Completes asyncio futures for the Rust side (called through ``loop.call_soon_threadsafe``)."""


def resolve(future, ok, value):
    """Sets the result (``ok``) or exception of ``future`` unless it was cancelled or completed meanwhile."""
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
