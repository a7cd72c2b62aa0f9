"""gRPC server lifecycle: a taken address is a clear startup error; graceful stop under load.

Graceful stop under gRPC load: SIGTERM while calls are in flight. The process exits 0; every
acknowledged create is in the store after a restart, and every refused call changed nothing.

Refused calls are UNAVAILABLE (50300 "The system is shutting down", or no connection any more). A
call still queued inside grpcio when the server finally stops is CANCELLED by grpcio; the server
keeps answering 50300 until arrivals go quiet to make that rare, but on a starved machine it happens.
Neither kind ran, which the restart checks.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import grpc

from tests.integration.test_grpc_wire import f_int, f_str
from tests.server import ROOT, ServerProcess

FUTURE = 10**15


def test_sigterm_under_load_loses_no_acknowledged_write():
    db_path = os.path.join(tempfile.mkdtemp(prefix="resonate-grpc-stop-"), "resonate.db")
    server = ServerProcess(grpc=True, db_path=db_path).start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=30)
        create = channel.unary_unary("/promise.Promises/CreatePromise", request_serializer=None,
                                     response_deserializer=None)
        ids = [f"stop-{i}" for i in range(600)]
        futures = [(pid, create.future(f_str(1, pid) + f_int(5, FUTURE), timeout=30)) for pid in ids]
        while sum(f.done() for _, f in futures) < 50:  # stop once the load is well under way
            time.sleep(0.005)
        server.proc.send_signal(signal.SIGTERM)
        acknowledged, refused = [], []
        for pid, f in futures:
            try:
                f.result()
                acknowledged.append(pid)
            except grpc.RpcError as e:
                assert e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED), (pid, e.code(), e.details())
                refused.append(pid)
        assert server.proc.wait(30) == 0, server.log_tail()
        assert len(acknowledged) >= 50
    finally:
        channel.close()
        server.kill()

    restarted = ServerProcess(grpc=True, db_path=db_path).start()
    channel = grpc.insecure_channel(f"127.0.0.1:{restarted.grpc_port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=30)
        read = channel.unary_unary("/promise.Promises/ReadPromise", request_serializer=None,
                                   response_deserializer=None)
        missing, present = [], []
        reads = [(pid, read.future(f_str(1, pid), timeout=30)) for pid in acknowledged + refused]
        for pid, f in reads:
            try:
                f.result()
                present.append(pid)
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.NOT_FOUND, e
                missing.append(pid)
        lost = sorted(set(acknowledged) - set(present))
        assert not lost, f"{len(lost)} acknowledged creates lost: {lost[:5]}"
        ran_anyway = sorted(set(refused) - set(missing))
        assert not ran_anyway, f"{len(ran_anyway)} refused creates were executed: {ran_anyway[:5]}"
    finally:
        channel.close()
        restarted.stop()


def test_taken_grpc_address_is_a_clear_startup_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = ServerProcess(grpc=True)
        server.grpc_port = taken.getsockname()[1]
        with open(server.log_path, "wb") as log:
            proc = subprocess.run(server.command(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=60)
    assert proc.returncode != 0
    assert f"resonate: could not listen for gRPC on 127.0.0.1:{server.grpc_port}" in Path(server.log_path).read_text()


def test_grpc_listens_as_soon_as_http_answers_ping():
    """Clients and orchestrators take a 200 from /ping as "the server is up": gRPC must accept by then."""
    with ServerProcess(grpc=True) as server:  # started: /ping answered
        with socket.create_connection(("127.0.0.1", server.grpc_port), timeout=5):
            pass
