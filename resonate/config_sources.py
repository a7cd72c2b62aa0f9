"""The reference's other two sources of settings: a config file (resonate.yaml) and environment variables.

Precedence, as v0.8.2 (viper): a flag given on the command line > environment variable > config file >
the flag's default. Both sources are derived from the parser's own flag definitions, so every flag any
module adds gets a config-file key and an environment variable without further code:

* key path: the reference's Go field path, e.g. `--api-http-addr` -> `api.subsystems.http.config.addr`,
  `--aio-poll-ttr` -> `aio.plugins.poll.config.timeToRetry`, `--log-level` -> `logLevel`
  (case-insensitive, as viper);
* environment variable: the key path upper-cased with `.` -> `_` (`API_SUBSYSTEMS_HTTP_CONFIG_ADDR`).

Unlike the reference, an unknown key or a value of the wrong type in the file stops start-up with a
message naming the key (docs/decisions.md).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Mapping

import yaml

from .config import parse_bool, parse_duration_ms, parse_map

API_SUBSYSTEMS = ("http", "grpc", "kafka")
AIO_SUBSYSTEMS = ("router", "sender", "store-postgres", "store-sqlite")
AIO_PLUGINS = ("http", "poll", "kafka", "sqs")
# flags whose key path is not the general rule
KEY_OVERRIDES = {"--api-auth-public-key": "api.auth.publicKey", "--api-size": "api.size", "--aio-size": "aio.size"}
# flag field spellings whose Go field name differs from the camel-cased flag
FIELD_NAMES = {"ttr": "timeToRetry", "ttc": "timeToClaim", "cors-allow-origin": "cors.allowOrigins"}
# settable by flag only, as the reference
FLAG_ONLY = {"--config", "--ignore-asserts", "--help", "--version"}
SOURCES_KEY = "aio.subsystems.router.config.sources"
TARGETS_KEY = "aio.subsystems.sender.config.targets"
CONFIG_EXTENSIONS = ("json", "yaml", "yml")  # the ones viper tries (in its order) that YAML can read


class ConfigError(SystemExit):
    def __init__(self, message: str):
        super().__init__(f"resonate: {message}")


def _camel(words: str) -> str:
    first, *rest = words.split("-")
    return first + "".join(w[:1].upper() + w[1:] for w in rest)


def key_path(flag: str) -> str | None:
    """A long flag -> the reference's config key path (None for flag-only settings)."""
    if flag in FLAG_ONLY:
        return None
    if flag in KEY_OVERRIDES:
        return KEY_OVERRIDES[flag]
    name = flag[2:]
    if name.startswith("system-"):
        return "system." + _camel(name[len("system-"):])
    for prefix, group, members in (("api-", "api.subsystems", API_SUBSYSTEMS),
                                   ("aio-", "aio.subsystems", AIO_SUBSYSTEMS),
                                   ("aio-", "aio.plugins", AIO_PLUGINS)):
        if not name.startswith(prefix):
            continue
        rest = name[len(prefix):]
        for member in members:
            if rest.startswith(member + "-"):
                base = f"{group}.{member.replace('-', '.')}"
                field = rest[len(member) + 1:]
                if field == "enable":
                    return base + ".enabled"
                return f"{base}.config.{FIELD_NAMES.get(field) or _camel(field)}"
    return _camel(name)


def env_name(key: str) -> str:
    return key.upper().replace(".", "_")


def _long_flag(action: argparse.Action) -> str | None:
    longs = [o for o in action.option_strings if o.startswith("--")]
    return longs[0] if longs else None


def settable_actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Lower-cased key path -> the flag's action, for every visible flag that has a key path."""
    out = {}
    for action in parser._actions:
        flag = _long_flag(action)
        if flag is None or action.help == argparse.SUPPRESS:
            continue
        key = key_path(flag)
        if key is not None:
            out[key.lower()] = action
    return out


def defer_defaults(parser: argparse.ArgumentParser) -> None:
    """Make every flag default absent at parse time, so "given on the command line" can be told apart;
    the defaults are applied by `apply_sources` after the environment and the file."""
    deferred = {}
    for action in parser._actions:
        if action.option_strings and action.dest not in ("help", "version"):
            deferred.setdefault(action.dest, action.default)
            action.default = argparse.SUPPRESS
    parser._resonate_deferred_defaults = deferred  # type: ignore[attr-defined]


# ---- converting a value from the environment or the file to what the flag's parser produces

_KIND_NAMES = {parse_duration_ms: "a duration such as 10s or 1m30s", parse_bool: "true or false",
               parse_map: "a mapping of strings", str: "a string"}


def _kind(action: argparse.Action) -> str:
    if isinstance(action, argparse._AppendAction):
        return "a list of strings"
    name = _KIND_NAMES.get(action.type)
    if name:
        return name
    if action.type is not None and "int" in getattr(action.type, "__name__", ""):
        return "an integer"
    if action.type is not None and "addr" in getattr(action.type, "__name__", ""):
        return "an address such as :8001 or 127.0.0.1:8001"
    return "a " + (action.metavar or getattr(action.type, "__name__", "value")).lower()


def _is_bool(action: argparse.Action) -> bool:
    return action.type is parse_bool or isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction))


def _convert_text(action: argparse.Action, text: str) -> Any:
    if isinstance(action, argparse._AppendAction):
        items = [item for item in text.split(",") if item]
        return [action.type(i) for i in items] if action.type else items
    if _is_bool(action):
        value = parse_bool(text)
        return (not value) if isinstance(action, argparse._StoreFalseAction) else value
    return action.type(text) if action.type else text


def _convert_file_value(action: argparse.Action, value: Any) -> Any:
    if isinstance(action, argparse._AppendAction):
        if isinstance(value, str):
            return _convert_text(action, value)  # comma separated, as viper's StringToSlice hook
        if isinstance(value, list) and all(_scalar(v) for v in value):
            return [action.type(str(v)) if action.type else str(v) for v in value]
        raise TypeError
    if action.type is parse_map:
        if isinstance(value, dict) and all(_scalar(v) for v in value.values()):
            return {str(k): _text(v) for k, v in value.items()}
        if isinstance(value, str):
            return parse_map(value)
        raise TypeError
    if _is_bool(action):
        if isinstance(value, bool):
            return (not value) if isinstance(action, argparse._StoreFalseAction) else value
        if isinstance(value, str):
            return _convert_text(action, value)
        raise TypeError
    if isinstance(value, bool) or not _scalar(value):
        raise TypeError
    return _convert_text(action, _text(value))


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float))  # bool is an int


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


# ---- the config file

def find_config_file(name: str, cwd: Path | None = None, home: Path | None = None) -> Path | None:
    """`<name>.{json,yaml,yml}` in the working directory, then in $HOME (the first directory with one wins)."""
    directories = [cwd or Path.cwd()]
    home_dir = home if home is not None else os.environ.get("HOME")
    if home_dir:
        directories.append(Path(home_dir))
    for directory in directories:
        for ext in CONFIG_EXTENSIONS:
            candidate = directory / f"{name}.{ext}"
            if candidate.is_file():
                return candidate
    return None


def load_config_file(path: Path) -> dict:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"open {path}: no such file or directory") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e}") from None
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(f"config file {path}: the top level must be a mapping of keys")
    return tree


def _file_values(tree: dict, settable: Mapping[str, argparse.Action], path: Path) -> dict[str, Any]:
    """Walks the file: lower-cased key path -> raw value, refusing keys that name no setting."""
    leaves = set(settable) | {SOURCES_KEY.lower(), TARGETS_KEY.lower()}
    branches = {".".join(key.split(".")[:i]) for key in leaves for i in range(1, key.count(".") + 1)}
    found: dict[str, Any] = {}

    def walk(node: dict, prefix: str, shown: str) -> None:
        for raw_key, value in node.items():
            key = f"{prefix}{str(raw_key).lower()}"
            name = f"{shown}{raw_key}"
            if key in leaves:
                found[key] = (name, value)
            elif key in branches:
                if value is None:
                    continue
                if not isinstance(value, dict):
                    raise ConfigError(f"config file {path}: key {name!r} must be a mapping")
                walk(value, key + ".", name + ".")
            else:
                raise ConfigError(f"config file {path}: unknown key {name!r}")

    walk(tree, "", "")
    return found


def _entries(name: str, value: Any, path: Path) -> list[dict]:
    """A `sources` or `targets` list: each entry {name, type, data: mapping}."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"config file {path}: key {name!r} must be a list of {{name, type, data}}")
    out = []
    for i, entry in enumerate(value):
        where = f"{name}[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"config file {path}: key {where!r} must be a mapping with name, type and data")
        entry = {str(k).lower(): v for k, v in entry.items()}
        unknown = set(entry) - {"name", "type", "data"}
        if unknown:
            raise ConfigError(f"config file {path}: unknown key {where + '.' + sorted(unknown)[0]!r}")
        for field in ("name", "type"):
            if not isinstance(entry.get(field), str) or not entry[field]:
                raise ConfigError(f"config file {path}: key {where + '.' + field!r} must be a non-empty string")
        data = entry.get("data")
        if data is not None and not isinstance(data, dict):
            raise ConfigError(f"config file {path}: key {where + '.data'!r} must be a mapping")
        out.append({"name": entry["name"], "type": entry["type"], "data": data or {}})
    return out


def _router_sources(name: str, value: Any, path: Path) -> list[dict]:
    sources = _entries(name, value, path)
    for i, source in enumerate(sources):
        if source["type"] != "tag":
            raise ConfigError(f"config file {path}: key {name}[{i}].type: unknown source type: {source['type']}")
        key = {str(k).lower(): v for k, v in source["data"].items()}.get("key")
        if not isinstance(key, str) or not key:
            raise ConfigError(f"config file {path}: key {name}[{i}].data.key must be a non-empty string (a tag name)")
        source["data"] = {"key": key}
    return sources


# ---- putting it together

def apply_sources(parser: argparse.ArgumentParser, ns: argparse.Namespace, config_name: str,
                  environ: Mapping[str, str] | None = None) -> Path | None:
    """Fills every flag not given on the command line from the environment, then the config file, then the
    flag's default. Returns the config file used, if any. Raises ConfigError naming the bad key or variable."""
    environ = os.environ if environ is None else environ
    explicit = getattr(ns, "config", None)
    path = Path(explicit) if explicit else find_config_file(config_name)
    tree = load_config_file(path) if path is not None else {}
    settable = settable_actions(parser)
    file_values = _file_values(tree, settable, path) if tree else {}

    given = set(vars(ns))
    for key, action in settable.items():
        if action.dest in given:
            continue
        variable = env_name(key)
        text = environ.get(variable, "")
        if text:  # empty values are ignored, as the reference
            try:
                setattr(ns, action.dest, _convert_text(action, text))
            except (argparse.ArgumentTypeError, ValueError, TypeError) as e:
                raise ConfigError(f"environment variable {variable}: expected {_kind(action)}: {e}") from None
            continue
        if key in file_values:
            name, value = file_values[key]
            try:
                setattr(ns, action.dest, _convert_file_value(action, value))
            except (argparse.ArgumentTypeError, ValueError, TypeError) as e:
                detail = f": {e}" if str(e) else f", got {value!r}"
                raise ConfigError(f"config file {path}: key {name!r}: expected {_kind(action)}{detail}") from None
    for key, attr, parse in ((SOURCES_KEY, "router_sources", _router_sources),
                             (TARGETS_KEY, "sender_targets", _entries)):
        if key.lower() in file_values:
            name, value = file_values[key.lower()]
            setattr(ns, attr, parse(name, value, path))
    deferred = getattr(parser, "_resonate_deferred_defaults", {})
    for dest, default in deferred.items():
        if not hasattr(ns, dest):
            setattr(ns, dest, default)
    return path
