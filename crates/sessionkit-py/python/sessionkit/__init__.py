"""sessionkit: Django sessions in Redis with a Rust core.

Use it as a Django session engine::

    SESSION_ENGINE = "sessionkit.django.redis"          # or "sessionkit.django.cached_db"
    SESSIONKIT = {"URL": "redis://127.0.0.1:6379/0"}

The Rust extension ``sessionkit._native`` does the Redis I/O, encoding and compression with the GIL released.
``sessionkit.metrics()`` returns the counters and histograms every store call records (docs/observability.md).
"""

from sessionkit._native import Store, metrics, session_id
from sessionkit.exceptions import ConfigurationError, SessionkitError, StoreContended, StoreUnavailable

__all__ = [
    "ConfigurationError",
    "SessionkitError",
    "Store",
    "StoreContended",
    "StoreUnavailable",
    "metrics",
    "session_id",
]
__version__ = "0.1.0"
