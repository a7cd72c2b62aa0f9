"""Poll streams across servers (delivery/relay.py), in process: three relays on one fake notification
bus stand for three servers on one PostgreSQL database."""
from __future__ import annotations

import asyncio
import json

from resonate.core.delivery.poll import PollPlugin
from resonate.core.delivery.relay import PollRelay
from resonate.core.operations import Outgoing


class Bus:
    """LISTEN/NOTIFY as PostgreSQL does it for us: every message to every other server, JSON on the wire."""

    def __init__(self):
        self.relays: list[PollRelay] = []

    def publisher(self, server: str):
        def publish(message: dict) -> bool:
            wire = json.dumps({**message, "s": server})
            for relay in self.relays:
                if relay.server != server:
                    relay.receive(json.loads(wire))
            return True
        return publish


def cluster(n: int, loop) -> tuple[list[PollRelay], list[list]]:
    bus, recorded = Bus(), [[] for _ in range(n)]
    for i in range(n):
        poll = PollPlugin()
        bus.relays.append(PollRelay(f"s{i}", poll, bus.publisher(f"s{i}"), recorded[i].append, loop))
    return bus.relays, recorded


def message(task_id: str = "__resume:r:l") -> Outgoing:
    return Outgoing(task_id, 1, '"poll://any@g/w"', {"type": "resume", "task": {"id": task_id}}, {}, True)


async def settle():
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_message_goes_to_the_one_server_holding_the_stream():
    async def scenario():
        relays, recorded = cluster(3, asyncio.get_running_loop())
        stream = relays[1].poll.connect("g", "w")
        relays[2].poll.connect("g", "other")  # the same group elsewhere: the id's own stream wins
        assert relays[0].target({"cast": "any", "group": "g", "id": "w"}) == "s1"
        assert relays[0].forward({"cast": "any", "group": "g", "id": "w"}, message())
        await settle()
        assert json.loads(stream.queue.get_nowait())["task"]["id"] == "__resume:r:l"
        assert relays[2].poll.groups["g"]["other"].queue.empty()
        # the server that delivered records the outcome, as if it had sent it; the others record nothing
        assert [(o.task_id, o.delivered, o.retry_after_ms) for o in recorded[1]] == [("__resume:r:l", True, 60_000)]
        assert recorded[0] == [] and recorded[2] == []
    asyncio.run(scenario())


def test_no_holder_no_forward_and_departures_are_forgotten():
    async def scenario():
        relays, _ = cluster(2, asyncio.get_running_loop())
        address = {"cast": "uni", "group": "g", "id": "w"}
        assert not relays[0].forward(address, message())  # nobody holds it: the sender's ttr applies
        conn = relays[1].poll.connect("g", "w")
        assert relays[0].target(address) == "s1"
        relays[1].poll.disconnect(conn)
        assert relays[0].target(address) is None
        relays[1].poll.connect("g", "w")
        relays[1].bye()
        assert relays[0].target(address) is None
    asyncio.run(scenario())


def test_a_joining_server_learns_the_streams_already_open():
    async def scenario():
        relays, _ = cluster(2, asyncio.get_running_loop())
        relays[0].remote.clear()
        relays[1].poll.connect("g", "w")
        relays[0].remote.clear()  # as if s0 had just started and heard nothing yet
        relays[0].hello()
        assert relays[0].target({"cast": "any", "group": "g"}) == "s1"
    asyncio.run(scenario())
