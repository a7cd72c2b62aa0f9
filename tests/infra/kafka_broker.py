"""A real, single-node Apache Kafka broker (KRaft) on 127.0.0.1 for the tests.

The broker's jars come from Maven Central through ``tools/kafka/pom.xml`` and are
cached in ``.cache/kafka-jars`` (git-ignored); the broker runs as
``java -cp <those jars> kafka.Kafka server.properties`` with the system Java 17.
No Docker, no tarball.

    broker = KafkaBroker()
    broker.start()               # formats the storage on first start
    broker.create_topic("t", 3)
    broker.bootstrap             # "127.0.0.1:PORT"
    broker.stop()                # graceful; data and ports are kept
    broker.start()               # same port, same data
    broker.close()               # stop and delete the data dir
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import uuid
import zipfile
from pathlib import Path

from .apt import ProvisioningError, apt_install
from .ports import free_port, port_is_open
from .process import end_process, make_owned_dir, register_cleanup, signal_group, spawn, unregister_cleanup

REPO_ROOT = Path(__file__).resolve().parents[2]
KAFKA_POM = REPO_ROOT / "tools" / "kafka" / "pom.xml"
DEFAULT_JAR_DIR = Path(os.environ.get("RESONATE_KAFKA_JARS") or REPO_ROOT / ".cache" / "kafka-jars")

DEFAULT_JVM_OPTS = [
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseSerialGC",       # 2 cores: no parallel/concurrent GC threads needed for a 512 MiB heap
    "-XX:TieredStopAtLevel=1",  # C1 only: ~40% less CPU to start, plenty fast for test traffic
    "-XX:-UsePerfData",
    "-Djava.awt.headless=true",
]

_LOG4J2 = """\
status = error
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.file.ref = FILE
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = info
logger.broker.name = kafka.server.BrokerServer
logger.broker.level = info
"""


class KafkaBrokerError(ProvisioningError):
    """The Kafka broker could not be provisioned, started or stopped."""


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no output)"
    return "\n".join(text.strip().splitlines()[-lines:]) or "(empty)"


# --- jars ---------------------------------------------------------------------

_jar_lock = threading.Lock()


def _pom_digest(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def _jars_ready(jar_dir: Path, digest: str) -> bool:
    stamp = jar_dir / ".pom-sha256"
    try:
        return stamp.read_text().strip() == digest and any(jar_dir.glob("kafka_2.13-*.jar"))
    except OSError:
        return False


def ensure_kafka_jars(jar_dir: Path | None = None, pom: Path = KAFKA_POM) -> Path:
    """Make sure ``jar_dir`` holds the broker's jars for ``pom``; return it.

    Runs ``mvn dependency:copy-dependencies`` when the cache is missing or was
    made from another version of the pom. Safe across threads and processes.
    """
    jar_dir = Path(jar_dir or DEFAULT_JAR_DIR)
    if not pom.is_file():
        raise KafkaBrokerError(f"Kafka broker: the pom {pom} is missing")
    digest = _pom_digest(pom)
    if _jars_ready(jar_dir, digest):
        return jar_dir
    jar_dir.parent.mkdir(parents=True, exist_ok=True)
    with _jar_lock, open(jar_dir.parent / f".{jar_dir.name}.lock", "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        if _jars_ready(jar_dir, digest):
            return jar_dir
        mvn = shutil.which("mvn")
        if mvn is None:
            apt_install(["maven"], why="Kafka broker jars need Maven")
            mvn = shutil.which("mvn")
            if mvn is None:
                raise KafkaBrokerError("Kafka broker: mvn still not found after installing maven")
        tmp = jar_dir.with_name(f"{jar_dir.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        cmd = [mvn, "-B", "-q", "-U", "-Dstyle.color=never", "-f", str(pom), "dependency:copy-dependencies",
               f"-DoutputDirectory={tmp}"]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                               stdin=subprocess.DEVNULL, cwd=str(pom.parent))
        except subprocess.TimeoutExpired:
            shutil.rmtree(tmp, ignore_errors=True)
            raise KafkaBrokerError(f"Kafka broker: '{' '.join(cmd)}' timed out after 900 s") from None
        if r.returncode != 0 or not any(tmp.glob("kafka_2.13-*.jar")):
            shutil.rmtree(tmp, ignore_errors=True)
            out = re.sub(r"\x1b\[[0-9;]*m", "", r.stdout + r.stderr)
            out = "\n".join(line for line in out.strip().splitlines()[-40:] if line.strip())
            raise KafkaBrokerError(
                f"Kafka broker: could not fetch the broker jars from Maven Central with "
                f"'{' '.join(cmd)}' (exit {r.returncode}):\n{out}"
            )
        (tmp / ".pom-sha256").write_text(digest + "\n")
        shutil.rmtree(jar_dir, ignore_errors=True)
        os.replace(tmp, jar_dir)
    return jar_dir


def kafka_version(jar_dir: Path) -> str:
    jars = sorted(Path(jar_dir).glob("kafka_2.13-*.jar"))
    if not jars:
        raise KafkaBrokerError(f"Kafka broker: no kafka_2.13 jar in {jar_dir}")
    return jars[0].name[len("kafka_2.13-"):-len(".jar")]


def _storage_tool_class(jar_dir: Path) -> str:
    """kafka.tools.StorageTool (core, up to 4.x) or org.apache.kafka.tools.StorageTool."""
    core = sorted(Path(jar_dir).glob("kafka_2.13-*.jar"))[0]
    with zipfile.ZipFile(core) as z:
        if "kafka/tools/StorageTool.class" in z.namelist():
            return "kafka.tools.StorageTool"
    return "org.apache.kafka.tools.StorageTool"


def _appcds_archive(jar_dir: Path, java: str) -> Path:
    """Where the broker's AppCDS archive lives: next to the jars, per Java build."""
    real = os.path.realpath(java)
    try:
        stamp = f"{real}:{os.stat(real).st_mtime_ns}"
    except OSError:
        stamp = real
    return Path(jar_dir) / f"broker-appcds-{hashlib.sha256(stamp.encode()).hexdigest()[:12]}.jsa"


def _discard(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _classpath(jar_dir: Path) -> str:
    """The jars in a fixed order (what 'jar_dir/*' means, but stable for class-data sharing)."""
    return os.pathsep.join(str(p) for p in sorted(Path(jar_dir).glob("*.jar")))


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        apt_install(["openjdk-17-jre-headless"], why="the Kafka broker needs Java 17")
        java = shutil.which("java")
        if java is None:
            raise KafkaBrokerError("Kafka broker: java still not found after installing a JRE")
    return java


# --- the broker -------------------------------------------------------------------


class KafkaBroker:
    """One real Kafka broker+controller (KRaft), reachable at :attr:`bootstrap`.

    ``stop()`` then ``start()`` restarts it on the same ports with the same data
    (to simulate an outage); ``kill()`` simulates a crash (SIGKILL).
    """

    def __init__(
        self,
        *,
        auto_create_topics: bool = True,
        num_partitions: int = 1,
        extra_config: dict[str, object] | None = None,
        jvm_opts: list[str] | None = None,
        startup_timeout: float = 60.0,
        jar_dir: Path | str | None = None,
        base_dir: Path | str | None = None,
        use_cds: bool = True,
        sasl_users: dict[str, str] | None = None,
        tls: bool = False,
    ) -> None:
        self.auto_create_topics = auto_create_topics
        # user -> password: adds a SASL_PLAINTEXT listener (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)
        self.sasl_users = dict(sasl_users or {})
        self.sasl_port = free_port() if self.sasl_users else None
        # an SSL listener with a certificate for 127.0.0.1 signed by a throw-away CA (``ca_file``)
        self.ssl_port = free_port() if tls else None
        self.num_partitions = num_partitions
        self.extra_config = dict(extra_config or {})
        self.jvm_opts = list(DEFAULT_JVM_OPTS if jvm_opts is None else jvm_opts)
        self.startup_timeout = startup_timeout
        self.use_cds = use_cds
        self.jar_dir = Path(jar_dir) if jar_dir else DEFAULT_JAR_DIR
        self.host = "127.0.0.1"
        self.port = free_port()
        self.controller_port = free_port()
        self.dir = Path(make_owned_dir("resonate-kafka-", str(base_dir) if base_dir else None))
        self.data_dir = self.dir / "data"
        self.config_path = self.dir / "server.properties"
        self.log_path = self.dir / "broker.log"      # log4j output
        self.out_path = self.dir / "broker.out"      # the JVM's stdout/stderr
        self.cluster_id: str | None = None
        self.version: str | None = None
        self._proc: subprocess.Popen | None = None
        self._formatted = False
        self._dumping_cds: tuple[Path, Path] | None = None  # (written at JVM exit, kept as)
        self._lock = threading.RLock()
        register_cleanup(self, self._atexit)  # the temp dir goes at exit even if never started

    # -- properties --

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def sasl_bootstrap(self) -> str:
        """The SASL_PLAINTEXT listener (only with ``sasl_users``)."""
        if self.sasl_port is None:
            raise KafkaBrokerError("this broker has no SASL listener (pass sasl_users)")
        return f"{self.host}:{self.sasl_port}"

    @property
    def ssl_bootstrap(self) -> str:
        """The SSL listener (only with ``tls=True``); its CA certificate is ``ca_file``."""
        if self.ssl_port is None:
            raise KafkaBrokerError("this broker has no SSL listener (pass tls=True)")
        return f"{self.host}:{self.ssl_port}"

    @property
    def ca_file(self) -> Path:
        return self.dir / "tls" / "ca.pem"

    def _make_certificates(self) -> Path:
        """A CA and a server certificate for 127.0.0.1 (openssl); returns the PEM key store (key + chain)."""
        tls = self.dir / "tls"
        tls.mkdir(exist_ok=True)
        openssl = shutil.which("openssl")
        if openssl is None:
            raise KafkaBrokerError("Kafka broker: TLS needs the openssl command (apt-get install openssl)")
        (tls / "san.ext").write_text(f"subjectAltName=IP:{self.host},DNS:localhost\n")
        steps = [
            ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "7",
             "-subj", "/CN=resonate-test-ca"],
            ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
             "-subj", f"/CN={self.host}"],
            ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.crt", "-days", "7", "-extfile", "san.ext"],
            ["pkcs8", "-topk8", "-nocrypt", "-in", "server.key", "-out", "server.p8"],
        ]
        for step in steps:
            r = subprocess.run([openssl, *step], cwd=tls, capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                raise KafkaBrokerError(f"Kafka broker: openssl {step[0]} failed: {r.stderr.strip()}")
        keystore = tls / "keystore.pem"
        keystore.write_text((tls / "server.p8").read_text() + (tls / "server.crt").read_text())
        return keystore

    def _listener_config(self) -> dict[str, object]:
        """Listeners, with the SASL_PLAINTEXT and SSL ones when asked for."""
        listeners = [f"PLAINTEXT://{self.host}:{self.port}"]
        protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
        extra: dict[str, object] = {}
        if self.sasl_users:
            listeners.append(f"SASL_PLAINTEXT://{self.host}:{self.sasl_port}")
            protocols.append("SASL_PLAINTEXT:SASL_PLAINTEXT")
            extra.update(self._sasl_config())
        if self.ssl_port is not None:
            listeners.append(f"SSL://{self.host}:{self.ssl_port}")
            protocols.append("SSL:SSL")
            extra.update({"ssl.keystore.type": "PEM", "ssl.keystore.location": str(self._make_certificates())})
        return {
            "listeners": ",".join(listeners + [f"CONTROLLER://{self.host}:{self.controller_port}"]),
            "advertised.listeners": ",".join(listeners),
            "listener.security.protocol.map": ",".join(protocols),
            **extra,
        }

    def _sasl_config(self) -> dict[str, object]:
        plain_users = " ".join(f'user_{u}="{p}"' for u, p in self.sasl_users.items())
        prefix = "listener.name.sasl_plaintext"
        return {
            "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
            f"{prefix}.plain.sasl.jaas.config":
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};",
            f"{prefix}.scram-sha-256.sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            f"{prefix}.scram-sha-512.sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        }

    def _scram_format_args(self) -> list[str]:
        """SCRAM credentials are stored in the cluster metadata, written when the storage is formatted."""
        args = []
        for user, password in self.sasl_users.items():
            for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
                args += ["--add-scram", f"{mechanism}=[name={user},password={password}]"]
        return args

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return (f"--- {self.log_path} ---\n{_tail(self.log_path, lines)}\n"
                f"--- {self.out_path} ---\n{_tail(self.out_path, lines)}")

    # -- life cycle --

    def _write_config(self) -> None:
        cfg: dict[str, object] = {
            "process.roles": "broker,controller",
            "node.id": 1,
            "controller.quorum.voters": f"1@{self.host}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": self.num_partitions,
            "auto.create.topics.enable": str(self.auto_create_topics).lower(),
            "offsets.topic.replication.factor": 1,
            "offsets.topic.num.partitions": 1,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "transaction.state.log.num.partitions": 1,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            "group.initial.rebalance.delay.ms": 0,
            # after a crash (kill()) the restarted broker can only register once the
            # old incarnation's session expired: keep that short (default 9 s)
            "broker.session.timeout.ms": 4000,
            "broker.heartbeat.interval.ms": 1000,
            "num.network.threads": 2,
            "num.io.threads": 4,
            "num.recovery.threads.per.data.dir": 1,
        }
        cfg.update(self._listener_config())
        cfg.update(self.extra_config)
        self.config_path.write_text("".join(f"{k}={v}\n" for k, v in cfg.items()))
        (self.dir / "log4j2.properties").write_text(_LOG4J2.format(log=self.log_path))

    def _format(self, java: str) -> None:
        self.cluster_id = self.cluster_id or _random_cluster_id()
        tool = _storage_tool_class(self.jar_dir)
        archive = _appcds_archive(self.jar_dir, java)
        use_archive = self.use_cds and archive.is_file()
        for attempt in range(2):
            cds = ["-Xlog:cds=off", f"-XX:SharedArchiveFile={archive}"] if use_archive else []
            cmd = [java, *self.jvm_opts, *cds, f"-XX:ErrorFile={self.dir}/hs_err_%p.log",
                   f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
                   "-cp", _classpath(self.jar_dir), tool, "format",
                   "-t", self.cluster_id, "-c", str(self.config_path), *self._scram_format_args()]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                               stdin=subprocess.DEVNULL, cwd=str(self.dir))
            if r.returncode != 0 and use_archive and not (self.data_dir / "meta.properties").exists():
                _discard(archive)  # a broken class-data archive must not break the tests
                use_archive = False
                continue
            break
        if r.returncode != 0:
            raise KafkaBrokerError(
                f"Kafka broker: formatting the storage with {tool} failed (exit {r.returncode}):\n"
                + "\n".join((r.stdout + r.stderr).strip().splitlines()[-40:])
            )
        self._formatted = True

    def start(self) -> "KafkaBroker":
        """Start the broker (formatting its storage the first time) and wait until it serves."""
        with self._lock:
            if self.is_running():
                return self
            if not self.dir.exists():
                raise KafkaBrokerError(f"Kafka broker: {self.dir} was removed (close() was called)")
            ensure_kafka_jars(self.jar_dir)
            self.version = kafka_version(self.jar_dir)
            java = _java()
            if not self._formatted:
                self._write_config()
                self._format(java)
            for attempt in range(3):
                used_archive = self._spawn(java)
                try:
                    self._wait_ready()
                    break
                except KafkaBrokerError:
                    died = self._proc is not None and self._proc.poll() is not None
                    self._end(signal.SIGKILL, 5)
                    if died and attempt < 2:
                        if used_archive is not None:
                            # maybe the class-data archive: drop it, start without
                            _discard(used_archive)
                            continue
                        if "Address already in use" in self.log_tail(200):
                            # a port still held by a closing socket: try again shortly
                            time.sleep(1.0)
                            continue
                    raise
            return self

    def _cds_opts(self, java: str) -> tuple[list[str], Path | None]:
        """Class-data sharing cuts the JVM's start-up CPU by ~40%: the first broker
        that stops gracefully leaves an archive of the classes it loaded, the
        following starts map it."""
        archive = _appcds_archive(self.jar_dir, java)
        quiet = ["-Xlog:cds=off", "-Xlog:cds+dynamic=off"]
        if archive.is_file() and archive.stat().st_size > 0:
            self._dumping_cds = None
            return [*quiet, f"-XX:SharedArchiveFile={archive}"], archive
        self._dumping_cds = (self.dir / "appcds.jsa", archive)
        return [*quiet, f"-XX:ArchiveClassesAtExit={self._dumping_cds[0]}"], None

    def _keep_cds_archive(self, returncode: int | None) -> None:
        dumping, self._dumping_cds = self._dumping_cds, None
        if dumping is None:
            return
        dumped, archive = dumping
        if returncode not in (0, 143) or not dumped.is_file() or archive.exists():
            dumped.unlink(missing_ok=True)
            return
        tmp = archive.with_name(f"{archive.name}.tmp-{os.getpid()}-{id(self)}")
        try:
            shutil.copyfile(dumped, tmp)
            # keep it only if the JVM maps it (-Xshare:on fails instead of falling back)
            check = subprocess.run(
                [shutil.which("java") or "java", "-Xshare:on", f"-XX:SharedArchiveFile={tmp}",
                 "-XX:-UsePerfData", f"-XX:ErrorFile={self.dir}/hs_err_%p.log",
                 "-cp", _classpath(self.jar_dir), "-version"],
                capture_output=True, timeout=60, stdin=subprocess.DEVNULL, cwd=str(self.dir),
            )
            if check.returncode == 0:
                os.replace(tmp, archive)
        except (OSError, subprocess.SubprocessError):
            pass
        finally:
            tmp.unlink(missing_ok=True)
            dumped.unlink(missing_ok=True)

    def _spawn(self, java: str) -> Path | None:
        """Start the JVM; returns the class-data archive it maps, if any."""
        cds, archive = self._cds_opts(java) if self.use_cds else ([], None)
        with open(self.out_path, "ab") as out:
            out.write(f"\n=== start {time.strftime('%H:%M:%S')} ===\n".encode())
            out.flush()
            self._proc = spawn(
                [java, *self.jvm_opts, *cds,
                 f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
                 f"-Dkafka.logs.dir={self.dir}",
                 f"-XX:ErrorFile={self.dir}/hs_err_%p.log",
                 "-cp", _classpath(self.jar_dir), "kafka.Kafka", str(self.config_path)],
                pdeathsig="KILL",
                stdout=out, stderr=subprocess.STDOUT, cwd=str(self.dir),
            )
        return archive

    def _wait_ready(self) -> None:
        from kafka import KafkaAdminClient  # local: importing kafka is slow-ish

        deadline = time.monotonic() + self.startup_timeout
        last_error: object = "the port never opened"
        while time.monotonic() < deadline:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                raise KafkaBrokerError(
                    f"Kafka broker {self.version} exited with code "
                    f"{proc.returncode if proc else '?'} during start-up:\n{self.log_tail()}"
                )
            if not port_is_open(self.port, timeout=0.5):
                time.sleep(0.1)
                continue
            admin = None
            try:
                admin = KafkaAdminClient(
                    bootstrap_servers=self.bootstrap, client_id="resonate-test-infra",
                    request_timeout_ms=5000,
                )
                cluster = admin.describe_cluster()
                brokers = cluster.get("brokers") or []
                if any(b.get("broker_id") == 1 and not b.get("is_fenced") for b in brokers):
                    return
                last_error = f"broker not registered/unfenced yet: {cluster}"
            except Exception as e:  # noqa: BLE001 - retried until the deadline
                last_error = repr(e)
            finally:
                if admin is not None:
                    try:
                        admin.close()
                    except Exception:  # noqa: BLE001
                        pass
            time.sleep(0.2)
        raise KafkaBrokerError(
            f"Kafka broker {self.version} on {self.bootstrap} was not ready after "
            f"{self.startup_timeout:.0f} s (last error: {last_error}):\n{self.log_tail()}"
        )

    def _end(self, sig: int, timeout: float) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            signal_group(proc, signal.SIGCONT)  # in case it was pause()d
            rc = end_process(proc, sig=sig, timeout=timeout)
            self._keep_cds_archive(rc)

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful shutdown (SIGTERM, SIGKILL after ``timeout`` s). Data and ports are kept."""
        with self._lock:
            self._end(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """Crash the broker (SIGKILL). ``start()`` brings it back with its data."""
        with self._lock:
            self._end(signal.SIGKILL, 10)

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections stay open but nothing answers."""
        if self._proc is not None:
            signal_group(self._proc, signal.SIGSTOP)

    def resume(self) -> None:
        """Undo :meth:`pause` (SIGCONT)."""
        if self._proc is not None:
            signal_group(self._proc, signal.SIGCONT)

    def restart(self, timeout: float = 30.0) -> "KafkaBroker":
        self.stop(timeout)
        return self.start()

    def close(self) -> None:
        """End the broker and delete its directory. The data is thrown away, so the
        JVM is simply killed, unless it has to write the class-data archive first."""
        with self._lock:
            if self._dumping_cds is not None and not self._dumping_cds[1].exists():
                self._end(signal.SIGTERM, 30)
            else:
                self._end(signal.SIGKILL, 10)
            unregister_cleanup(self)
            shutil.rmtree(self.dir, ignore_errors=True)

    def _atexit(self) -> None:
        self._end(signal.SIGKILL, 10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "KafkaBroker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<KafkaBroker {self.version or ''} {self.bootstrap} {state} dir={self.dir}>"

    # -- helpers --

    def admin(self, **configs):
        """A new KafkaAdminClient on this broker (close it when done)."""
        from kafka import KafkaAdminClient

        configs.setdefault("client_id", "resonate-test-infra")
        return KafkaAdminClient(bootstrap_servers=self.bootstrap, **configs)

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        *,
        replication_factor: int = 1,
        config: dict[str, str] | None = None,
        exist_ok: bool = True,
        timeout: float = 30.0,
    ) -> None:
        """Create a topic and wait until every partition has a leader."""
        from kafka.errors import TopicAlreadyExistsError

        spec = {"num_partitions": partitions, "replication_factor": replication_factor}
        if config:
            spec["configs"] = {k: str(v) for k, v in config.items()}
        admin = self.admin(request_timeout_ms=int(timeout * 1000))
        try:
            try:
                admin.create_topics({name: spec}, timeout_ms=int(timeout * 1000))
            except TopicAlreadyExistsError:
                if not exist_ok:
                    raise
            admin.wait_for_topics([name], timeout_ms=int(timeout * 1000))
        finally:
            admin.close()

    def delete_topic(self, name: str, timeout: float = 30.0) -> None:
        admin = self.admin(request_timeout_ms=int(timeout * 1000))
        try:
            admin.delete_topics([name], timeout_ms=int(timeout * 1000))
        finally:
            admin.close()


def _random_cluster_id() -> str:
    import base64

    while True:  # like Kafka's Uuid.randomUuid: never starting with '-' (read as an option)
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid
