"""sessionkit's exceptions. They are defined by the Rust extension and live here by name
(``sessionkit.exceptions.StoreUnavailable``), so tracebacks name this module and they pickle (Celery, Django's
parallel test runner)."""

from sessionkit._native import ConfigurationError, SessionkitError, StoreContended, StoreUnavailable

__all__ = ["ConfigurationError", "SessionkitError", "StoreContended", "StoreUnavailable"]
