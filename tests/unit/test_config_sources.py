"""Flags, config file and environment as v0.8.2: every reference flag, its key path and variable, and
the precedence flag > environment > file > default. In-process: the parser and loader only."""
from __future__ import annotations

import argparse

import pytest

from resonate.cli import build_parser, load_config, version_text
from resonate.config import Config
from resonate.config_sources import env_name, key_path, settable_actions

# (flag, type, config key path, environment variable): the table of flags-v0.8.2.md section 3
REFERENCE_FLAGS = [
    ('--aio-http-conn-timeout', 'duration', 'aio.plugins.http.config.connTimeout', 'AIO_PLUGINS_HTTP_CONFIG_CONNTIMEOUT'),
    ('--aio-http-enable', 'bool', 'aio.plugins.http.enabled', 'AIO_PLUGINS_HTTP_ENABLED'),
    ('--aio-http-size', 'int', 'aio.plugins.http.config.size', 'AIO_PLUGINS_HTTP_CONFIG_SIZE'),
    ('--aio-http-timeout', 'duration', 'aio.plugins.http.config.timeout', 'AIO_PLUGINS_HTTP_CONFIG_TIMEOUT'),
    ('--aio-http-ttc', 'duration', 'aio.plugins.http.config.timeToClaim', 'AIO_PLUGINS_HTTP_CONFIG_TIMETOCLAIM'),
    ('--aio-http-ttr', 'duration', 'aio.plugins.http.config.timeToRetry', 'AIO_PLUGINS_HTTP_CONFIG_TIMETORETRY'),
    ('--aio-http-workers', 'int', 'aio.plugins.http.config.workers', 'AIO_PLUGINS_HTTP_CONFIG_WORKERS'),
    ('--aio-kafka-brokers', 'stringArray', 'aio.plugins.kafka.config.brokers', 'AIO_PLUGINS_KAFKA_CONFIG_BROKERS'),
    ('--aio-kafka-compression', 'string', 'aio.plugins.kafka.config.compression', 'AIO_PLUGINS_KAFKA_CONFIG_COMPRESSION'),
    ('--aio-kafka-enable', 'bool', 'aio.plugins.kafka.enabled', 'AIO_PLUGINS_KAFKA_ENABLED'),
    ('--aio-kafka-size', 'int', 'aio.plugins.kafka.config.size', 'AIO_PLUGINS_KAFKA_CONFIG_SIZE'),
    ('--aio-kafka-timeout', 'duration', 'aio.plugins.kafka.config.timeout', 'AIO_PLUGINS_KAFKA_CONFIG_TIMEOUT'),
    ('--aio-kafka-ttc', 'duration', 'aio.plugins.kafka.config.timeToClaim', 'AIO_PLUGINS_KAFKA_CONFIG_TIMETOCLAIM'),
    ('--aio-kafka-ttr', 'duration', 'aio.plugins.kafka.config.timeToRetry', 'AIO_PLUGINS_KAFKA_CONFIG_TIMETORETRY'),
    ('--aio-kafka-workers', 'int', 'aio.plugins.kafka.config.workers', 'AIO_PLUGINS_KAFKA_CONFIG_WORKERS'),
    ('--aio-poll-addr', 'string', 'aio.plugins.poll.config.addr', 'AIO_PLUGINS_POLL_CONFIG_ADDR'),
    ('--aio-poll-auth', 'stringToString', 'aio.plugins.poll.config.auth', 'AIO_PLUGINS_POLL_CONFIG_AUTH'),
    ('--aio-poll-buffer-size', 'int', 'aio.plugins.poll.config.bufferSize', 'AIO_PLUGINS_POLL_CONFIG_BUFFERSIZE'),
    ('--aio-poll-cors-allow-origin', 'stringArray', 'aio.plugins.poll.config.cors.allowOrigins', 'AIO_PLUGINS_POLL_CONFIG_CORS_ALLOWORIGINS'),
    ('--aio-poll-disconnect-after', 'duration', 'aio.plugins.poll.config.disconnectAfter', 'AIO_PLUGINS_POLL_CONFIG_DISCONNECTAFTER'),
    ('--aio-poll-enable', 'bool', 'aio.plugins.poll.enabled', 'AIO_PLUGINS_POLL_ENABLED'),
    ('--aio-poll-max-connections', 'int', 'aio.plugins.poll.config.maxConnections', 'AIO_PLUGINS_POLL_CONFIG_MAXCONNECTIONS'),
    ('--aio-poll-size', 'int', 'aio.plugins.poll.config.size', 'AIO_PLUGINS_POLL_CONFIG_SIZE'),
    ('--aio-poll-timeout', 'duration', 'aio.plugins.poll.config.timeout', 'AIO_PLUGINS_POLL_CONFIG_TIMEOUT'),
    ('--aio-poll-ttc', 'duration', 'aio.plugins.poll.config.timeToClaim', 'AIO_PLUGINS_POLL_CONFIG_TIMETOCLAIM'),
    ('--aio-poll-ttr', 'duration', 'aio.plugins.poll.config.timeToRetry', 'AIO_PLUGINS_POLL_CONFIG_TIMETORETRY'),
    ('--aio-router-enable', 'bool', 'aio.subsystems.router.enabled', 'AIO_SUBSYSTEMS_ROUTER_ENABLED'),
    ('--aio-router-size', 'int', 'aio.subsystems.router.config.size', 'AIO_SUBSYSTEMS_ROUTER_CONFIG_SIZE'),
    ('--aio-router-workers', 'int', 'aio.subsystems.router.config.workers', 'AIO_SUBSYSTEMS_ROUTER_CONFIG_WORKERS'),
    ('--aio-sender-enable', 'bool', 'aio.subsystems.sender.enabled', 'AIO_SUBSYSTEMS_SENDER_ENABLED'),
    ('--aio-sender-size', 'int', 'aio.subsystems.sender.config.size', 'AIO_SUBSYSTEMS_SENDER_CONFIG_SIZE'),
    ('--aio-size', 'int', 'aio.size', 'AIO_SIZE'),
    ('--aio-store-postgres-batch-size', 'int', 'aio.subsystems.store.postgres.config.batchSize', 'AIO_SUBSYSTEMS_STORE_POSTGRES_CONFIG_BATCHSIZE'),
    ('--aio-store-postgres-database', 'string', 'aio.subsystems.store.postgres.config.database', 'AIO_SUBSYSTEMS_STORE_POSTGRES_CONFIG_DATABASE'),
    ('--aio-store-postgres-enable', 'bool', 'aio.subsystems.store.postgres.enabled', 'AIO_SUBSYSTEMS_STORE_POSTGRES_ENABLED'),
    ('--aio-store-postgres-host', 'string', 'aio.subsystems.store.postgres.config.host', 'AIO_SUBSYSTEMS_STORE_POSTGRES_CONFIG_HOST'),
    ('--aio-store-postgres-password', 'string', 'aio.subsystems.store.postgres.config.password', 'AIO_SUBSYSTEMS_STORE_POSTGRES_CONFIG_PASSWORD'),
    ('--aio-store-postgres-port', 'string', 'aio.subsystems.store.postgres.config.port', 'AIO_SUBSYSTEMS_STORE_POSTGRES_CONFIG_PORT'),
    ('--aio-store-postgres-query', 'stringToString', 'aio.subsystems.store.postgres.config.query', 'AIO_SUBSYSTEMS_STORE_POSTGRES_CONFIG_QUERY'),
    ('--aio-store-postgres-reset', 'bool', 'aio.subsystems.store.postgres.config.reset', 'AIO_SUBSYSTEMS_STORE_POSTGRES_CONFIG_RESET'),
    ('--aio-store-postgres-size', 'int', 'aio.subsystems.store.postgres.config.size', 'AIO_SUBSYSTEMS_STORE_POSTGRES_CONFIG_SIZE'),
    ('--aio-store-postgres-tx-timeout', 'duration', 'aio.subsystems.store.postgres.config.txTimeout', 'AIO_SUBSYSTEMS_STORE_POSTGRES_CONFIG_TXTIMEOUT'),
    ('--aio-store-postgres-username', 'string', 'aio.subsystems.store.postgres.config.username', 'AIO_SUBSYSTEMS_STORE_POSTGRES_CONFIG_USERNAME'),
    ('--aio-store-postgres-workers', 'int', 'aio.subsystems.store.postgres.config.workers', 'AIO_SUBSYSTEMS_STORE_POSTGRES_CONFIG_WORKERS'),
    ('--aio-store-sqlite-batch-size', 'int', 'aio.subsystems.store.sqlite.config.batchSize', 'AIO_SUBSYSTEMS_STORE_SQLITE_CONFIG_BATCHSIZE'),
    ('--aio-store-sqlite-enable', 'bool', 'aio.subsystems.store.sqlite.enabled', 'AIO_SUBSYSTEMS_STORE_SQLITE_ENABLED'),
    ('--aio-store-sqlite-path', 'string', 'aio.subsystems.store.sqlite.config.path', 'AIO_SUBSYSTEMS_STORE_SQLITE_CONFIG_PATH'),
    ('--aio-store-sqlite-reset', 'bool', 'aio.subsystems.store.sqlite.config.reset', 'AIO_SUBSYSTEMS_STORE_SQLITE_CONFIG_RESET'),
    ('--aio-store-sqlite-size', 'int', 'aio.subsystems.store.sqlite.config.size', 'AIO_SUBSYSTEMS_STORE_SQLITE_CONFIG_SIZE'),
    ('--aio-store-sqlite-tx-timeout', 'duration', 'aio.subsystems.store.sqlite.config.txTimeout', 'AIO_SUBSYSTEMS_STORE_SQLITE_CONFIG_TXTIMEOUT'),
    ('--api-auth-public-key', 'string', 'api.auth.publicKey', 'API_AUTH_PUBLICKEY'),
    ('--api-grpc-addr', 'string', 'api.subsystems.grpc.config.addr', 'API_SUBSYSTEMS_GRPC_CONFIG_ADDR'),
    ('--api-grpc-enable', 'bool', 'api.subsystems.grpc.enabled', 'API_SUBSYSTEMS_GRPC_ENABLED'),
    ('--api-http-addr', 'string', 'api.subsystems.http.config.addr', 'API_SUBSYSTEMS_HTTP_CONFIG_ADDR'),
    ('--api-http-auth', 'stringToString', 'api.subsystems.http.config.auth', 'API_SUBSYSTEMS_HTTP_CONFIG_AUTH'),
    ('--api-http-cors-allow-origin', 'stringArray', 'api.subsystems.http.config.cors.allowOrigins', 'API_SUBSYSTEMS_HTTP_CONFIG_CORS_ALLOWORIGINS'),
    ('--api-http-enable', 'bool', 'api.subsystems.http.enabled', 'API_SUBSYSTEMS_HTTP_ENABLED'),
    ('--api-http-task-frequency', 'duration', 'api.subsystems.http.config.taskFrequency', 'API_SUBSYSTEMS_HTTP_CONFIG_TASKFREQUENCY'),
    ('--api-http-timeout', 'duration', 'api.subsystems.http.config.timeout', 'API_SUBSYSTEMS_HTTP_CONFIG_TIMEOUT'),
    ('--api-kafka-brokers', 'stringArray', 'api.subsystems.kafka.config.brokers', 'API_SUBSYSTEMS_KAFKA_CONFIG_BROKERS'),
    ('--api-kafka-consumer-group', 'string', 'api.subsystems.kafka.config.consumerGroup', 'API_SUBSYSTEMS_KAFKA_CONFIG_CONSUMERGROUP'),
    ('--api-kafka-enable', 'bool', 'api.subsystems.kafka.enabled', 'API_SUBSYSTEMS_KAFKA_ENABLED'),
    ('--api-kafka-target', 'string', 'api.subsystems.kafka.config.target', 'API_SUBSYSTEMS_KAFKA_CONFIG_TARGET'),
    ('--api-kafka-timeout', 'duration', 'api.subsystems.kafka.config.timeout', 'API_SUBSYSTEMS_KAFKA_CONFIG_TIMEOUT'),
    ('--api-kafka-topic', 'string', 'api.subsystems.kafka.config.topic', 'API_SUBSYSTEMS_KAFKA_CONFIG_TOPIC'),
    ('--api-size', 'int', 'api.size', 'API_SIZE'),
    ('--log-level', 'string', 'logLevel', 'LOGLEVEL'),
    ('--metrics-addr', 'string', 'metricsAddr', 'METRICSADDR'),
    ('--system-completion-batch-size', 'int', 'system.completionBatchSize', 'SYSTEM_COMPLETIONBATCHSIZE'),
    ('--system-coroutine-max-size', 'int', 'system.coroutineMaxSize', 'SYSTEM_COROUTINEMAXSIZE'),
    ('--system-promise-batch-size', 'int', 'system.promiseBatchSize', 'SYSTEM_PROMISEBATCHSIZE'),
    ('--system-promise-max-iterations', 'int', 'system.promiseMaxIterations', 'SYSTEM_PROMISEMAXITERATIONS'),
    ('--system-schedule-batch-size', 'int', 'system.scheduleBatchSize', 'SYSTEM_SCHEDULEBATCHSIZE'),
    ('--system-schedule-max-iterations', 'int', 'system.scheduleMaxIterations', 'SYSTEM_SCHEDULEMAXITERATIONS'),
    ('--system-signal-timeout', 'duration', 'system.signalTimeout', 'SYSTEM_SIGNALTIMEOUT'),
    ('--system-submission-batch-size', 'int', 'system.submissionBatchSize', 'SYSTEM_SUBMISSIONBATCHSIZE'),
    ('--system-task-batch-size', 'int', 'system.taskBatchSize', 'SYSTEM_TASKBATCHSIZE'),
    ('--system-task-max-iterations', 'int', 'system.taskMaxIterations', 'SYSTEM_TASKMAXITERATIONS'),
    ('--system-url', 'string', 'system.url', 'SYSTEM_URL'),
]

SAMPLE_VALUES = {"duration": "7s", "bool": "true", "int": "7", "string": "x", "stringArray": "a",
                 "stringToString": "k=v"}


def serve_parser() -> argparse.ArgumentParser:
    return build_parser()._resonate_commands["serve"]


@pytest.fixture
def no_file(tmp_path, monkeypatch):
    """An empty working directory and $HOME, so no resonate.yaml is found by accident."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def load(argv, env=None):
    return load_config(argv, environ=env or {})


@pytest.mark.parametrize("flag, kind, key, variable", REFERENCE_FLAGS)
def test_every_reference_flag_is_accepted_with_its_key_path_and_variable(flag, kind, key, variable, no_file):
    assert key_path(flag) == key
    assert env_name(key) == variable
    actions = settable_actions(serve_parser())
    assert key.lower() in actions, f"{flag} has no config key"
    value = SAMPLE_VALUES[kind]
    if flag.endswith("-addr"):
        value = "127.0.0.1:1"
    value = {"--aio-kafka-compression": "gzip", "--log-level": "debug", "--aio-store-postgres-port": "5433"}.get(
        flag, value)
    args = [f"{flag}={value}"] if kind == "bool" else [flag, value]
    if flag.startswith("--aio-store-postgres-enable"):
        args += ["--aio-store-sqlite-enable=true"]
    load(["serve", *args])  # accepted, no "unrecognized arguments"


def test_reference_help_lists_every_flag_with_defaults_and_no_effect_marks(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag, *_ in REFERENCE_FLAGS:
        assert flag in text
    assert "--ignore-asserts" in text and "-c CONFIG, --config CONFIG" in text
    assert "--api-http-task-frequency DURATION lease of GET task claims (default 1m0s)" in text
    assert '--metrics-addr STRING prometheus metrics server address (empty: none) (default ":9090")' in text
    assert "--aio-poll-addr ADDR poll server address (default :8002)" in text
    assert "--system-coroutine-max-size INT max concurrent coroutines (no effect here) (default 1000)" in text
    assert "--aio-sender-plugin-poll-addr" not in text  # pre-release names are hidden aliases


def test_pre_release_plugin_flags_still_work(no_file):
    cfg = load(["serve", "--aio-sender-plugin-poll-addr", "127.0.0.1:7002", "--aio-sender-plugin-http-workers", "9"])
    assert cfg.poll_addr == ("127.0.0.1", 7002) and cfg.http_plugin_workers == 9


def test_repeated_and_key_value_forms(no_file):
    cfg = load(["serve", "--api-http-auth", "alice=a", "--api-http-auth", "bob=b,carol=c",
                "--aio-store-postgres-query", "sslmode=disable", "--aio-store-postgres-query", "connect_timeout=5",
                "--aio-kafka-brokers", "b1:9092", "--aio-kafka-brokers", "b2:9092"])
    assert cfg.http_auth == {"alice": "a", "bob": "b", "carol": "c"}
    assert cfg.postgres_query == {"sslmode": "disable", "connect_timeout": "5"}
    assert cfg.kafka_plugin_brokers == ["b1:9092", "b2:9092"]


def test_kafka_plugin_fields_and_defaults(no_file):
    cfg = load(["serve"])
    assert (cfg.kafka_plugin_size, cfg.kafka_plugin_workers, cfg.kafka_plugin_compression) == (100, 1, "none")
    cfg = load(["serve", "--aio-kafka-size", "5", "--aio-kafka-workers", "2", "--aio-kafka-compression", "zstd"])
    assert (cfg.kafka_plugin_size, cfg.kafka_plugin_workers, cfg.kafka_plugin_compression) == (5, 2, "zstd")
    with pytest.raises(SystemExit, match="--aio-kafka-compression"):
        load(["serve", "--aio-kafka-compression", "brotli"])


def test_dev_defaults_and_its_own_config_name(no_file):
    cfg = load(["dev"])
    assert cfg.sqlite_path == ":memory:" and cfg.postgres_query == {"sslmode": "disable"}
    (no_file / "resonate.yaml").write_text("logLevel: error\n")
    (no_file / "resonate-dev.yaml").write_text("logLevel: warn\n")
    assert load(["dev"]).log_level == "warn"
    assert load(["serve"]).log_level == "error"


def test_version_names_ours_and_the_reference():
    assert "0.8.2" in version_text() and "resonate-py" in version_text()


YAML = """
logLevel: warn
metricsAddr: 127.0.0.1:19090
system:
  signalTimeout: 2s
api:
  subsystems:
    http:
      enabled: true
      config:
        addr: 127.0.0.1:18001
        auth: {alice: secret}
        cors:
          allowOrigins: "http://a.test,http://b.test"
aio:
  subsystems:
    store:
      sqlite:
        config:
          path: example.db
  plugins:
    poll:
      config:
        addr: 127.0.0.1:18002
        timeToRetry: 3s
        maxConnections: 7
"""


def test_file_values_are_read_with_the_reference_key_paths(no_file):
    (no_file / "resonate.yaml").write_text(YAML)
    cfg = load(["serve"])
    assert cfg.log_level == "warn" and cfg.metrics_addr == "127.0.0.1:19090"
    assert cfg.signal_timeout_ms == 2000
    assert cfg.http_addr == ("127.0.0.1", 18001) and cfg.http_auth == {"alice": "secret"}
    assert cfg.http_cors_allow_origin == ["http://a.test", "http://b.test"]
    assert cfg.sqlite_path == "example.db"
    assert cfg.poll_addr == ("127.0.0.1", 18002) and cfg.poll_ttr_ms == 3000 and cfg.poll_max_connections == 7


def test_precedence_flag_over_env_over_file_over_default(no_file):
    (no_file / "resonate.yaml").write_text("logLevel: warn\nsystem:\n  signalTimeout: 2s\n")
    assert load(["serve"]).log_level == "warn"
    assert load(["serve"], {"LOGLEVEL": "error"}).log_level == "error"
    assert load(["serve", "--log-level", "debug"], {"LOGLEVEL": "error"}).log_level == "debug"
    assert load(["serve"], {"LOGLEVEL": ""}).log_level == "warn"  # empty variables are ignored
    cfg = load(["serve", "--system-signal-timeout", "3s"], {"SYSTEM_SIGNALTIMEOUT": "4s"})
    assert cfg.signal_timeout_ms == 3000
    assert load(["serve"], {"SYSTEM_SIGNALTIMEOUT": "4s"}).signal_timeout_ms == 4000
    assert load(["serve"]).api_size == Config().api_size


def test_environment_alone(no_file):
    cfg = load(["serve"], {"API_SUBSYSTEMS_HTTP_CONFIG_ADDR": "127.0.0.1:18101", "API_SIZE": "5",
                           "AIO_PLUGINS_POLL_CONFIG_MAXCONNECTIONS": "3", "AIO_PLUGINS_POLL_ENABLED": "false",
                           "API_SUBSYSTEMS_KAFKA_CONFIG_BROKERS": "a:1,b:2",
                           "API_SUBSYSTEMS_HTTP_CONFIG_AUTH": "u=p",
                           "AIO_SUBSYSTEMS_STORE_POSTGRES_CONFIG_PASSWORD": "s3cret"})
    assert cfg.http_addr == ("127.0.0.1", 18101) and cfg.api_size == 5
    assert cfg.poll_max_connections == 3 and cfg.poll_enable is False
    assert cfg.kafka_brokers == ["a:1", "b:2"] and cfg.http_auth == {"u": "p"}
    assert cfg.postgres_password == "s3cret"


def test_flag_shaped_variables_are_not_read(no_file):
    cfg = load(["serve"], {"API_HTTP_ADDR": "127.0.0.1:1", "LOG_LEVEL": "debug"})
    assert cfg.http_addr == Config().http_addr and cfg.log_level == "info"


def test_explicit_config_file_and_missing_one(no_file):
    other = no_file / "other"
    other.mkdir()
    (other / "custom.json").write_text('{"logLevel": "error"}')
    assert load(["serve", "-c", str(other / "custom.json")]).log_level == "error"
    with pytest.raises(SystemExit, match="no such file or directory"):
        load(["serve", "--config", str(other / "missing.yaml")])


def test_home_is_searched_after_the_working_directory(tmp_path, monkeypatch):
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir(), cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HOME", str(home))
    (home / "resonate.yml").write_text("logLevel: warn\n")
    assert load(["serve"]).log_level == "warn"
    (cwd / "resonate.yaml").write_text("logLevel: error\n")
    assert load(["serve"]).log_level == "error"


@pytest.mark.parametrize("text, named", [
    ("logLevl: debug\n", "logLevl"),
    ("log-level: debug\n", "log-level"),  # flag-shaped keys: the reference ignores them, we refuse them
    ("api:\n  subsystems:\n    http:\n      config:\n        adr: x\n", "api.subsystems.http.config.adr"),
    ("aio:\n  plugins:\n    poll:\n      config:\n        ttr: 1s\n", "aio.plugins.poll.config.ttr"),
    ("aio:\n  subsystems:\n    store-sqlite:\n      config: {path: x}\n", "aio.subsystems.store-sqlite"),
])
def test_unknown_keys_fail_start_up_naming_the_key(no_file, text, named):
    (no_file / "resonate.yaml").write_text(text)
    with pytest.raises(SystemExit) as e:
        load(["serve"])
    assert "unknown key" in str(e.value) and repr(named) in str(e.value)


@pytest.mark.parametrize("text, named", [
    ("system:\n  signalTimeout: 10\n", "system.signalTimeout"),  # a duration needs its unit
    ("api:\n  size: lots\n", "api.size"),
    ("api:\n  subsystems:\n    http:\n      enabled: maybe\n", "api.subsystems.http.enabled"),
    ("api:\n  subsystems:\n    http:\n      config:\n        addr: [1, 2]\n", "api.subsystems.http.config.addr"),
    ("api:\n  subsystems:\n    http:\n      config:\n        auth: [alice]\n", "api.subsystems.http.config.auth"),
    ("api:\n  subsystems: 3\n", "api.subsystems"),
    ("logLevel: true\n", "logLevel"),
])
def test_wrong_types_fail_start_up_naming_the_key(no_file, text, named):
    (no_file / "resonate.yaml").write_text(text)
    with pytest.raises(SystemExit) as e:
        load(["serve"])
    assert repr(named) in str(e.value)


def test_bad_environment_value_names_the_variable(no_file):
    with pytest.raises(SystemExit, match="API_SIZE"):
        load(["serve"], {"API_SIZE": "abc"})


def test_sources_and_targets_from_the_file(no_file):
    (no_file / "resonate.yaml").write_text("""
aio:
  subsystems:
    sender:
      config:
        targets:
          - name: default
            type: http
            data: {url: "http://127.0.0.1:1/default-target"}
          - name: myhttp
            type: http
            data:
              url: http://127.0.0.1:1/myhttp-target
              headers: {X-Test: abc}
    router:
      config:
        sources:
          - name: custom
            type: tag
            data: {key: "my:recv"}
""")
    cfg = load(["serve"])
    assert [t["name"] for t in cfg.sender_targets] == ["default", "myhttp"]
    assert cfg.sender_targets[1]["data"]["headers"] == {"X-Test": "abc"}
    assert cfg.router_sources == [{"name": "custom", "type": "tag", "data": {"key": "my:recv"}}]
    from resonate.app import build_router, build_targets
    router = build_router(cfg)
    assert router.route({"my:recv": "myhttp"}) == '"myhttp"'
    assert router.route({"resonate:invoke": "poll://any@g"}) == '"poll://any@g"'  # default source appended
    targets = build_targets(cfg)
    assert targets["default"].plugin == "http" and targets["myhttp"].address["headers"] == {"X-Test": "abc"}


@pytest.mark.parametrize("text, message", [
    ("aio:\n  subsystems:\n    router:\n      config:\n        sources:\n          - {name: a, type: foo, data: {}}\n",
     "unknown source type: foo"),
    ("aio:\n  subsystems:\n    sender:\n      config:\n        targets:\n          - {name: a, type: http, data: x}\n",
     "targets[0].data"),
    ("aio:\n  subsystems:\n    sender:\n      config:\n        targets: garbage\n", "targets"),
])
def test_bad_sources_and_targets_fail_start_up(no_file, text, message):
    (no_file / "resonate.yaml").write_text(text)
    with pytest.raises(SystemExit, match=message.replace("[", r"\[").replace("]", r"\]")):
        load(["serve"])


def test_ignore_asserts_is_flag_only_and_serve_only(no_file):
    assert load(["serve", "--ignore-asserts"]).ignore_asserts is True
    with pytest.raises(SystemExit):
        load(["dev", "--ignore-asserts"])


def test_flags_added_elsewhere_get_file_and_environment_support(no_file, monkeypatch):
    """The mechanism is generic over the parser: a flag another module adds needs no extra code."""
    import resonate.cli as cli
    original = cli.add_flags

    def add_flags_and_one_more(parser, defaults=None):
        original(parser, defaults)
        parser.add_argument("--api-kafka-example-mechanism", dest="extra_sasl", default="PLAIN")

    monkeypatch.setattr(cli, "add_flags", add_flags_and_one_more)
    parser = cli.build_parser()
    sub = parser._resonate_commands["serve"]
    from resonate.config_sources import apply_sources, defer_defaults
    defer_defaults(sub)
    ns = parser.parse_args(["serve"])
    apply_sources(sub, ns, "resonate", {"API_SUBSYSTEMS_KAFKA_CONFIG_EXAMPLEMECHANISM": "SCRAM-SHA-512"})
    assert ns.extra_sasl == "SCRAM-SHA-512"
    ns = parser.parse_args(["serve"])
    apply_sources(sub, ns, "resonate", {})
    assert ns.extra_sasl == "PLAIN"


def test_the_operating_guide_examples_load_unchanged(no_file):
    """docs/operating.md's resonate.yaml and unit file are accepted as written."""
    import re
    import shlex
    from pathlib import Path
    guide = (Path(__file__).resolve().parents[2] / "docs" / "operating.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", guide, re.S)
    assert len(blocks) >= 2
    for i, block in enumerate(blocks):
        path = no_file / f"example-{i}.yaml"
        path.write_text(block)
        load(["serve", "-c", str(path)])
    main_file = no_file / "example-0.yaml"
    cfg = load(["serve", "-c", str(main_file)], {"AIO_SUBSYSTEMS_STORE_POSTGRES_CONFIG_PASSWORD": "pw"})
    assert cfg.postgres_enable and cfg.postgres_password == "pw" and cfg.postgres_query == {"sslmode": "require"}
    assert cfg.api_auth_public_key == "/etc/resonate/jwt-public.pem" and cfg.poll_ttr_ms == 15_000
    exec_start = re.search(r"^ExecStart=(.*)$", guide, re.M).group(1)
    argv = shlex.split(exec_start)[1:]
    argv[argv.index("--config") + 1] = str(main_file)
    assert load(argv).log_level == "info"


def test_router_disabled_creates_no_invoke_tasks(no_file):
    from resonate.app import build_router, build_targets
    assert build_router(load(["serve", "--aio-router-enable=false"])).route({"resonate:invoke": "poll://any@g"}) is None
    cfg = load(["serve"])
    assert build_router(cfg).route({"resonate:invoke": "poll://any@g"}) == '"poll://any@g"'
    assert build_targets(cfg)["default"].plugin == "poll"  # the built-in default target stays
