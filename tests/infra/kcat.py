"""kcat (formerly kafkacat), Debian's package, for poking the real broker from tests."""

from __future__ import annotations

import shutil
import threading

from .apt import ProvisioningError, apt_install

_lock = threading.Lock()


class KcatUnavailable(ProvisioningError):
    """kcat is not installed and could not be installed."""


def _find() -> str | None:
    return shutil.which("kcat") or shutil.which("kafkacat")


def ensure_kcat() -> str:
    """Path of the ``kcat`` binary, installing Debian's ``kcat`` package if needed."""
    with _lock:
        path = _find()
        if path:
            return path
        try:
            apt_install(["kcat"], why="kcat (Kafka command-line client) for the tests")
        except ProvisioningError as e:
            raise KcatUnavailable(str(e)) from None
        path = _find()
        if not path:
            raise KcatUnavailable("kcat: 'apt-get install kcat' succeeded but no kcat binary is on PATH")
        return path
