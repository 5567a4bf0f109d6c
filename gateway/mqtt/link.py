"""The connection to the broker: paho-mqtt's client, driven by the gateway's event loop.

paho-mqtt is the field's MQTT client (aiomqtt is built on it). Here its network calls run
from asyncio's reader and writer callbacks (paho's "external event loop" interface), as
aiomqtt does, but without a future per message: the hub publishes many QoS 1 messages
at once and hears each PUBACK through on_ack(mid), which is what lets a relay keep up with
thousands of readings a second (aiomqtt awaiting one publish at a time manages a fraction
of that, see performance-facts.md). The socket gets TCP_NODELAY: without it Nagle and
delayed ACKs hold small messages for up to 40 ms.

One session at a time, each with a new paho client and a clean session: nothing of a lost
session is resent behind the hub's back (the hub's outbox decides what goes again, in
order). Connecting (TCP and TLS handshakes block) runs in a worker thread. A refused or
failed connection is logged once per cause, at error level, and tried again with backoff
(0.5 s doubling to 5 s, jittered) for as long as the gateway runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from .settings import MqttSettings

log = logging.getLogger("kithnet.gateway.mqtt")

KEEPALIVE_S = 30
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 5.0
_CREDENTIALS = {4, 5, 134, 135}  # CONNACK codes: bad user name or password, not authorized


class Handler(Protocol):
    def on_connected(self) -> None: ...
    def on_lost(self) -> None: ...
    def on_message(self, topic: str, payload: bytes, retain: bool) -> None: ...
    def on_ack(self, mid: int) -> None: ...


class Link:
    def __init__(
        self,
        s: MqttSettings,
        will: tuple[str, bytes],
        subscriptions: list[str],
        handler: Handler,
    ) -> None:
        self.s = s
        self.will = will
        self.subscriptions = subscriptions
        self.h = handler
        self.connected = False
        self.connects = 0
        self.last_error: str | None = None
        self._client: mqtt.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0
        self._task: asyncio.Task | None = None
        self._done: asyncio.Future[bool] | None = None
        self._stopping = False
        self._ok = False
        self._fd = -1

    # -- life ------------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._task = asyncio.create_task(self._run(), name="mqtt-link")

    async def stop(self, last: list[tuple[str, bytes, bool]], timeout: float = 2.0) -> None:
        """Publish `last` (the gateway's goodbye), wait for its acks, disconnect cleanly."""
        self._stopping = True
        c = self._client
        if c is not None and self.connected:
            infos = [c.publish(topic, payload, 1, retain) for topic, payload, retain in last]
            loop = asyncio.get_running_loop()
            end = loop.time() + timeout
            while not all(i.is_published() for i in infos) and loop.time() < end:
                await asyncio.sleep(0.01)
            c.disconnect()
            if self._done is not None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._done), timeout)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._close(c)

    def publish(self, topic: str, payload: bytes, retain: bool) -> int | None:
        """QoS 1; the mid that on_ack will report, or None if not connected."""
        c = self._client
        if c is None or not self.connected:
            return None
        info = c.publish(topic, payload, 1, retain)
        return info.mid if info.rc == mqtt.MQTT_ERR_SUCCESS else None

    # -- sessions ----------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = BACKOFF_MIN_S
        while not self._stopping:
            try:
                ok = await self._session()
            except Exception:
                log.exception("MQTT session failed")
                ok = False
            if self._stopping:
                break
            if ok:
                delay = BACKOFF_MIN_S
            await asyncio.sleep(delay * random.uniform(0.75, 1.25))
            delay = min(delay * 2, BACKOFF_MAX_S)

    def _new_client(self) -> mqtt.Client:
        s = self.s
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=s.client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        c.max_inflight_messages_set(0)  # the hub keeps its own window (paho scans per ack)
        c.max_queued_messages_set(0)
        if s.username is not None:
            c.username_pw_set(s.username, s.password)
        if s.tls:
            c.tls_set(ca_certs=s.ca, certfile=s.cert, keyfile=s.key)
        c.will_set(self.will[0], self.will[1], qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_publish = self._on_publish
        c.on_socket_open = self._on_socket_open
        c.on_socket_close = self._on_socket_close
        c.on_socket_register_write = self._on_register_write
        c.on_socket_unregister_write = self._on_unregister_write
        return c

    async def _session(self) -> bool:
        """One connection, from connect to its loss; True if the broker accepted it."""
        loop = asyncio.get_running_loop()
        c = self._client = self._new_client()
        self._ok = False
        self._done = loop.create_future()
        try:
            await loop.run_in_executor(None, c.connect, self.s.host, self.s.port, KEEPALIVE_S)
        except (OSError, ssl.SSLError, ValueError) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            self._error(f"cannot connect to the MQTT broker {self.s.where}: {why}")
            self._close(c)
            return False
        misc = asyncio.create_task(self._misc(c))
        try:
            return await self._done
        finally:
            misc.cancel()
            self._close(c)

    async def _misc(self, c: mqtt.Client) -> None:
        while True:
            await asyncio.sleep(1.0)
            c.loop_misc()  # keepalive pings; a broker that stopped answering ends the session

    def _close(self, c: mqtt.Client | None) -> None:
        """Leave a session for good: its socket out of the loop and closed."""
        self._forget_fd()
        sock = c.socket() if c is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        if self.connected:
            self.connected = False
            self.h.on_lost()

    def _forget_fd(self) -> None:
        # By number: asyncio drops its registration even when the socket is closed already.
        fd, self._fd = self._fd, -1
        if fd >= 0 and self._loop is not None:
            self._loop.remove_reader(fd)
            self._loop.remove_writer(fd)

    def _error(self, text: str) -> None:
        if text != self.last_error:
            log.error("%s; trying again every few seconds (the gateway runs on without it)", text)
            self.last_error = text
        else:
            log.debug("%s", text)

    # -- paho's callbacks (on the event loop, except socket_open/register_write: see _call) --

    def _on_connect(self, c: mqtt.Client, _ud: Any, _flags: Any, rc: Any, _props: Any) -> None:
        if rc.is_failure:
            hint = " (check the user and password in mqtt_url)" if rc.value in _CREDENTIALS else ""
            self._error(f"the MQTT broker {self.s.where} refused the connection: {rc}{hint}")
            c.disconnect()
            return
        self._ok = True
        self.connected = True
        self.connects += 1
        if self.last_error is not None or self.connects == 1:
            log.info("connected to the MQTT broker %s as %s", self.s.where, self.s.client_id)
        self.last_error = None
        if self.subscriptions:
            c.subscribe([(t, 1) for t in self.subscriptions])
        self.h.on_connected()

    def _on_disconnect(self, _c: Any, _ud: Any, _flags: Any, rc: Any, _props: Any) -> None:
        was = self.connected
        if was:
            self.connected = False
            if not self._stopping:
                why = "it closed the connection" if str(rc) == "Unspecified error" else rc
                log.warning("lost the MQTT broker %s (%s); reconnecting", self.s.where, why)
            self.h.on_lost()
        done = self._done
        if done is not None and not done.done():
            done.set_result(self._ok)

    def _on_message(self, _c: Any, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self.h.on_message(msg.topic, msg.payload, msg.retain)
        except Exception:
            log.exception("MQTT message on %s not handled", msg.topic)

    def _on_publish(self, _c: Any, _ud: Any, mid: int, _rc: Any, _props: Any) -> None:
        self.h.on_ack(mid)

    def _call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run fn on the loop: at once from its thread, else through call_soon_threadsafe
        (paho opens the socket in the connecting worker thread)."""
        if threading.get_ident() == self._thread:
            fn(*args)
        elif self._loop is not None:
            self._loop.call_soon_threadsafe(fn, *args)

    def _on_socket_open(self, c: mqtt.Client, _ud: Any, sock: Any) -> None:
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        fd = sock.fileno()

        def watch() -> None:
            self._fd = fd
            self._loop.add_reader(fd, self._readable, c)

        self._call(watch)

    def _readable(self, c: mqtt.Client) -> None:
        try:
            c.loop_read()
            sock = c.socket()
            while sock is not None and getattr(sock, "pending", None) and sock.pending():
                c.loop_read()  # TLS: decrypted bytes the selector cannot see
        except Exception as e:
            self._failed(c, f"reading: {e}")

    def _writable(self, c: mqtt.Client) -> None:
        try:
            c.loop_write()
        except Exception as e:
            self._failed(c, f"writing: {e}")

    def _failed(self, c: mqtt.Client, why: str) -> None:
        self._close(c)
        self._on_disconnect(c, None, None, why, None)

    def _on_socket_close(self, _c: Any, _ud: Any, _sock: Any) -> None:
        self._call(self._forget_fd)  # paho calls this before it closes the socket

    def _on_register_write(self, c: mqtt.Client, _ud: Any, sock: Any) -> None:
        fd = sock.fileno()
        self._call(self._loop.add_writer, fd, self._writable, c)

    def _on_unregister_write(self, _c: Any, _ud: Any, sock: Any) -> None:
        fd = sock.fileno()
        self._call(self._loop.remove_writer, fd)
