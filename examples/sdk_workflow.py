"""A small durable workflow driven by the Resonate Python SDK 0.6.7 against this server.

Run the server (`make dev`), then, with Python >= 3.12 and `pip install resonate-sdk==0.6.7`:
    python examples/sdk_workflow.py [workflow-id]
Environment: RESONATE_HOST (default http://localhost), RESONATE_PORT_STORE (8001),
RESONATE_PORT_MESSAGE_SOURCE (8002).
"""
import sys
import uuid

from resonate import Resonate

resonate = Resonate.remote(group="default", ttl=10)


@resonate.register
def square(ctx, n):
    return n * n


@resonate.register
def sum_of_squares(ctx, n):
    total = 0
    for i in range(1, n + 1):
        # ctx.rpc goes through the server: a promise with an invoke task, delivered on the poll stream
        total += yield ctx.rpc(square, i)
    return total


def main() -> None:
    workflow_id = sys.argv[1] if len(sys.argv) > 1 else f"sum-of-squares-{uuid.uuid4().hex[:8]}"
    resonate.start()
    result = sum_of_squares.run(workflow_id, 4)  # blocks until the durable workflow completes
    print(f"{workflow_id} = {result}")
    resonate.stop()


if __name__ == "__main__":
    main()
