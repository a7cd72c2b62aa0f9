from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PENDING: _ClassVar[State]
    RESOLVED: _ClassVar[State]
    REJECTED: _ClassVar[State]
    REJECTED_TIMEDOUT: _ClassVar[State]
    REJECTED_CANCELED: _ClassVar[State]
PENDING: State
RESOLVED: State
REJECTED: State
REJECTED_TIMEDOUT: State
REJECTED_CANCELED: State

class Value(_message.Message):
    __slots__ = ("headers", "data")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    headers: _containers.ScalarMap[str, str]
    data: bytes
    def __init__(self, headers: _Optional[_Mapping[str, str]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Promise(_message.Message):
    __slots__ = ("id", "state", "param", "value", "timeout", "idempotencyKeyForCreate", "idempotencyKeyForComplete", "tags", "createdOn", "completedOn")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PARAM_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCYKEYFORCREATE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCYKEYFORCOMPLETE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    CREATEDON_FIELD_NUMBER: _ClassVar[int]
    COMPLETEDON_FIELD_NUMBER: _ClassVar[int]
    id: str
    state: State
    param: Value
    value: Value
    timeout: int
    idempotencyKeyForCreate: str
    idempotencyKeyForComplete: str
    tags: _containers.ScalarMap[str, str]
    createdOn: int
    completedOn: int
    def __init__(self, id: _Optional[str] = ..., state: _Optional[_Union[State, str]] = ..., param: _Optional[_Union[Value, _Mapping]] = ..., value: _Optional[_Union[Value, _Mapping]] = ..., timeout: _Optional[int] = ..., idempotencyKeyForCreate: _Optional[str] = ..., idempotencyKeyForComplete: _Optional[str] = ..., tags: _Optional[_Mapping[str, str]] = ..., createdOn: _Optional[int] = ..., completedOn: _Optional[int] = ...) -> None: ...
