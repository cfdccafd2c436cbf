"""A private single-node broker with a SASL_SSL (SCRAM-SHA-512 over TLS) listener, for the TLS
tests only: the shared development broker has no TLS listener and must not be restarted.

The certificates are made here with openssl: a throw-away CA and a broker certificate for
``IP:127.0.0.1`` signed by it, in PEM (Kafka reads PEM key stores since 2.7, KIP-651). The broker
configuration is the development broker's own (``scorestream.dev.broker.config``) with the TLS
listener added, so authorization (StandardAuthorizer, deny by default) is the same.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from scorestream.dev.broker import config as cfg
from scorestream.dev.broker.jars import classpath, ensure_jars, find_java
from scorestream.dev.broker.local import free_port, metadata_ready
from scorestream.settings import BrokerSettings

ADMIN_USER, ADMIN_PASSWORD = "admin", "tls-admin-secret"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=120)


def make_certificates(d: Path, *, name: str = "ca") -> Path:
    """``<name>.crt`` (CA) and ``broker.pem`` (PKCS#8 key + chain) in ``d``; returns the CA."""
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-keyout", f"{name}.key", "-out", f"{name}.crt", "-subj", f"/CN=scorestream-{name}",
             cwd=d)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key",
             "-out", "broker.csr", "-subj", "/CN=127.0.0.1", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "broker.csr", "-CA", f"{name}.crt", "-CAkey", f"{name}.key",
             "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "broker.crt",
             cwd=d)  # fmt: skip
    _openssl("pkcs8", "-topk8", "-nocrypt", "-in", "broker.key", "-out", "broker.pk8", cwd=d)
    pem = (d / "broker.pk8").read_text() + (d / "broker.crt").read_text()
    (d / "broker.pem").write_text(pem)
    return d / f"{name}.crt"


@dataclass
class TlsBroker:
    home: Path
    ca: Path
    plaintext: str
    tls: str
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def _properties(home: Path, ports: cfg.Ports, tls_port: int, keystore: Path) -> str:
    base = cfg.server_properties(ports, home / "data", admin_user=ADMIN_USER, num_partitions=1)
    props = dict(
        line.split("=", 1) for line in base.splitlines() if line and not line.startswith("#")
    )
    jaas = props["listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config"]
    props["listeners"] += f",SASL_SSL://127.0.0.1:{tls_port}"
    props["advertised.listeners"] += f",SASL_SSL://127.0.0.1:{tls_port}"
    props["listener.security.protocol.map"] += ",SASL_SSL:SASL_SSL"
    props |= {
        "listener.name.sasl_ssl.sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": jaas,
        "listener.name.sasl_ssl.ssl.keystore.type": "PEM",
        "listener.name.sasl_ssl.ssl.keystore.location": str(keystore),
        "super.users": f"User:ANONYMOUS;User:{ADMIN_USER}",
        "log.segment.bytes": str(16 * 1024 * 1024),
    }
    return "\n".join(f"{k}={v}" for k, v in props.items()) + "\n"


def start_tls_broker(home: Path, timeout: float = 180.0) -> TlsBroker:
    ca = make_certificates(home / "certs")
    ports = cfg.Ports(plaintext=free_port(), sasl=free_port(), controller=free_port())
    tls_port = free_port()
    (home / "data").mkdir(parents=True, exist_ok=True)
    server = home / "server.properties"
    server.write_text(_properties(home, ports, tls_port, home / "certs" / "broker.pem"))
    log4j = home / "log4j2.properties"
    log4j.write_text(cfg.log4j2_properties(home / "server.log"))
    tools = home / "tools-log4j2.properties"
    tools.write_text(cfg.tools_log4j2_properties())
    java = find_java()
    cp = classpath(ensure_jars(BrokerSettings().cache_dir))
    subprocess.run(
        [java, "-Xmx256m", f"-Dlog4j2.configurationFile={tools}", "-cp", cp,
         "kafka.tools.StorageTool", "format", "--config", str(server), "--cluster-id",
         "tlsTestClusterId000000", "--standalone", "--add-scram",
         f"SCRAM-SHA-512=[name={ADMIN_USER},password={ADMIN_PASSWORD}]"],
        check=True, capture_output=True, timeout=180,
    )  # fmt: skip
    with (home / "stdout.log").open("ab") as out:
        proc = subprocess.Popen(
            [java, "-Xmx384m", "-Xms384m", "-XX:TieredStopAtLevel=1",
             f"-Dlog4j2.configurationFile={log4j}", "-cp", cp, "kafka.Kafka", str(server)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=home,
        )  # fmt: skip
    broker = TlsBroker(home, ca, f"127.0.0.1:{ports.plaintext}", f"127.0.0.1:{tls_port}", proc)
    deadline = time.monotonic() + timeout
    while not metadata_ready(broker.plaintext):
        if proc.poll() is not None or time.monotonic() > deadline:
            broker.stop()
            log = (home / "server.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"private TLS broker did not start:\n{log}")
        time.sleep(0.5)
    return broker
