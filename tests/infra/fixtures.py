"""Session-scoped pytest fixtures for the real services.

Use from tests/conftest.py with either::

    pytest_plugins = ["tests.infra.fixtures"]

or::

    from tests.infra.fixtures import kafka_broker, postgres_server  # noqa: F401

A service that cannot be provisioned makes the tests that need it FAIL (never
skip), with the reason in the message. The services are per-process
singletons: importing these fixtures in several conftests/modules still starts
one broker and one PostgreSQL per test session.
"""

from __future__ import annotations

import threading
import uuid
from typing import Callable, Iterator

import pytest

from .kafka_broker import KafkaBroker
from .kcat import ensure_kcat
from .postgres_server import PostgresServer


class _Shared:
    """A per-process service shared by every fixture definition that asks for it."""

    def __init__(self, name: str, factory: Callable[[], object]) -> None:
        self.name = name
        self._factory = factory
        self._lock = threading.Lock()
        self._service = None
        self._error: str | None = None
        self._users = 0

    def acquire(self):
        with self._lock:
            if self._error is not None:
                pytest.fail(self._error, pytrace=False)
            if self._service is None:
                service = None
                try:
                    service = self._factory()
                    service.start()
                except Exception as e:  # noqa: BLE001 - reported as a failure below
                    self._error = f"could not provision {self.name}: {type(e).__name__}: {e}"
                    if service is not None:
                        try:
                            service.close() if hasattr(service, "close") else service.stop()
                        except Exception:  # noqa: BLE001
                            pass
                if self._error is not None:
                    pytest.fail(self._error, pytrace=False)
                self._service = service
            self._users += 1
            return self._service

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users <= 0 and self._service is not None:
                service, self._service = self._service, None
                service.close() if hasattr(service, "close") else service.stop()


_kafka = _Shared("the Kafka broker", KafkaBroker)
_postgres = _Shared("the PostgreSQL server", PostgresServer)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """The session's real Kafka broker (KRaft, 127.0.0.1). A test that stops or
    kills it must ``start()`` it again before it ends."""
    broker = _kafka.acquire()
    try:
        yield broker
    finally:
        _kafka.release()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's real PostgreSQL server (127.0.0.1)."""
    server = _postgres.acquire()
    try:
        yield server
    finally:
        _postgres.release()


@pytest.fixture(scope="session")
def kcat() -> str:
    """Path of the kcat binary (installed with apt-get if missing)."""
    error = None
    try:
        return ensure_kcat()
    except Exception as e:  # noqa: BLE001 - reported as a failure below
        error = f"could not provision kcat: {e}"
    pytest.fail(error, pytrace=False)


@pytest.fixture
def kafka_broker_factory() -> Iterator[Callable[..., KafkaBroker]]:
    """Make dedicated brokers (e.g. for outage tests that must not disturb the
    shared one); started, and closed when the test ends. Takes KafkaBroker's
    keyword arguments."""
    made: list[KafkaBroker] = []

    def make(**kwargs) -> KafkaBroker:
        broker = KafkaBroker(**kwargs)
        made.append(broker)
        error = None
        try:
            broker.start()
        except Exception as e:  # noqa: BLE001 - reported as a failure below
            error = f"could not provision a Kafka broker: {type(e).__name__}: {e}"
        if error is not None:
            pytest.fail(error, pytrace=False)
        return broker

    yield make
    for broker in made:
        broker.close()


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's server for one test; yields its DSN."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    dsn = postgres_server.create_database(name)
    yield dsn
    postgres_server.drop_database(name)


SASL_USERS = {"resonate": "resonate-secret"}  # users of the production-like broker's SASL listener
_production_kafka = _Shared("the production-like Kafka broker",
                            lambda: KafkaBroker(auto_create_topics=False, sasl_users=SASL_USERS, tls=True))


@pytest.fixture(scope="session")
def production_kafka_broker() -> Iterator[KafkaBroker]:
    """A second real broker set up as in production: topics are never created on demand
    (auto.create.topics.enable=false), with a SASL_PLAINTEXT listener (``sasl_bootstrap``; users in
    SASL_USERS; PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512) and an SSL listener (``ssl_bootstrap``, CA in
    ``ca_file``). Tests create every topic they use."""
    broker = _production_kafka.acquire()
    try:
        yield broker
    finally:
        _production_kafka.release()
