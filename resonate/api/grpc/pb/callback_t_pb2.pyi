from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Callback(_message.Message):
    __slots__ = ("id", "promiseId", "timeout", "createdOn")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROMISEID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    CREATEDON_FIELD_NUMBER: _ClassVar[int]
    id: str
    promiseId: str
    timeout: int
    createdOn: int
    def __init__(self, id: _Optional[str] = ..., promiseId: _Optional[str] = ..., timeout: _Optional[int] = ..., createdOn: _Optional[int] = ...) -> None: ...

class Recv(_message.Message):
    __slots__ = ("logical", "physical")
    LOGICAL_FIELD_NUMBER: _ClassVar[int]
    PHYSICAL_FIELD_NUMBER: _ClassVar[int]
    logical: str
    physical: PhysicalRecv
    def __init__(self, logical: _Optional[str] = ..., physical: _Optional[_Union[PhysicalRecv, _Mapping]] = ...) -> None: ...

class PhysicalRecv(_message.Message):
    __slots__ = ("type", "data")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    type: str
    data: bytes
    def __init__(self, type: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...
