"""Generated protobuf / gRPC code for the Resonate gRPC API.

Do not edit the ``*_pb2.py``, ``*_pb2.pyi`` and ``*_pb2_grpc.py`` modules here by
hand: they are generated from ``resonate/api/grpc/protos/*.proto`` by
``python tools/gen_protos.py`` (``--check`` verifies they are fresh).

Proto packages (wire-identical to the reference server v0.8.2):

=============  ==================  ==========================================
proto package  module              contents
=============  ==================  ==========================================
promise_t      promise_t_pb2       Promise, Value, enum State
callback_t     callback_t_pb2      Callback, Recv, PhysicalRecv
schedule_t     schedule_t_pb2      Schedule
promise        promise_pb2(_grpc)  service Promises (9 RPCs), enum SearchState
schedule       schedule_pb2(_grpc) service Schedules (4 RPCs)
lock           lock_pb2(_grpc)     service Locks (3 RPCs)
task           task_pb2(_grpc)     service Tasks (4 RPCs), Mesg, MesgPromise
=============  ==================  ==========================================
"""
