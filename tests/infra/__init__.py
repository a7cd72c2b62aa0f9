"""Real services for the integration tests, provisioned on 127.0.0.1 by the tests themselves.

* :class:`KafkaBroker` - Apache Kafka (KRaft, single node) from Maven Central jars
  (tools/kafka/pom.xml, cached in .cache/kafka-jars), run with the system Java 17.
* :class:`PostgresServer` - Debian's PostgreSQL server in a throw-away directory.
* :func:`ensure_kcat` - Debian's kcat.
* :func:`free_port` - a free TCP port on 127.0.0.1.

pytest fixtures live in :mod:`tests.infra.fixtures`. Anything that cannot be
provisioned raises :class:`ProvisioningError` (the fixtures turn it into a failure).
"""

from .apt import ProvisioningError
from .kafka_broker import KafkaBroker, KafkaBrokerError, ensure_kafka_jars
from .kcat import KcatUnavailable, ensure_kcat
from .ports import free_port
from .postgres_server import PostgresServer, PostgresServerError

__all__ = [
    "KafkaBroker",
    "KafkaBrokerError",
    "KcatUnavailable",
    "PostgresServer",
    "PostgresServerError",
    "ProvisioningError",
    "ensure_kafka_jars",
    "ensure_kcat",
    "free_port",
]
