"""A real mosquitto for tests, and a client that watches it.

Broker: Debian's mosquitto started with a config file written here, on 127.0.0.1 (of the
machine, or of a test's network namespace with ns=...), TCP_NODELAY on, no limit on the
messages it queues for a client; with users= it refuses anyone without the password,
with persistence=True it saves its database every second (so a kill loses at most that);
with tls= it speaks only TLS and wants a client certificate. pki() makes the certificates.
Stopped and killed by its own pid.

Watcher: a paho-mqtt client in its own thread (inside the namespace if asked) that records
every message it gets, with the time it got it, and publishes for the test.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from kithnet.tools.board import stop_process
from netns import setns_thread
from paho.mqtt.enums import CallbackAPIVersion
from procs import free_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
_STARTED: list[subprocess.Popen] = []  # stopped when the test process ends, whatever failed


@atexit.register
def _stop_leftovers() -> None:
    for proc in _STARTED:
        stop_process(proc, 5)


class Broker:
    def __init__(
        self,
        work: Path,
        port: int | None = None,
        *,
        ns: str | None = None,
        users: dict[str, str] | None = None,
        persistence: bool = False,
        tls: dict[str, Path] | None = None,
    ) -> None:
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.ns = ns
        self.users = users
        self.persistence = persistence
        self.tls = tls  # {"ca", "cert", "key"}: TLS only, a client certificate required
        self.proc: subprocess.Popen | None = None
        self.log = self.work / "mosquitto.log"
        self.starts = 0

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    def _config(self) -> Path:
        lines = [
            f"listener {self.port} 127.0.0.1",
            "set_tcp_nodelay true",
            "max_queued_messages 0",
            f"log_dest file {self.log}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to `mosquitto`, which cannot write here
        if self.tls:
            t = self.tls
            lines += [
                f"cafile {t['ca']}",
                f"certfile {t['cert']}",
                f"keyfile {t['key']}",
                "require_certificate true",
            ]
        if self.users:
            pw = self.work / "passwords"
            pw.write_text("")
            for user, password in self.users.items():
                subprocess.run(
                    ["mosquitto_passwd", "-b", str(pw), user, password],
                    check=True,
                    capture_output=True,
                )
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines.append("allow_anonymous true")
        if self.persistence:
            lines += [
                "persistence true",
                f"persistence_location {self.work}/",
                "autosave_interval 1",
            ]
        else:
            lines.append("persistence false")
        conf = self.work / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self, persistence: bool | None = None) -> Broker:
        if persistence is not None:
            self.persistence = persistence
        conf = self._config()
        mark = self.log.stat().st_size if self.log.exists() else 0
        prefix = ["ip", "netns", "exec", self.ns] if self.ns else []
        self.proc = subprocess.Popen(
            [*prefix, MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _STARTED.append(self.proc)
        self.starts += 1
        end = time.monotonic() + 10
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"mosquitto exited ({self.proc.returncode}): {err}")
            text = self.log.read_bytes()[mark:] if self.log.exists() else b""
            if b" running" in text:
                return self
            time.sleep(0.02)
        raise TimeoutError("mosquitto did not start")

    def kill(self) -> None:
        """SIGKILL: no goodbye to anyone, nothing saved since the last autosave."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        stop_process(self.proc, 10)

    def forget(self) -> None:
        """Delete the persistence database: the next start has nothing retained."""
        for p in self.work.glob("mosquitto.db*"):
            p.unlink()


@dataclass
class Msg:
    t: float  # time.time() at receipt
    topic: str
    payload: bytes
    retain: bool

    @property
    def text(self) -> str:
        return self.payload.decode(errors="replace")


class Watcher:
    """Subscribes to `topics` (QoS 1) and keeps every message; clean=False keeps its
    session on the broker, so what comes while it is away waits for it."""

    def __init__(
        self,
        port: int,
        topics: list[str],
        *,
        ns: str | None = None,
        client_id: str | None = None,
        clean: bool = True,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.messages: list[Msg] = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.topics = topics
        self.connects = 0
        c = self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"watch-{os.getpid()}-{id(self):x}",
            protocol=mqtt.MQTTv311,
            clean_session=clean,
        )
        if username:
            c.username_pw_set(username, password)
        c.reconnect_delay_set(0.05, 0.3)
        c.on_connect = self._on_connect
        c.on_disconnect = lambda *_: self.connected.clear()
        c.on_message = self._on_message

        def go() -> bool:
            c.connect("127.0.0.1", port, keepalive=30)
            c.loop_start()  # its thread is made here: in the namespace too
            return True

        if ns is None:
            go()
        else:
            setns_thread(ns, go)
        if not self.connected.wait(10):
            raise TimeoutError("the watcher could not connect")

    def _on_connect(self, c: Any, _ud: Any, flags: Any, rc: Any, _props: Any) -> None:
        if not rc.is_failure:
            self.connects += 1
            if not flags.session_present:  # else subscribed already (and no retained again)
                c.subscribe([(t, 1) for t in self.topics])
            self.connected.set()

    def _on_message(self, _c: Any, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append(Msg(time.time(), msg.topic, bytes(msg.payload), msg.retain))

    def snapshot(self) -> list[Msg]:
        with self.lock:
            return list(self.messages)

    def on(self, topic: str, since: int = 0) -> list[Msg]:
        return [m for m in self.snapshot()[since:] if m.topic == topic]

    def last(self, topic: str) -> Msg | None:
        got = self.on(topic)
        return got[-1] if got else None

    def wait(self, what: Callable[[], Any], timeout: float = 20, why: str = "") -> Any:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            r = what()
            if r:
                return r
            time.sleep(0.05)
        raise TimeoutError(why or "condition not met")

    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, 1, retain)
        info.wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def pki(d: Path) -> dict[str, Path]:
    """A test CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files
    (made with `cryptography`, ECDSA P-256, valid for a day)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    d.mkdir(parents=True, exist_ok=True)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def save(stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        (d / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (d / f"{stem}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    def cert(cn: str, issuer: x509.Name, key, signer, *exts) -> x509.Certificate:
        b = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
        )
        for ext, critical in exts:
            b = b.add_extension(ext, critical=critical)
        return b.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert(
        "kithnet test CA",
        name("kithnet test CA"),
        ca_key,
        ca_key,
        (x509.BasicConstraints(ca=True, path_length=None), True),
    )
    save("ca", ca, ca_key)
    loopback = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
    for stem, ext in (
        ("server", x509.SubjectAlternativeName([loopback])),
        ("client", x509.SubjectAlternativeName([x509.DNSName("kithnet-gateway")])),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        save(stem, cert(stem, ca.subject, key, ca_key, (ext, False)), key)
    return {
        k: d / f
        for k, f in (
            ("ca", "ca.pem"),
            ("cert", "server.pem"),
            ("key", "server.key"),
            ("client_cert", "client.pem"),
            ("client_key", "client.key"),
        )
    }
