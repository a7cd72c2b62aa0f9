from . import promise_t_pb2 as _promise_t_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Schedule(_message.Message):
    __slots__ = ("id", "description", "cron", "tags", "promiseId", "promiseTimeout", "promiseParam", "promiseTags", "idempotencyKey", "lastRunTime", "nextRunTime", "createdOn")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class PromiseTagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    PROMISEID_FIELD_NUMBER: _ClassVar[int]
    PROMISETIMEOUT_FIELD_NUMBER: _ClassVar[int]
    PROMISEPARAM_FIELD_NUMBER: _ClassVar[int]
    PROMISETAGS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCYKEY_FIELD_NUMBER: _ClassVar[int]
    LASTRUNTIME_FIELD_NUMBER: _ClassVar[int]
    NEXTRUNTIME_FIELD_NUMBER: _ClassVar[int]
    CREATEDON_FIELD_NUMBER: _ClassVar[int]
    id: str
    description: str
    cron: str
    tags: _containers.ScalarMap[str, str]
    promiseId: str
    promiseTimeout: int
    promiseParam: _promise_t_pb2.Value
    promiseTags: _containers.ScalarMap[str, str]
    idempotencyKey: str
    lastRunTime: int
    nextRunTime: int
    createdOn: int
    def __init__(self, id: _Optional[str] = ..., description: _Optional[str] = ..., cron: _Optional[str] = ..., tags: _Optional[_Mapping[str, str]] = ..., promiseId: _Optional[str] = ..., promiseTimeout: _Optional[int] = ..., promiseParam: _Optional[_Union[_promise_t_pb2.Value, _Mapping]] = ..., promiseTags: _Optional[_Mapping[str, str]] = ..., idempotencyKey: _Optional[str] = ..., lastRunTime: _Optional[int] = ..., nextRunTime: _Optional[int] = ..., createdOn: _Optional[int] = ...) -> None: ...
