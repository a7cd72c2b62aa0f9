from . import promise_t_pb2 as _promise_t_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClaimTaskRequest(_message.Message):
    __slots__ = ("id", "counter", "processId", "ttl", "requestId")
    ID_FIELD_NUMBER: _ClassVar[int]
    COUNTER_FIELD_NUMBER: _ClassVar[int]
    PROCESSID_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    id: str
    counter: int
    processId: str
    ttl: int
    requestId: str
    def __init__(self, id: _Optional[str] = ..., counter: _Optional[int] = ..., processId: _Optional[str] = ..., ttl: _Optional[int] = ..., requestId: _Optional[str] = ...) -> None: ...

class ClaimTaskResponse(_message.Message):
    __slots__ = ("claimed", "mesg")
    CLAIMED_FIELD_NUMBER: _ClassVar[int]
    MESG_FIELD_NUMBER: _ClassVar[int]
    claimed: bool
    mesg: Mesg
    def __init__(self, claimed: _Optional[bool] = ..., mesg: _Optional[_Union[Mesg, _Mapping]] = ...) -> None: ...

class Mesg(_message.Message):
    __slots__ = ("type", "promises")
    class PromisesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: MesgPromise
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[MesgPromise, _Mapping]] = ...) -> None: ...
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PROMISES_FIELD_NUMBER: _ClassVar[int]
    type: str
    promises: _containers.MessageMap[str, MesgPromise]
    def __init__(self, type: _Optional[str] = ..., promises: _Optional[_Mapping[str, MesgPromise]] = ...) -> None: ...

class MesgPromise(_message.Message):
    __slots__ = ("id", "href", "data")
    ID_FIELD_NUMBER: _ClassVar[int]
    HREF_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    href: str
    data: _promise_t_pb2.Promise
    def __init__(self, id: _Optional[str] = ..., href: _Optional[str] = ..., data: _Optional[_Union[_promise_t_pb2.Promise, _Mapping]] = ...) -> None: ...

class CompleteTaskRequest(_message.Message):
    __slots__ = ("id", "counter", "requestId")
    ID_FIELD_NUMBER: _ClassVar[int]
    COUNTER_FIELD_NUMBER: _ClassVar[int]
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    id: str
    counter: int
    requestId: str
    def __init__(self, id: _Optional[str] = ..., counter: _Optional[int] = ..., requestId: _Optional[str] = ...) -> None: ...

class CompleteTaskResponse(_message.Message):
    __slots__ = ("completed",)
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    completed: bool
    def __init__(self, completed: _Optional[bool] = ...) -> None: ...

class DropTaskRequest(_message.Message):
    __slots__ = ("id", "counter", "requestId")
    ID_FIELD_NUMBER: _ClassVar[int]
    COUNTER_FIELD_NUMBER: _ClassVar[int]
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    id: str
    counter: int
    requestId: str
    def __init__(self, id: _Optional[str] = ..., counter: _Optional[int] = ..., requestId: _Optional[str] = ...) -> None: ...

class DropTaskResponse(_message.Message):
    __slots__ = ("dropped",)
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    dropped: bool
    def __init__(self, dropped: _Optional[bool] = ...) -> None: ...

class HeartbeatTasksRequest(_message.Message):
    __slots__ = ("processId", "requestId")
    PROCESSID_FIELD_NUMBER: _ClassVar[int]
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    processId: str
    requestId: str
    def __init__(self, processId: _Optional[str] = ..., requestId: _Optional[str] = ...) -> None: ...

class HeartbeatTasksResponse(_message.Message):
    __slots__ = ("tasksAffected",)
    TASKSAFFECTED_FIELD_NUMBER: _ClassVar[int]
    tasksAffected: int
    def __init__(self, tasksAffected: _Optional[int] = ...) -> None: ...
