"""Errors of the warehouse, OLTP and graph stores, in mlplane's taxonomy. Backends map their
SDK's errors to these at their boundary; nothing above a backend sees a driver exception."""

from __future__ import annotations

from mlplane.errors import ConfigError, PermanentError


class ParameterError(ConfigError):
    """Query parameters that do not bind: a parameter the query uses but was not given, one
    given that the query does not use, or a value of a type the store cannot bind."""

    def __init__(self, store: str, message: str) -> None:
        super().__init__(store, "params", message)


class QueryError(PermanentError):
    """The store rejected the query (syntax, unknown column, a write on a read-only store, ...).
    The message names the store and carries the store's own explanation."""

    def __init__(self, store: str, detail: str) -> None:
        self.store = store
        self.detail = detail
        super().__init__(f"{store}: query failed: {detail}")


class NotFound(PermanentError):
    """A dataset, table or database that does not exist; the message names it."""

    def __init__(self, store: str, what: str, name: str, hint: str = "") -> None:
        self.store = store
        self.what = what
        self.name = name
        tail = f" ({hint})" if hint else ""
        super().__init__(f"{store}: {what} '{name}' not found{tail}")


def require_package(module: str, pip: str, backend: str) -> None:
    """Raise a ConfigError naming the pip package when `backend` cannot import `module`."""
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a missing parent package (google.cloud, ...)
        found = False
    if not found:
        raise ConfigError(
            "[data]", "", f"the {backend} backend needs the '{pip}' package: pip install {pip}"
        )
