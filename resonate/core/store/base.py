"""The store port: what the kernel needs from a database. SQLite and PostgreSQL fill it."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class RetryableStoreError(Exception):
    """A transaction failed for a reason that may pass (serialization failure, deadlock, busy)."""


class Connection(ABC):
    """One database connection owned by one kernel writer thread."""

    tx: Any  # an SqlTx bound to this connection's cursor

    @abstractmethod
    def begin(self) -> None: ...

    @abstractmethod
    def commit(self) -> None: ...

    @abstractmethod
    def rollback(self) -> None: ...

    @abstractmethod
    def savepoint(self) -> None: ...

    @abstractmethod
    def release_savepoint(self) -> None: ...

    @abstractmethod
    def rollback_to_savepoint(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...


class Store(ABC):
    @abstractmethod
    def migrate(self) -> None:
        """Create or upgrade the schema; refuse to run against a newer schema."""

    @abstractmethod
    def connect(self) -> Connection: ...

    def writers(self) -> int:
        """How many writer threads may run transactions at once (SQLite: one)."""
        return 1

    def close(self) -> None:
        pass
