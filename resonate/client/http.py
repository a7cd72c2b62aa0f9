"""Talking to the server: one httpx client per command, errors turned into one clear line and an exit code."""
from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from . import DEFAULT_SERVER, ENV_PASSWORD, ENV_SERVER, ENV_TOKEN, ENV_USERNAME

# Exit codes. The reference exits 0 even when the server refuses; we do not.
EXIT_OK = 0
EXIT_ERROR_ANSWER = 1  # the server answered with an error (4xx/5xx)
EXIT_USAGE = 2  # bad flags or arguments (argparse's own code)
EXIT_UNREACHABLE = 3  # no answer: the server could not be reached, or the answer was lost
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT

CONNECT_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 30.0


class ClientFailure(Exception):
    """A command failed; `message` is the one line printed on stderr, `exit_code` the process' exit code."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def path_segment(value: str) -> str:
    """An id as one path segment, escaped as the reference's generated client escapes it."""
    return quote(value, safe="")


def encode_data(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


def _setting(ns: argparse.Namespace, name: str, env: str, default: str = "") -> str:
    value = getattr(ns, name, None)
    if value is None:
        value = os.environ.get(env, default)
    return value


class Api:
    """The server's HTTP API, as the command's flags and the environment describe it."""

    def __init__(self, ns: argparse.Namespace):
        self.server = _setting(ns, "server", ENV_SERVER, DEFAULT_SERVER).rstrip("/")
        username = _setting(ns, "username", ENV_USERNAME)
        password = _setting(ns, "password", ENV_PASSWORD)
        token = _setting(ns, "token", ENV_TOKEN)
        headers = {}
        if token:  # as the reference: the bearer token wins over basic auth when both are given
            headers["Authorization"] = f"Bearer {token}"
        elif username or password:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        if not self.server.startswith(("http://", "https://")):
            raise ClientFailure(f"Error: invalid server url {self.server!r}: it must start with http:// or https:// "
                                f"(set --server or {ENV_SERVER})", EXIT_USAGE)
        timeout = httpx.Timeout(REQUEST_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
        self._http = httpx.Client(base_url=self.server, headers=headers, timeout=timeout)

    def __enter__(self) -> "Api":
        return self

    def __exit__(self, *exc) -> None:
        self._http.close()

    def call(self, method: str, path: str, *, ok: tuple[int, ...], json_body: Any = None,
             params: Any = None, headers: dict | None = None) -> httpx.Response:
        """Send one request; an answer whose status is not in `ok` raises ClientFailure naming what happened."""
        try:
            response = self._http.request(method, path, json=json_body, params=params, headers=headers)
        except httpx.ConnectError as e:
            raise ClientFailure(f"Error: could not connect to {self.server} ({_reason(e)}); is the server running? "
                                f"(set --server or {ENV_SERVER})", EXIT_UNREACHABLE) from None
        except httpx.TimeoutException:
            raise ClientFailure(f"Error: no answer from {self.server} within {REQUEST_TIMEOUT_S:g}s; "
                                "the request may or may not have taken effect", EXIT_UNREACHABLE) from None
        except httpx.HTTPError as e:
            raise ClientFailure(f"Error: request to {self.server} failed: {_reason(e)}", EXIT_UNREACHABLE) from None
        if response.status_code not in ok:
            raise ClientFailure(describe_error(response), EXIT_ERROR_ANSWER)
        return response


def _reason(error: Exception) -> str:
    text = str(error) or type(error).__name__
    if "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "unknown host"
    return text


def _status_text(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return str(code)


def describe_error(response: httpx.Response) -> str:
    """`Error: The specified promise already exists (409 Conflict, code 40900)`, or the raw body if it is not
    the server's error envelope (a proxy, or not a Resonate server at all)."""
    status = _status_text(response.status_code)
    try:
        error = response.json()["error"]
        message, code = error["message"], error["code"]
    except (ValueError, KeyError, TypeError):
        body = " ".join(response.text.split())
        if len(body) > 200:
            body = body[:200] + "..."
        where = f" from {response.request.url}" if response.request else ""
        return f"Error: {status}{where}" + (f": {body}" if body else "")
    return f"Error: {message} ({status}, code {code})"


def fail(failure: ClientFailure) -> int:
    print(failure.message, file=sys.stderr)
    return failure.exit_code


def run(command) -> int:
    """Run `command()`, printing a failure as one line on stderr; returns the exit code."""
    try:
        command()
    except ClientFailure as failure:
        return fail(failure)
    except BrokenPipeError:  # `resonate promises search "*" | head`: quiet, as Python's docs advise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return EXIT_OK


def decode_json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except json.JSONDecodeError:
        raise ClientFailure(f"Error: the answer from {response.request.url} is not JSON "
                            f"({_status_text(response.status_code)})", EXIT_ERROR_ANSWER) from None
