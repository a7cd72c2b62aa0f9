"""The store port: what the kernel needs from a database. SQLite and PostgreSQL fill it.

The store raises only its own errors. It decides, once and from the driver's exception, whether a
failure may pass (`RetryableStoreError`: the kernel runs the batch again) or not (`StoreError`).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ContextManager


class StoreError(Exception):
    """The database failed in a way that retrying the same transaction will not fix."""


class RetryableStoreError(StoreError):
    """A transaction failed for a reason that may pass (serialization failure, deadlock, busy, lost connection)."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        # counted by the kernel's retries (resonate_kernel_batch_retries{reason}); the values are the ones
        # docs/operating.md lists, so every raise names one
        self.reason = reason


class StaleRead(StoreError):
    """A row the request read changed before its write: run the request again against the new state."""


class RejectedValue(StoreError):
    """A value this database cannot hold (too long for an index, NUL in text): the request is invalid."""


class NeedsWriter(StoreError):
    """A read-only connection was asked to write (a lazy timeout): the request must run on the writer."""


class SchemaError(StoreError):
    """The database schema does not match this server (pending migrations, or a newer schema)."""


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
    dialect: str  # tables.SQLITE or tables.POSTGRES

    @abstractmethod
    def schema_session(self) -> ContextManager[Any]:
        """Exclusive access to the schema (a migrations.SchemaSession); other servers wait."""

    def migrate(self) -> None:
        """At start: migrate a fresh database; refuse pending migrations or a newer schema (SchemaError)."""
        from . import migrations
        with self.schema_session() as session:
            migrations.on_start(session)

    @abstractmethod
    def connect(self) -> Connection: ...

    # Reads may run on `reader()` connections beside the writer and see every committed transaction
    # (SQLite in WAL mode). The kernel decides which requests may use them.
    supports_concurrent_reads = False
    # each request of a batch runs in its own savepoint even when nothing needs rolling back (else the
    # kernel takes savepoints only after a request had to undo its writes: the batch runs again guarded)
    savepoint_each_request = True
    # several transactions write at once (writer connections, servers): a batch runs the requests that
    # lock a row in (table, key) order (operations.ROW_LOCKED_BY), so two batches never hold one row each
    # while waiting for the other's (a deadlock)
    runs_in_lock_order = False

    def reader(self) -> Any:
        """A read-only transaction object (an SqlTx whose writes raise NeedsWriter) for the caller's use
        until `release_reader`, or None when none is free; it sees every commit made before this call."""
        raise NotImplementedError

    def release_reader(self, tx: Any) -> None:
        raise NotImplementedError

    def writers(self) -> int:
        """How many writer threads may run transactions at once (SQLite: one)."""
        return 1

    def close(self) -> None:
        pass

