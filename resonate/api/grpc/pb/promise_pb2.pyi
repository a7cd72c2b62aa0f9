from . import callback_t_pb2 as _callback_t_pb2
from . import promise_t_pb2 as _promise_t_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SearchState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEARCH_ALL: _ClassVar[SearchState]
    SEARCH_PENDING: _ClassVar[SearchState]
    SEARCH_RESOLVED: _ClassVar[SearchState]
    SEARCH_REJECTED: _ClassVar[SearchState]
SEARCH_ALL: SearchState
SEARCH_PENDING: SearchState
SEARCH_RESOLVED: SearchState
SEARCH_REJECTED: SearchState

class ReadPromiseRequest(_message.Message):
    __slots__ = ("id", "requestId")
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    id: str
    requestId: str
    def __init__(self, id: _Optional[str] = ..., requestId: _Optional[str] = ...) -> None: ...

class ReadPromiseResponse(_message.Message):
    __slots__ = ("promise",)
    PROMISE_FIELD_NUMBER: _ClassVar[int]
    promise: _promise_t_pb2.Promise
    def __init__(self, promise: _Optional[_Union[_promise_t_pb2.Promise, _Mapping]] = ...) -> None: ...

class SearchPromisesRequest(_message.Message):
    __slots__ = ("id", "state", "tags", "limit", "cursor", "requestId")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    id: str
    state: SearchState
    tags: _containers.ScalarMap[str, str]
    limit: int
    cursor: str
    requestId: str
    def __init__(self, id: _Optional[str] = ..., state: _Optional[_Union[SearchState, str]] = ..., tags: _Optional[_Mapping[str, str]] = ..., limit: _Optional[int] = ..., cursor: _Optional[str] = ..., requestId: _Optional[str] = ...) -> None: ...

class SearchPromisesResponse(_message.Message):
    __slots__ = ("promises", "cursor")
    PROMISES_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    promises: _containers.RepeatedCompositeFieldContainer[_promise_t_pb2.Promise]
    cursor: str
    def __init__(self, promises: _Optional[_Iterable[_Union[_promise_t_pb2.Promise, _Mapping]]] = ..., cursor: _Optional[str] = ...) -> None: ...

class CreatePromiseRequest(_message.Message):
    __slots__ = ("id", "idempotencyKey", "strict", "param", "timeout", "tags", "requestId", "traceparent", "tracestate")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCYKEY_FIELD_NUMBER: _ClassVar[int]
    STRICT_FIELD_NUMBER: _ClassVar[int]
    PARAM_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    TRACESTATE_FIELD_NUMBER: _ClassVar[int]
    id: str
    idempotencyKey: str
    strict: bool
    param: _promise_t_pb2.Value
    timeout: int
    tags: _containers.ScalarMap[str, str]
    requestId: str
    traceparent: str
    tracestate: str
    def __init__(self, id: _Optional[str] = ..., idempotencyKey: _Optional[str] = ..., strict: _Optional[bool] = ..., param: _Optional[_Union[_promise_t_pb2.Value, _Mapping]] = ..., timeout: _Optional[int] = ..., tags: _Optional[_Mapping[str, str]] = ..., requestId: _Optional[str] = ..., traceparent: _Optional[str] = ..., tracestate: _Optional[str] = ...) -> None: ...

class CreatePromiseResponse(_message.Message):
    __slots__ = ("noop", "promise")
    NOOP_FIELD_NUMBER: _ClassVar[int]
    PROMISE_FIELD_NUMBER: _ClassVar[int]
    noop: bool
    promise: _promise_t_pb2.Promise
    def __init__(self, noop: _Optional[bool] = ..., promise: _Optional[_Union[_promise_t_pb2.Promise, _Mapping]] = ...) -> None: ...

class CreatePromiseAndTaskRequest(_message.Message):
    __slots__ = ("promise", "task")
    PROMISE_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    promise: CreatePromiseRequest
    task: CreatePromiseTaskRequest
    def __init__(self, promise: _Optional[_Union[CreatePromiseRequest, _Mapping]] = ..., task: _Optional[_Union[CreatePromiseTaskRequest, _Mapping]] = ...) -> None: ...

class CreatePromiseTaskRequest(_message.Message):
    __slots__ = ("processId", "ttl")
    PROCESSID_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    processId: str
    ttl: int
    def __init__(self, processId: _Optional[str] = ..., ttl: _Optional[int] = ...) -> None: ...

class CreatePromiseAndTaskResponse(_message.Message):
    __slots__ = ("noop", "promise")
    NOOP_FIELD_NUMBER: _ClassVar[int]
    PROMISE_FIELD_NUMBER: _ClassVar[int]
    noop: bool
    promise: _promise_t_pb2.Promise
    def __init__(self, noop: _Optional[bool] = ..., promise: _Optional[_Union[_promise_t_pb2.Promise, _Mapping]] = ...) -> None: ...

class ResolvePromiseRequest(_message.Message):
    __slots__ = ("id", "idempotencyKey", "strict", "value", "requestId")
    ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCYKEY_FIELD_NUMBER: _ClassVar[int]
    STRICT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    id: str
    idempotencyKey: str
    strict: bool
    value: _promise_t_pb2.Value
    requestId: str
    def __init__(self, id: _Optional[str] = ..., idempotencyKey: _Optional[str] = ..., strict: _Optional[bool] = ..., value: _Optional[_Union[_promise_t_pb2.Value, _Mapping]] = ..., requestId: _Optional[str] = ...) -> None: ...

class ResolvePromiseResponse(_message.Message):
    __slots__ = ("noop", "promise")
    NOOP_FIELD_NUMBER: _ClassVar[int]
    PROMISE_FIELD_NUMBER: _ClassVar[int]
    noop: bool
    promise: _promise_t_pb2.Promise
    def __init__(self, noop: _Optional[bool] = ..., promise: _Optional[_Union[_promise_t_pb2.Promise, _Mapping]] = ...) -> None: ...

class RejectPromiseRequest(_message.Message):
    __slots__ = ("id", "idempotencyKey", "strict", "value", "requestId")
    ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCYKEY_FIELD_NUMBER: _ClassVar[int]
    STRICT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    id: str
    idempotencyKey: str
    strict: bool
    value: _promise_t_pb2.Value
    requestId: str
    def __init__(self, id: _Optional[str] = ..., idempotencyKey: _Optional[str] = ..., strict: _Optional[bool] = ..., value: _Optional[_Union[_promise_t_pb2.Value, _Mapping]] = ..., requestId: _Optional[str] = ...) -> None: ...

class RejectPromiseResponse(_message.Message):
    __slots__ = ("noop", "promise")
    NOOP_FIELD_NUMBER: _ClassVar[int]
    PROMISE_FIELD_NUMBER: _ClassVar[int]
    noop: bool
    promise: _promise_t_pb2.Promise
    def __init__(self, noop: _Optional[bool] = ..., promise: _Optional[_Union[_promise_t_pb2.Promise, _Mapping]] = ...) -> None: ...

class CancelPromiseRequest(_message.Message):
    __slots__ = ("id", "idempotencyKey", "strict", "value", "requestId")
    ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCYKEY_FIELD_NUMBER: _ClassVar[int]
    STRICT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    id: str
    idempotencyKey: str
    strict: bool
    value: _promise_t_pb2.Value
    requestId: str
    def __init__(self, id: _Optional[str] = ..., idempotencyKey: _Optional[str] = ..., strict: _Optional[bool] = ..., value: _Optional[_Union[_promise_t_pb2.Value, _Mapping]] = ..., requestId: _Optional[str] = ...) -> None: ...

class CancelPromiseResponse(_message.Message):
    __slots__ = ("noop", "promise")
    NOOP_FIELD_NUMBER: _ClassVar[int]
    PROMISE_FIELD_NUMBER: _ClassVar[int]
    noop: bool
    promise: _promise_t_pb2.Promise
    def __init__(self, noop: _Optional[bool] = ..., promise: _Optional[_Union[_promise_t_pb2.Promise, _Mapping]] = ...) -> None: ...

class CreateCallbackRequest(_message.Message):
    __slots__ = ("promiseId", "rootPromiseId", "timeout", "recv", "requestId", "traceparent", "tracestate")
    PROMISEID_FIELD_NUMBER: _ClassVar[int]
    ROOTPROMISEID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    RECV_FIELD_NUMBER: _ClassVar[int]
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    TRACESTATE_FIELD_NUMBER: _ClassVar[int]
    promiseId: str
    rootPromiseId: str
    timeout: int
    recv: _callback_t_pb2.Recv
    requestId: str
    traceparent: str
    tracestate: str
    def __init__(self, promiseId: _Optional[str] = ..., rootPromiseId: _Optional[str] = ..., timeout: _Optional[int] = ..., recv: _Optional[_Union[_callback_t_pb2.Recv, _Mapping]] = ..., requestId: _Optional[str] = ..., traceparent: _Optional[str] = ..., tracestate: _Optional[str] = ...) -> None: ...

class CreateCallbackResponse(_message.Message):
    __slots__ = ("noop", "callback", "promise")
    NOOP_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_FIELD_NUMBER: _ClassVar[int]
    PROMISE_FIELD_NUMBER: _ClassVar[int]
    noop: bool
    callback: _callback_t_pb2.Callback
    promise: _promise_t_pb2.Promise
    def __init__(self, noop: _Optional[bool] = ..., callback: _Optional[_Union[_callback_t_pb2.Callback, _Mapping]] = ..., promise: _Optional[_Union[_promise_t_pb2.Promise, _Mapping]] = ...) -> None: ...

class CreateSubscriptionRequest(_message.Message):
    __slots__ = ("id", "promiseId", "timeout", "recv", "requestId", "traceparent", "tracestate")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROMISEID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    RECV_FIELD_NUMBER: _ClassVar[int]
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    TRACESTATE_FIELD_NUMBER: _ClassVar[int]
    id: str
    promiseId: str
    timeout: int
    recv: _callback_t_pb2.Recv
    requestId: str
    traceparent: str
    tracestate: str
    def __init__(self, id: _Optional[str] = ..., promiseId: _Optional[str] = ..., timeout: _Optional[int] = ..., recv: _Optional[_Union[_callback_t_pb2.Recv, _Mapping]] = ..., requestId: _Optional[str] = ..., traceparent: _Optional[str] = ..., tracestate: _Optional[str] = ...) -> None: ...

class CreateSubscriptionResponse(_message.Message):
    __slots__ = ("noop", "callback", "promise")
    NOOP_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_FIELD_NUMBER: _ClassVar[int]
    PROMISE_FIELD_NUMBER: _ClassVar[int]
    noop: bool
    callback: _callback_t_pb2.Callback
    promise: _promise_t_pb2.Promise
    def __init__(self, noop: _Optional[bool] = ..., callback: _Optional[_Union[_callback_t_pb2.Callback, _Mapping]] = ..., promise: _Optional[_Union[_promise_t_pb2.Promise, _Mapping]] = ...) -> None: ...
