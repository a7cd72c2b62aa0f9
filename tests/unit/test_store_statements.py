"""The store's shortcuts keep the results of the statements they replace (issue 13): completing a promise
turns its callbacks into tasks in id order and deletes them, on SQLite with DELETE ... RETURNING."""
from __future__ import annotations

from resonate.core.kernel import Kernel
from resonate.core.operations import decode
from resonate.core.store.sql import SqlTx
from resonate.core.store.sqlite import SqliteStore

FAR = 10**15
ROOTS = ["r-b", "r-c", "r-a", "r-é", "r-Z"]  # registered out of id order


def tasks_after_complete(tmp_path, name: str, generic: bool) -> list[tuple]:
    store = SqliteStore(str(tmp_path / f"{name}.db"))
    kernel = Kernel(store, queue_limit=1000)
    kernel.start()
    try:
        for pid in ["p", *ROOTS]:
            kernel.call(decode("promises.create", {"id": pid, "timeout": FAR}))
        for root in ROOTS:
            kernel.call(decode("promises.callback", {"promiseId": "p", "rootPromiseId": root, "timeout": FAR,
                                                     "recv": "poll://any@workers"}))
        kernel.call(decode("promises.subscribe", {"id": "s1", "promiseId": "p", "timeout": FAR,
                                                  "recv": "poll://any@watchers"}))
        conn = store.connect()
        try:
            conn.begin()
            move = SqlTx.move_callbacks_to_tasks if generic else type(conn.tx).move_callbacks_to_tasks
            created = move(conn.tx, "p", 42)
            conn.commit()
            assert created == len(ROOTS) + 1
            assert conn.tx.all("SELECT COUNT(*) FROM callbacks WHERE promise_id = ?", ("p",)) == [(0,)]
            assert conn.tx.deadlines.get("enqueue-tasks") == 0  # new INIT tasks: to be sent at once
            return conn.tx.all("SELECT id, recv, mesg, timeout, root_promise_id, created_on, state FROM tasks"
                               " ORDER BY sort_id")
        finally:
            conn.close()
    finally:
        kernel.stop()


def test_callbacks_become_the_same_tasks_in_the_same_order(tmp_path):
    shortcut = tasks_after_complete(tmp_path, "shortcut", generic=False)
    generic = tasks_after_complete(tmp_path, "generic", generic=True)
    assert shortcut == generic
    assert [row[0] for row in shortcut] == sorted(row[0] for row in shortcut)
