"""EmbeddedServer's settings: the CLI's Config fields, checked by name and type before anything starts."""
import typing

import pytest

from resonate.config import Config
from resonate.embedded import ServerSettings, embedded_config


def test_typed_settings_are_config_fields_with_the_same_types():
    config_types = typing.get_type_hints(Config)
    for name, kind in typing.get_type_hints(ServerSettings).items():
        assert name in config_types, f"{name} is not a Config field"
        accepted = typing.get_args(kind) if typing.get_origin(kind) is typing.Union or " | " in str(kind) else (kind,)
        assert config_types[name] in accepted, (name, kind, config_types[name])


def test_embedded_defaults_differ_from_the_cli_only_where_a_test_needs_it():
    cfg, cli = embedded_config(), Config()
    assert (cfg.http_addr, cfg.grpc_addr, cfg.poll_addr) == (("127.0.0.1", 0),) * 3
    assert cfg.sqlite_path == ":memory:" and cfg.signal_timeout_ms == 100
    assert len(cfg.kafka_topic) == 1 and cfg.kafka_topic[0].startswith("resonate-embedded-")
    assert cfg.kafka_target.startswith("resonate.embedded.") and cfg.metrics_addr == ""
    assert (cfg.http_enable, cfg.grpc_enable, cfg.kafka_enable, cfg.api_size) == \
        (cli.http_enable, cli.grpc_enable, cli.kafka_enable, cli.api_size)


@pytest.mark.parametrize("settings, error, words", [
    ({"grpc_enabled": True}, TypeError, "unknown resonate setting(s) grpc_enabled"),
    ({"signal_timeout_ms": "10ms"}, TypeError, "signal_timeout_ms must be"),
    ({"http_enable": 1}, TypeError, "http_enable must be"),
    ({"api_size": True}, TypeError, "api_size must be"),
    ({"http_addr": "nowhere"}, ValueError, "http_addr: invalid address"),
    ({"http_addr": ("127.0.0.1", 70000)}, TypeError, "http_addr must be"),
    ({"kafka_brokers": [1]}, TypeError, "kafka_brokers must be"),
    ({"postgres_query": {"sslmode": 1}}, TypeError, "postgres_query must be"),
    ({"sqlite_enable": False}, ValueError, "no store enabled"),
    ({"sqlite_synchronous": "sometimes"}, ValueError, "aio-store-sqlite-synchronous"),
])
def test_bad_settings_name_the_setting(settings, error, words):
    with pytest.raises(error) as raised:
        embedded_config(settings)
    assert words in str(raised.value)


def test_flags_then_settings():
    cfg = embedded_config({"signal_timeout_ms": 5}, ["--system-signal-timeout", "1s", "--api-grpc-enable=false",
                                                      "--aio-sender-plugin-poll-addr", ":0"])
    assert (cfg.signal_timeout_ms, cfg.grpc_enable, cfg.poll_addr) == (5, False, ("0.0.0.0", 0))
    with pytest.raises(ValueError, match="--api-grpc-enable"):
        embedded_config(flags=["--api-grpc-enable=maybe"])
