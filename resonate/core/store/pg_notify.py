"""PostgreSQL LISTEN/NOTIFY between the servers sharing one database (docs/scaling-out.md).

Two channels:
- `resonate_deadline`: a batch whose writes bring a deadline nearer than one background period
  publishes it inside its own transaction (so it is only heard if the batch commits); every other
  server notes it in its kernel's deadline book and wakes its loops then.
- `resonate_poll`: poll-stream presence and messages forwarded to the server holding the listener
  (resonate/core/delivery/relay.py).

Every payload carries the sender's server id; a server ignores its own. One thread listens on its own
connection and reconnects with back-off; publishing uses a second connection, from one worker thread.
"""
from __future__ import annotations

import json
import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import psycopg

log = logging.getLogger("resonate.store.notify")

DEADLINE_CHANNEL = "resonate_deadline"
POLL_CHANNEL = "resonate_poll"
MAX_PAYLOAD_BYTES = 7900  # PostgreSQL refuses payloads of 8000 bytes or more
RECONNECT_DELAYS_S = (0.1, 0.5, 1, 2, 5)
LISTEN_POLL_S = 0.5  # how often the listener checks for stop


def server_id() -> str:
    return uuid.uuid4().hex[:12]


class PgNotifier:
    def __init__(self, conninfo: str, server: str, handlers: dict[str, Callable[[dict], None]],
                 on_connected: Callable[[], None] = lambda: None, connect_timeout_s: int = 5):
        self.conninfo = conninfo
        self.server = server
        self.handlers = handlers
        self.on_connected = on_connected
        self.connect_timeout_s = connect_timeout_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._publisher = ThreadPoolExecutor(1, thread_name_prefix="resonate-notify-publish")
        self._pub_conn: psycopg.Connection | None = None
        self.listening = threading.Event()  # for tests: LISTEN is in place

    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(self.conninfo, autocommit=True, application_name="resonate-notify",
                               connect_timeout=self.connect_timeout_s)

    # -- lifecycle
    def start(self) -> None:
        self._thread = threading.Thread(target=self._listen, name="resonate-notify-listen", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Call off the event loop: joins the listener thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(LISTEN_POLL_S * 4)
        self._publisher.shutdown(wait=True)
        if self._pub_conn is not None:
            self._pub_conn.close()

    close = stop

    # -- publishing
    def publish(self, channel: str, message: dict) -> bool:
        """Queues a notification; False (and nothing sent) when it is too big for PostgreSQL."""
        payload = json.dumps({**message, "s": self.server}, separators=(",", ":"))
        if len(payload.encode()) > MAX_PAYLOAD_BYTES or self._stop.is_set():
            return False
        try:
            self._publisher.submit(self._send, channel, payload)
        except RuntimeError:  # shut down meanwhile
            return False
        return True

    def _send(self, channel: str, payload: str) -> None:
        for attempt in range(2):
            try:
                if self._pub_conn is None or self._pub_conn.closed or self._pub_conn.broken:
                    self._pub_conn = self._connect()
                self._pub_conn.execute("SELECT pg_notify(%s, %s)", (channel, payload))
                return
            except psycopg.Error as e:
                self._pub_conn = None
                if attempt:
                    log.warning("notification on %s not sent: %s", channel, e)

    # -- listening
    def _listen(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                with self._connect() as conn:
                    for channel in self.handlers:
                        conn.execute(f"LISTEN {channel}")
                    failures = 0
                    self.listening.set()
                    self.on_connected()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=LISTEN_POLL_S):
                            self._dispatch(note.channel, note.payload)
            except psycopg.Error as e:
                self.listening.clear()
                delay = RECONNECT_DELAYS_S[min(failures, len(RECONNECT_DELAYS_S) - 1)]
                failures += 1
                log.warning("LISTEN connection lost (%s); reconnecting in %.1fs", e, delay)
                self._stop.wait(delay)

    def _dispatch(self, channel: str, payload: str) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            return
        if not isinstance(message, dict) or message.get("s") == self.server:
            return  # our own
        handler = self.handlers.get(channel)
        if handler is not None:
            try:
                handler(message)
            except Exception:
                log.exception("notification on %s not handled", channel)
