"""The command-line client: `resonate promises|schedules|tasks|invoke|tree`, as the v0.8.2 reference's.

This module only declares the argparse commands; every handler lives in a sibling module that is
imported when the command runs, so `resonate serve` never pays for httpx or the client code.
"""
from __future__ import annotations

import argparse
import importlib

from ..config import parse_bool, parse_duration_ms, parse_map

__all__ = ["add_client_commands", "DEFAULT_SERVER", "ENV_SERVER", "ENV_USERNAME", "ENV_PASSWORD", "ENV_TOKEN"]

DEFAULT_SERVER = "http://localhost:8001"
# The reference reads no environment for its client; these keep secrets out of shell history.
ENV_SERVER = "RESONATE_SERVER"
ENV_USERNAME = "RESONATE_USERNAME"
ENV_PASSWORD = "RESONATE_PASSWORD"
ENV_TOKEN = "RESONATE_TOKEN"

_RAW = argparse.RawDescriptionHelpFormatter


def _handler(module: str, function: str):
    """A handler that imports its module only when the command runs."""
    def run(ns: argparse.Namespace) -> int:
        return getattr(importlib.import_module(f"{__name__}.{module}"), function)(ns)
    return run


class _MergeMap(argparse.Action):
    """`--tag a=b --tag c=d,e=f`: repeated key=value flags merge into one map, as pflag's stringToString."""

    def __call__(self, parser, namespace, values, option_string=None):
        merged = dict(getattr(namespace, self.dest, None) or {})
        merged.update(values)
        setattr(namespace, self.dest, merged)


def _duration(text: str) -> int:
    return parse_duration_ms(text)


_duration.__name__ = "duration"  # argparse names the type in its error message


def _add_connection_flags(parser: argparse.ArgumentParser, server_help: str = "resonate url") -> None:
    # SUPPRESS on every level: the flags may come before or after the subcommand, as cobra's persistent flags
    s = argparse.SUPPRESS
    parser.add_argument("-S", "--server", default=s,
                        help=f"{server_help} (default \"{DEFAULT_SERVER}\", env {ENV_SERVER})")
    parser.add_argument("-U", "--username", default=s, help=f"basic auth username (env {ENV_USERNAME})")
    parser.add_argument("-P", "--password", default=s, help=f"basic auth password (env {ENV_PASSWORD})")
    parser.add_argument("-T", "--token", default=s, help=f"JWT bearer token (env {ENV_TOKEN})")


def _add_map(parser, flag: str, dest: str, help_text: str) -> None:
    parser.add_argument(flag, dest=dest, type=parse_map, action=_MergeMap, default=None, metavar="k=v",
                        help=f"{help_text} (default [])")


def _add_strict(parser) -> None:
    parser.add_argument("--strict", type=parse_bool, nargs="?", const=True, default=True, metavar="BOOL",
                        help="strict mode (default true)")


def _leaf(group, name: str, help_text: str, example: str, module: str, function: str, *, usage_arg: str = "<id>"):
    parser = group.add_parser(name, help=help_text, description=help_text, epilog=f"Examples:\n{example}",
                              formatter_class=_RAW, allow_abbrev=False)
    if usage_arg:
        parser.add_argument("id", metavar=usage_arg.strip("<>"))
    _add_connection_flags(parser)
    parser.set_defaults(client_run=_handler(module, function))
    return parser


def _group(subparsers, name: str, alias: str, help_text: str):
    parser = subparsers.add_parser(name, aliases=[alias], help=help_text, description=help_text, allow_abbrev=False)
    _add_connection_flags(parser)
    parser.set_defaults(client_run=lambda ns, p=parser: (p.print_help(), 0)[1])
    return parser.add_subparsers(dest=f"{name}_command", metavar="command")


def _output_flag(parser) -> None:
    parser.add_argument("-o", "--output", default="", help="output format, can be one of: json")


def _search_flags(parser, tag_help: str) -> None:
    _add_map(parser, "--tag", "tags", tag_help)
    parser.add_argument("--limit", type=int, default=100, help="results per page (default 100)")
    parser.add_argument("--cursor", default=None, help="pagination cursor")
    parser.add_argument("--all", action="store_true",
                        help="follow the cursors and list every page (the reference lists one page)")
    _output_flag(parser)


def _add_promises(subparsers) -> None:
    group = _group(subparsers, "promises", "promise", "Resonate promises")

    p = _leaf(group, "get", "Get promise", "\n# Get a promise\nresonate promises get foo", "promises", "get")
    _output_flag(p)

    p = _leaf(group, "search", "Search promises", _SEARCH_PROMISES_EXAMPLE, "promises", "search", usage_arg="<q>")
    p.add_argument("--state", default=None, help="promise state, can be one of: pending, resolved, rejected")
    _search_flags(p, "promise tags")

    p = _leaf(group, "create", "Create promise", _CREATE_PROMISE_EXAMPLE, "promises", "create")
    p.add_argument("--data", default=None, help="promise param data")
    _add_map(p, "--header", "headers", "promise param header")
    p.add_argument("--idempotency-key", default=None, help="idempotency key")
    _add_strict(p)
    _add_map(p, "--tag", "tags", "promise tags")
    p.add_argument("-t", "--timeout", type=_duration, required=True, help="promise timeout (e.g. 1h, 30m, 1m30s)")

    for verb, title in (("resolve", "Resolve"), ("reject", "Reject"), ("cancel", "Cancel")):
        example = (f"\n# {title} a promise\nresonate promises {verb} foo\n\n"
                   f"# {title} a promise with data and headers\n"
                   f"resonate promises {verb} foo --data foo --header bar=bar")
        p = _leaf(group, verb, f"{title} promise", example, "promises", verb)
        p.add_argument("--data", default=None, help="promise value data")
        _add_map(p, "--header", "headers", "promise value header")
        p.add_argument("--idempotency-key", default=None, help="idempotency key")
        _add_strict(p)

    p = _leaf(group, "callback", "Create callback", _CALLBACK_EXAMPLE, "promises", "callback")
    p.add_argument("--recv", default="default", help='task receiver (default "default")')
    p.add_argument("-p", "--root-promise-id", required=True, help="root promise id")
    p.add_argument("-t", "--timeout", type=_duration, required=True, help="task timeout")

    p = _leaf(group, "subscribe", "Create subscription", _SUBSCRIBE_EXAMPLE, "promises", "subscribe")
    p.add_argument("-i", "--id", dest="subscription_id", required=True, help="subscription id")
    p.add_argument("--recv", default="default", help='task receiver (default "default")')
    p.add_argument("-t", "--timeout", type=_duration, required=True, help="task timeout")


def _add_schedules(subparsers) -> None:
    group = _group(subparsers, "schedules", "schedule", "Resonate schedules")

    p = _leaf(group, "get", "Get schedule", "\n# Get a schedule\nresonate schedules get foo", "schedules", "get")
    _output_flag(p)

    p = _leaf(group, "search", "Search schedules", _SEARCH_SCHEDULES_EXAMPLE, "schedules", "search", usage_arg="<q>")
    _search_flags(p, "schedule tags")

    p = _leaf(group, "create", "Create schedule", _CREATE_SCHEDULE_EXAMPLE, "schedules", "create")
    p.add_argument("-c", "--cron", required=True, help="schedule cron expression")
    p.add_argument("--description", default=None, help="schedule description")
    p.add_argument("--promise-data", default=None, help="promise param data")
    _add_map(p, "--promise-header", "promise_headers", "promise param header")
    p.add_argument("-i", "--promise-id", required=True, help="templated schedule id, can include {{.timestamp}}")
    _add_map(p, "--promise-tag", "promise_tags", "promise tags")
    p.add_argument("-t", "--promise-timeout", type=_duration, required=True, help="promise timeout")
    _add_map(p, "--tag", "tags", "schedule tags")

    _leaf(group, "delete", "Delete schedule", "\n# Delete a schedule\nresonate schedules delete foo", "schedules",
          "delete")


def _add_tasks(subparsers) -> None:
    group = _group(subparsers, "tasks", "task", "Resonate tasks")

    p = _leaf(group, "claim", "Claim a task",
              "\n# Claim a task\nresonate tasks claim foo --counter 1 --pid bar --ttl 1m", "tasks", "claim")
    p.add_argument("-c", "--counter", type=int, required=True, help="task counter")
    p.add_argument("--pid", default="default", help='claimant pid (default "default")')
    p.add_argument("--ttl", type=_duration, default=60_000,
                   help="task ttl, time before which a heartbeat must be sent (default 1m0s)")

    p = _leaf(group, "complete", "Complete a task", "\n# Complete a task\nresonate tasks complete foo --counter 1",
              "tasks", "complete")
    p.add_argument("-c", "--counter", type=int, required=True, help="task counter")

    p = _leaf(group, "heartbeat", "Heartbeat tasks", "\n# Heartbeat a task\nresonate tasks heartbeat --pid bar",
              "tasks", "heartbeat", usage_arg="")
    p.add_argument("--pid", default="default", help='claimant pid (default "default")')


def _add_invoke(subparsers) -> None:
    p = subparsers.add_parser("invoke", help="Invoke a function", description="Invoke a function",
                              usage="resonate invoke <promise-id> --func <function-name> [flags]",
                              epilog=f"Examples:\n{_INVOKE_EXAMPLE}", formatter_class=_RAW, allow_abbrev=False)
    p.add_argument("id", metavar="promise-id")
    p.add_argument("--arg", dest="args", action="append", default=[],
                   help="function argument, can be provided multiple times")
    p.add_argument("--delay", type=_duration, default=0, help="promise delay")
    p.add_argument("-f", "--func", required=True, help="function to invoke")
    p.add_argument("--json-args", default="", help="function arguments as json array")
    _add_connection_flags(p, "resonate server url")
    p.add_argument("--target", default="poll://any@default", help='invoke target (default "poll://any@default")')
    p.add_argument("-t", "--timeout", type=_duration, default=3_600_000, help="promise timeout (default 1h0m0s)")
    p.add_argument("--version", type=int, default=1, help="function version (default 1)")
    p.set_defaults(client_run=_handler("invoke", "invoke"))


def _add_tree(subparsers) -> None:
    p = subparsers.add_parser("tree", help="Resonate call graph tree", description=(
        "Resonate call graph tree. Each node shows its state (🟡 pending, 🟢 resolved, 🔴 rejected,"
        " canceled or timed out) and, in words, its state and what the promise is for."),
        allow_abbrev=False)
    p.add_argument("id")
    _add_connection_flags(p, "resonate server url")
    p.set_defaults(client_run=_handler("tree", "tree"))


def add_client_commands(subparsers) -> None:
    """Add the client commands to the top-level `resonate` subparsers; each sets `client_run(ns) -> exit code`."""
    _add_invoke(subparsers)
    _add_promises(subparsers)
    _add_schedules(subparsers)
    _add_tasks(subparsers)
    _add_tree(subparsers)


_SEARCH_PROMISES_EXAMPLE = """
# Search for all promises
resonate promises search "*"

# Search for promises that start with foo
resonate promises search "foo.*"

# Search for all pending promises
resonate promises search "*" --state pending

# Search for all resolved promises
resonate promises search "*" --state resolved

# Search for all rejected promises
resonate promises search "*" --state rejected

# List every page, following the cursors
resonate promises search "order-*" --state pending --all"""

_CREATE_PROMISE_EXAMPLE = """
# Create a promise
resonate promises create foo --timeout 1h

# Create a promise with data and headers and tags
resonate promises create foo --timeout 1h --data foo --header bar=bar --tag baz=baz"""

_CALLBACK_EXAMPLE = """
# Create a callback
resonate promises callback foo --root-promise-id bar --timeout 1h --recv default

# Create a callback with url
resonate promises callback foo --root-promise-id bar --timeout 1h --recv poll://default/1

# Create a callback with object
resonate promises callback foo --root-promise-id bar --timeout 1h \
--recv '{"type": "poll", "data": {"group": "default", "id": "2"}}'"""

_SUBSCRIBE_EXAMPLE = """
# Create a subscription
resonate promises subscribe foo --id bar --timeout 1h --recv default

# Create a subscription with url
resonate promises subscribe foo --id bar --timeout 1h --recv poll://default/1

# Create a subscription with object
resonate promises subscribe foo --id bar --timeout 1h \
--recv '{"type": "poll", "data": {"group": "default", "id": "2"}}'"""

_SEARCH_SCHEDULES_EXAMPLE = """
# Search for all schedules
resonate schedules search "*"

# Search for schedules that start with foo
resonate schedules search "foo.*\""""

_CREATE_SCHEDULE_EXAMPLE = """
# Create a schedule that runs every minute
resonate schedules create foo --cron "* * * * *" --promise-timeout 1h --promise-id "foo.{{.timestamp}}"

# Create a schedule that runs every 5 minutes and includes data and headers
resonate schedules create foo --cron "*/5 * * * *" --promise-timeout 1h --promise-id "foo.{{.timestamp}}" \
--promise-data foo --promise-header bar=bar"""

_INVOKE_EXAMPLE = """
# Invoke a function with arguments
resonate invoke promise-id --func add --arg 1 --arg 2 --arg "a string"

# Invoke with timeout and target
resonate invoke promise-id --func process --arg data1 --arg 5 --timeout 1h --target "poll://any@default"

# Invoke with JSON arguments
resonate invoke promise-id --func process --json-args '[{"key": "value"}, {"num": 42}]'

# Invoke with version
resonate invoke promise-id --func process --version 2 --arg data"""
