from . import promise_t_pb2 as _promise_t_pb2
from . import schedule_t_pb2 as _schedule_t_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateScheduleRequest(_message.Message):
    __slots__ = ("id", "description", "cron", "tags", "promiseId", "promiseTimeout", "promiseParam", "promiseTags", "idempotencyKey", "requestId")
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
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    id: str
    description: str
    cron: str
    tags: _containers.ScalarMap[str, str]
    promiseId: str
    promiseTimeout: int
    promiseParam: _promise_t_pb2.Value
    promiseTags: _containers.ScalarMap[str, str]
    idempotencyKey: str
    requestId: str
    def __init__(self, id: _Optional[str] = ..., description: _Optional[str] = ..., cron: _Optional[str] = ..., tags: _Optional[_Mapping[str, str]] = ..., promiseId: _Optional[str] = ..., promiseTimeout: _Optional[int] = ..., promiseParam: _Optional[_Union[_promise_t_pb2.Value, _Mapping]] = ..., promiseTags: _Optional[_Mapping[str, str]] = ..., idempotencyKey: _Optional[str] = ..., requestId: _Optional[str] = ...) -> None: ...

class CreatedScheduleResponse(_message.Message):
    __slots__ = ("noop", "schedule")
    NOOP_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    noop: bool
    schedule: _schedule_t_pb2.Schedule
    def __init__(self, noop: _Optional[bool] = ..., schedule: _Optional[_Union[_schedule_t_pb2.Schedule, _Mapping]] = ...) -> None: ...

class ReadScheduleRequest(_message.Message):
    __slots__ = ("id", "requestId")
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    id: str
    requestId: str
    def __init__(self, id: _Optional[str] = ..., requestId: _Optional[str] = ...) -> None: ...

class ReadScheduleResponse(_message.Message):
    __slots__ = ("schedule",)
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    schedule: _schedule_t_pb2.Schedule
    def __init__(self, schedule: _Optional[_Union[_schedule_t_pb2.Schedule, _Mapping]] = ...) -> None: ...

class SearchSchedulesRequest(_message.Message):
    __slots__ = ("id", "tags", "limit", "cursor", "requestId")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    id: str
    tags: _containers.ScalarMap[str, str]
    limit: int
    cursor: str
    requestId: str
    def __init__(self, id: _Optional[str] = ..., tags: _Optional[_Mapping[str, str]] = ..., limit: _Optional[int] = ..., cursor: _Optional[str] = ..., requestId: _Optional[str] = ...) -> None: ...

class SearchSchedulesResponse(_message.Message):
    __slots__ = ("schedules", "cursor")
    SCHEDULES_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    schedules: _containers.RepeatedCompositeFieldContainer[_schedule_t_pb2.Schedule]
    cursor: str
    def __init__(self, schedules: _Optional[_Iterable[_Union[_schedule_t_pb2.Schedule, _Mapping]]] = ..., cursor: _Optional[str] = ...) -> None: ...

class DeleteScheduleRequest(_message.Message):
    __slots__ = ("id", "requestId")
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    id: str
    requestId: str
    def __init__(self, id: _Optional[str] = ..., requestId: _Optional[str] = ...) -> None: ...

class DeleteScheduleResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
