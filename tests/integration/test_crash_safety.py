"""SIGKILL while clients write: every acknowledged create and complete survives the restart."""
from __future__ import annotations

import threading
import time

import httpx

from tests.server import ServerProcess


def test_acknowledged_writes_survive_sigkill(tmp_path):
    db = str(tmp_path / "crash.db")
    server = ServerProcess(db_path=db).start()
    created: dict[str, bool] = {}  # promise id -> completion acknowledged
    lock = threading.Lock()
    stop = threading.Event()
    deadline = (time.time_ns() // 1_000_000) + 3_600_000

    def writer(n: int):
        with httpx.Client(base_url=server.url, timeout=5) as client:
            i = 0
            while not stop.is_set():
                pid = f"crash-{n}-{i}"
                i += 1
                try:
                    r = client.post("/promises", json={"id": pid, "timeout": deadline})
                    if r.status_code != 201:
                        continue
                    with lock:
                        created[pid] = False
                    r = client.patch(f"/promises/{pid}", json={"state": "RESOLVED", "value": {"data": "b2s="}})
                    if r.status_code == 201:
                        with lock:
                            created[pid] = True
                except httpx.HTTPError:
                    return  # the server died under us: whatever was acknowledged must survive

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    server.kill()
    stop.set()
    for t in threads:
        t.join(10)
    assert len(created) > 100, "too few writes were acknowledged before the kill to prove anything"

    restarted = ServerProcess(db_path=db).start()
    try:
        with httpx.Client(base_url=restarted.url, timeout=10) as client:
            missing, wrong = [], []
            for pid, completed in created.items():
                r = client.get(f"/promises/{pid}")
                if r.status_code != 200:
                    missing.append(pid)
                elif completed and (r.json()["state"] != "RESOLVED" or r.json()["value"].get("data") != "b2s="):
                    wrong.append((pid, r.json()))
            assert not missing, f"{len(missing)} acknowledged creates lost, e.g. {missing[:5]}"
            assert not wrong, f"{len(wrong)} acknowledged completions lost, e.g. {wrong[:3]}"
    finally:
        restarted.stop()
