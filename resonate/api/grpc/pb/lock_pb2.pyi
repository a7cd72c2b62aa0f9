from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class AcquireLockRequest(_message.Message):
    __slots__ = ("resourceId", "executionId", "processId", "ttl", "requestId")
    RESOURCEID_FIELD_NUMBER: _ClassVar[int]
    EXECUTIONID_FIELD_NUMBER: _ClassVar[int]
    PROCESSID_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    resourceId: str
    executionId: str
    processId: str
    ttl: int
    requestId: str
    def __init__(self, resourceId: _Optional[str] = ..., executionId: _Optional[str] = ..., processId: _Optional[str] = ..., ttl: _Optional[int] = ..., requestId: _Optional[str] = ...) -> None: ...

class AcquireLockResponse(_message.Message):
    __slots__ = ("acquired",)
    ACQUIRED_FIELD_NUMBER: _ClassVar[int]
    acquired: bool
    def __init__(self, acquired: _Optional[bool] = ...) -> None: ...

class ReleaseLockRequest(_message.Message):
    __slots__ = ("resourceId", "executionId", "requestId")
    RESOURCEID_FIELD_NUMBER: _ClassVar[int]
    EXECUTIONID_FIELD_NUMBER: _ClassVar[int]
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    resourceId: str
    executionId: str
    requestId: str
    def __init__(self, resourceId: _Optional[str] = ..., executionId: _Optional[str] = ..., requestId: _Optional[str] = ...) -> None: ...

class ReleaseLockResponse(_message.Message):
    __slots__ = ("released",)
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    released: bool
    def __init__(self, released: _Optional[bool] = ...) -> None: ...

class HeartbeatLocksRequest(_message.Message):
    __slots__ = ("processId", "requestId")
    PROCESSID_FIELD_NUMBER: _ClassVar[int]
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    processId: str
    requestId: str
    def __init__(self, processId: _Optional[str] = ..., requestId: _Optional[str] = ...) -> None: ...

class HeartbeatLocksResponse(_message.Message):
    __slots__ = ("locksAffected",)
    LOCKSAFFECTED_FIELD_NUMBER: _ClassVar[int]
    locksAffected: int
    def __init__(self, locksAffected: _Optional[int] = ...) -> None: ...
