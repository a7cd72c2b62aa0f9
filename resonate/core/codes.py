"""The reference's 5-digit status codes, their fixed texts and the core's error type."""
from __future__ import annotations

from enum import Enum

# success
OK = 20000
CREATED = 20100
NO_CONTENT = 20400
# request errors (4xxxx): the client must change the request
INVALID = 40000
UNAUTHORIZED = 40100
FORBIDDEN = 40300
PROMISE_ALREADY_RESOLVED = 40301
PROMISE_ALREADY_REJECTED = 40302
PROMISE_ALREADY_CANCELED = 40303
PROMISE_ALREADY_TIMEDOUT = 40304
LOCK_ALREADY_ACQUIRED = 40305
TASK_ALREADY_CLAIMED = 40306
TASK_ALREADY_COMPLETED = 40307
TASK_INVALID_COUNTER = 40308
TASK_INVALID_STATE = 40309
PROMISE_NOT_FOUND = 40400
SCHEDULE_NOT_FOUND = 40401
LOCK_NOT_FOUND = 40402
TASK_NOT_FOUND = 40403
RECV_NOT_FOUND = 40404
PROMISE_ALREADY_EXISTS = 40900
SCHEDULE_ALREADY_EXISTS = 40901
TASK_PRECONDITION_FAILED = 41200
# server errors (5xxxx): retrying may help
INTERNAL_ERROR = 50000
ECHO_ERROR = 50001
AIO_ERROR = 50002
QUEUE_ERROR = 50003
STORE_ERROR = 50004
SHUTTING_DOWN = 50300
API_QUEUE_FULL = 50301
AIO_QUEUE_FULL = 50302
SCHEDULER_QUEUE_FULL = 50303

STATUS_TEXT: dict[int, str] = {
    OK: "The request was successful",
    CREATED: "The request was successful",
    NO_CONTENT: "The request was successful",
    INVALID: "The request is invalid",
    UNAUTHORIZED: "The request is unauthorized",
    FORBIDDEN: "The request is forbidden",
    PROMISE_ALREADY_RESOLVED: "The promise has already been resolved",
    PROMISE_ALREADY_REJECTED: "The promise has already been rejected",
    PROMISE_ALREADY_CANCELED: "The promise has already been canceled",
    PROMISE_ALREADY_TIMEDOUT: "The promise has already timedout",
    LOCK_ALREADY_ACQUIRED: "The lock is already acquired",
    TASK_ALREADY_CLAIMED: "The task is already claimed",
    TASK_ALREADY_COMPLETED: "The task is already completed",
    TASK_INVALID_COUNTER: "The task counter is invalid",
    TASK_INVALID_STATE: "The task state is invalid",
    PROMISE_NOT_FOUND: "The specified promise was not found",
    SCHEDULE_NOT_FOUND: "The specified schedule was not found",
    LOCK_NOT_FOUND: "The specified lock was not found",
    TASK_NOT_FOUND: "The specified task was not found",
    RECV_NOT_FOUND: "The specified recv couldn't be found",
    PROMISE_ALREADY_EXISTS: "The specified promise already exists",
    SCHEDULE_ALREADY_EXISTS: "The specified schedule already exists",
    TASK_PRECONDITION_FAILED: "The task precondition failed",
    INTERNAL_ERROR: "There was an internal server error",
    ECHO_ERROR: "There was an error in the echo subsystem",
    AIO_ERROR: "There was an internal server error",
    QUEUE_ERROR: "There was an error in the queue subsystem",
    STORE_ERROR: "There was an error in the store subsystem",
    SHUTTING_DOWN: "The system is shutting down",
    API_QUEUE_FULL: "The api submission queue is full",
    AIO_QUEUE_FULL: "The aio submission queue is full",
    SCHEDULER_QUEUE_FULL: "The scheduler queue is full",
}

REQUEST_ERROR_DETAIL = "Request errors are not retryable since they are caused by invalid client requests"
ERROR_DOCS_URL = "https://docs.resonatehq.io/operate/errors#"


class ErrorKind(str, Enum):
    """Which detail flavour the reference puts in the error envelope (spec 3.4)."""

    REQUEST = "RequestError"
    VALIDATION = "FieldValidationError"
    SERVER = "ServerError"


class ApiError(Exception):
    """Any failure of an operation: a 5-digit code, its kind and the detail messages."""

    def __init__(self, code: int, kind: ErrorKind, details: list[str] | None = None):
        self.code = code
        self.kind = kind
        self.details = details or []
        super().__init__(f"{code}: {'; '.join(self.details) or STATUS_TEXT.get(code, '')}")

    @property
    def message(self) -> str:
        return STATUS_TEXT.get(self.code, STATUS_TEXT[INTERNAL_ERROR])

    def to_json(self) -> dict:
        """The reference's error object: {code, message, details:[...]}"""
        url = {"url": f"{ERROR_DOCS_URL}{self.code}"}
        if self.kind is ErrorKind.REQUEST:
            details = [{"@type": "RequestError", "message": REQUEST_ERROR_DETAIL, "domain": "request", "metadata": url}]
        elif self.kind is ErrorKind.VALIDATION:
            details = [
                {"@type": "FieldValidationError", "message": d, "domain": "request", "metadata": url}
                for d in self.details
            ]
        else:
            details = []
            for d in self.details or [""]:
                item = {"@type": "ServerError", "domain": "server", "metadata": url}
                if d:
                    item = {"@type": "ServerError", "message": d, "domain": "server", "metadata": url}
                details.append(item)
        return {"code": self.code, "message": self.message, "details": details}


def request_error(code: int) -> ApiError:
    return ApiError(code, ErrorKind.REQUEST)


def invalid(*messages: str) -> ApiError:
    """A 40000 naming the failing field(s)."""
    return ApiError(INVALID, ErrorKind.VALIDATION, list(messages))


def server_error(code: int, detail: str = "") -> ApiError:
    return ApiError(code, ErrorKind.SERVER, [detail] if detail else [])
