"""The reference's 5-digit status codes, their fixed texts and the core's error type."""
from __future__ import annotations

from enum import Enum

OK = 20000
CREATED = 20100
NO_CONTENT = 20400

STATUS_TEXT: dict[int, str] = {
    20000: "The request was successful",
    20100: "The request was successful",
    20400: "The request was successful",
    40000: "The request is invalid",
    40100: "The request is unauthorized",
    40300: "The request is forbidden",
    40301: "The promise has already been resolved",
    40302: "The promise has already been rejected",
    40303: "The promise has already been canceled",
    40304: "The promise has already timedout",
    40305: "The lock is already acquired",
    40306: "The task is already claimed",
    40307: "The task is already completed",
    40308: "The task counter is invalid",
    40309: "The task state is invalid",
    40400: "The specified promise was not found",
    40401: "The specified schedule was not found",
    40402: "The specified lock was not found",
    40403: "The specified task was not found",
    40404: "The specified recv couldn't be found",
    40900: "The specified promise already exists",
    40901: "The specified schedule already exists",
    41200: "The task precondition failed",
    50000: "There was an internal server error",
    50001: "There was an error in the echo subsystem",
    50002: "There was an internal server error",
    50003: "There was an error in the queue subsystem",
    50004: "There was an error in the store subsystem",
    50300: "The system is shutting down",
    50301: "The api submission queue is full",
    50302: "The aio submission queue is full",
    50303: "The scheduler queue is full",
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
        return STATUS_TEXT.get(self.code, STATUS_TEXT[50000])

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
    return ApiError(40000, ErrorKind.VALIDATION, list(messages))


def server_error(code: int, detail: str = "") -> ApiError:
    return ApiError(code, ErrorKind.SERVER, [detail] if detail else [])
