"""`resonate invoke`: create a promise whose param names a function, tagged for the invoke target."""
from __future__ import annotations

import json
import math
import time
from decimal import Decimal

from .http import Api, ClientFailure, EXIT_USAGE, encode_data, run
from .common import CREATED, DEDUPLICATED, report
from .render import go_json

INVOKE_TAG = "resonate:invoke"
DELAY_TAG = "resonate:delay"


def _go_number(text: str):
    """A JSON number as Go decodes it into `any` (a float64) and encodes it again: 1 stays 1, 1e3 becomes
    1000, 12345678901234567890 becomes 12345678901234567000."""
    number = float(text)
    if math.isfinite(number) and number == int(number) and abs(number) < 1e21:
        return int(Decimal(repr(number)))
    return number


def _not_json(constant: str):
    raise ValueError(f"{constant} is not JSON")  # Python would accept NaN and Infinity; Go does not


def _parse(text: str):
    return json.loads(text, parse_int=_go_number, parse_float=_go_number, parse_constant=_not_json)


def _arguments(ns) -> list:
    if ns.json_args:
        try:
            args = _parse(ns.json_args)
        except ValueError as e:
            raise ClientFailure(f"Error: failed to parse --json-args: {e}", EXIT_USAGE) from None
        if args is not None and not isinstance(args, list):
            raise ClientFailure("Error: --json-args must be a JSON array", EXIT_USAGE)
        return args
    parsed = []
    for arg in ns.args:  # each --arg is JSON when it parses as JSON, else a string
        try:
            parsed.append(_parse(arg))
        except ValueError:
            parsed.append(arg)
    return parsed


def param_data(ns) -> str:
    """The promise's param, as the reference writes it: {"func":...,"args":[...],"version":N}."""
    return go_json({"func": ns.func, "args": _arguments(ns), "version": ns.version}, indent=False)


def invoke(ns) -> int:
    def command():
        if ns.version <= 0:
            raise ClientFailure("Error: version must be greater than 0", EXIT_USAGE)
        now = int(time.time() * 1000)
        tags = {INVOKE_TAG: ns.target}
        if ns.delay > 0:
            tags[DELAY_TAG] = str(now + ns.delay)
        body = {"id": ns.id, "timeout": now + ns.timeout + ns.delay, "param": {"data": encode_data(param_data(ns))},
                "tags": tags}
        with Api(ns) as api:
            response = api.call("POST", "/promises", ok=(CREATED, DEDUPLICATED), json_body=body,
                                headers={"strict": "true"})
        report(response, f"Created promise: {ns.id}")
    return run(command)
