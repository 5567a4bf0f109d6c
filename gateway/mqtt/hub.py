"""The MQTT hub: an adapter on the gateway's bus that relays every node to a broker, for
Home Assistant (discovery, availability, commands) and anything else that subscribes.

Readings and events (data) never wait on the broker and are never lost to it. Each gets a
sequence number when the bus hands it over, then takes one of two roads:

- live, while the broker is connected and nothing older waits: published at once (QoS 1,
  at most WINDOW unacknowledged), or held in memory until the window opens;
- the outbox (outbox.py, on disk), while the broker is away, the connection is not yet
  ready, or too much waits in memory. Once connected the outbox is sent in sequence order
  before anything live, and a row is deleted only when the broker acknowledged it.

A lost connection moves what was live and unacknowledged into the outbox (by sequence
number, so it keeps its place), and a stop does the same: nothing is published out of
order, and a reading is lost only if the outbox bound drops it (counted). A crash instead
of a stop loses what was in memory; history has it, and the next start sends it first
(catchup.py). Duplicates are possible (QoS 1 is at-least-once).

State (discovery, availability, info, the current value of every capability) is published
retained, and all of it again on every connection after the outbox is drained, so a broker
that restarted without persistence is whole again; discovery is also sent again (after a
random delay) whenever Home Assistant announces itself on DISCOVERY/status.

Several gateways on one broker: each has its own id (client id, availability topic, HA
gateway device), and each node is published by one gateway, its owner, recorded in the
retained topic PREFIX/<node>/owner. On connecting, a gateway subscribes to the claims and
waits for them (a fence message round trip) before publishing anything. It claims the
nodes nobody has claimed, leaves alone those another gateway owns (one log line), and
takes over a node whose owner is offline (its last will) while the node talks to it. Two
gateways claiming at once: the smaller id keeps the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from typing import Any

from kithnet.protocol import model

from ..bus import Event
from ..devices import Device, display
from ..errors import CommandError
from . import codec
from .catchup import Catchup
from .discovery import device_config, gateway_config, gateway_object_id, node_object_id
from .link import Link
from .nodeview import PAYLOAD_INSTALL, NodeView
from .outbox import Item, Outbox
from .settings import MqttSettings
from .topics import Topics

log = logging.getLogger("kithnet.gateway.mqtt")

WINDOW = 2048  # QoS 1 messages published and not yet acknowledged
MEMORY_MAX = 100_000  # data held in memory for the window; more goes to the outbox
READ_BATCH = 512  # outbox rows read at a time
# A broker that goes down can lose what it acknowledged in its last moments (mosquitto
# saves its store on a timer, and a shutdown races the messages still being handed to
# subscribers): data acknowledged this recently before a lost connection is sent again
# after the next one. QoS 1 is at least once already; a repeat changes no retained state.
RESEND_S = 2.0
START_GRACE_S = 600.0  # a node not heard from since the start is not called offline sooner
REDISCOVER_JITTER_S = (0.5, 2.5)  # after Home Assistant's birth message
STATE_EVERY_S = 30.0  # the gateway's own state topic
COMMANDS_MAX = 64  # commands being carried out at once
FENCE_WAIT_S = 5.0  # for the fence to come back before publishing anyway
LOG_BURST = 20  # log lines about bad input per LOG_WINDOW_S; the rest are counted
LOG_WINDOW_S = 10.0
UPDATE_EVERY_S = 1.0  # update entity progress: at most this often, unless it moved
UPDATE_STEP = 10  # ... by this many percent, or the job's state changed

LIVE, DISK, CONTROL = 0, 1, 2  # where a message in memory comes from
Msg = tuple[str, bytes, bool, int, int]  # topic, payload, retain, seq, origin
ONLINE, OFFLINE = b"online", b"offline"


class MqttHub:
    def __init__(self, gw: Any, s: MqttSettings) -> None:
        self.gw = gw
        self.s = s
        self.t = Topics(s.prefix, s.discovery_prefix, s.gateway_id)
        self.link = Link(s, (self.t.gateway_availability, OFFLINE), self.t.subscriptions(), self)
        self.outbox: Outbox | None = None
        self.catchup: Catchup | None = None
        self._hold: list[Event] | None = None  # bus events while catching up at start
        self.views: dict[str, NodeView] = {}  # nodes this gateway publishes
        self.devs: dict[str, Device] = {}
        self.claims: dict[str, str] = {}  # node -> owner gateway id, as the broker has it
        self.gateways: dict[str, bool] = {}  # gateway id -> online, as the broker has it
        self.ready = False  # connected, and the owner claims are known
        self.counts = {
            "mqtt_published": 0,
            "mqtt_commands": 0,
            "mqtt_commands_invalid": 0,
            "mqtt_commands_failed": 0,
        }
        self._seq = 0
        self._inflight: dict[int, Msg] = {}
        self._waiting: deque[Msg] = deque()
        self._spool: list[Item] = []  # on its way to the outbox
        self._unread = False  # the outbox may hold rows after the cursor
        self._cursor = -1
        self._acked = 0  # the outbox is acknowledged through this sequence number
        self._recent: deque[tuple[float, Msg]] = deque(maxlen=4 * WINDOW)  # (acked at, data)
        self._closing = False
        self._deleted = 0
        self._snapshot = False  # current state to publish once the outbox is drained
        self._flush_soon = False
        self._sent_info: dict[str, bytes] = {}
        self._sent_update: dict[str, bytes] = {}  # the update entity's last state, per node
        self._update_at: dict[str, tuple[Any, int, float]] = {}  # (job state, %, monotonic)
        self._update_due: set[str] = set()  # progress held back by the throttle
        self._fence = b""
        self._rediscover: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task] = set()
        self._ticker: asyncio.Task | None = None
        self._unlisten: Any = None
        self._started = time.monotonic()
        self._graced = False
        self._logged: dict[str, float] = {}
        self._log_times: deque[float] = deque()
        self._suppressed = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- life ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.outbox = Outbox(self.gw.config.data_path / "mqtt-outbox.db", self.s.queue_max)
        self._seq = self.outbox.last_seq
        if len(self.outbox):
            self._unread = True
            log.info("MQTT: %d readings and events queued from before; sent when connected",
                     len(self.outbox))  # fmt: skip
        for dev in list(self.gw.devices_by_id.values()):
            self._track(dev)
        self._hold = []
        self._unlisten = self.gw.bus.listen(self._on_event)
        upto = None
        if self.gw.store is not None:
            self.catchup = Catchup(self.gw.store, self.outbox)
            upto = await self._catch_up()
        held, self._hold = self._hold, None
        for ev in held:
            self._on_event(ev)
        self._flush()  # what was held is on disk (not connected yet) before the mark moves
        if self.catchup is not None and upto is not None:
            self.catchup.save(upto)
        self.link.start()
        self._ticker = asyncio.create_task(self._tick_forever(), name="mqtt-tick")
        log.info(
            "MQTT hub %s for %s: topics %s/<node>/..., discovery under %s/",
            self.s.gateway_id, self.s.where, self.s.prefix, self.s.discovery_prefix,
        )  # fmt: skip

    async def _catch_up(self) -> int | None:
        """Before anything new: what history has that the broker may not (catchup.py); the
        history row it goes up to, to be saved once the events held meanwhile are on disk."""
        assert self.catchup is not None
        try:
            rows, upto = await self.catchup.missed(self.s.queue_max)
        except RuntimeError as e:
            log.error("MQTT: not sending again what a crash may have kept from the broker: %s", e)
            return None
        by_num = {dev.num: dev for dev in self.devs.values()}
        sent = 0
        for num, cid, value in rows:
            dev = by_num.get(num)
            if dev is not None and self._replay(dev, cid, value):
                sent += 1
        if sent:
            log.warning("MQTT: %d readings stored before the gateway stopped may not have reached "
                        "the broker; they are sent again, before new ones", sent)  # fmt: skip
        return upto

    def _replay(self, dev: Device, cid: int, value: Any) -> bool:
        """A history row as the message its bus event made (_on_event)."""
        view = self.views.get(dev.hex)
        cap = dev.caps.get(cid)
        topic = view.state.get(cap.label) if view is not None and cap is not None else None
        if topic is None:
            return False
        if cap.vtype == model.EVENT:
            self._data(topic, codec.encode_json({"event_type": display(cap, value)}), False)
        else:
            self._data(topic, codec.encode(display(cap, value)), True)
        return True

    def _durable(self) -> int:
        """The sequence number through which every message is acknowledged or on disk."""
        low = self._spool[0][0] if self._spool else None
        for m in self._inflight.values():
            if m[4] == LIVE and (low is None or m[3] < low):
                low = m[3]
        for m in self._waiting:  # in order: the first live one is the oldest
            if m[4] == LIVE:
                low = m[3] if low is None else min(low, m[3])
                break
        return self._seq if low is None else low - 1

    async def stop(self) -> None:
        self._closing = True  # our own goodbye: what the broker acknowledged is safe with it
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        if self._ticker is not None:
            self._ticker.cancel()
        if self._rediscover is not None:
            self._rediscover.cancel()
        for task in list(self._tasks):
            task.cancel()
        await self.link.stop([(self.t.gateway_availability, OFFLINE, True)])
        self._keep_unsent()
        self._flush()
        if self.catchup is not None:  # everything is acknowledged or on disk now
            with contextlib.suppress(RuntimeError):
                self.catchup.save(await self.catchup.newest())
        if self.outbox is not None:
            self._delete_acked()
            self.outbox.close()
            self.outbox = None

    def stats(self) -> dict[str, int]:
        out = dict(self.counts)
        out["mqtt_connected"] = int(self.link.connected)
        out["mqtt_connects"] = self.link.connects
        out["mqtt_queued"] = self.queued()
        out["mqtt_dropped"] = self.outbox.dropped if self.outbox is not None else 0
        out["mqtt_nodes"] = len(self.views)
        return out

    def queued(self) -> int:
        """Readings and events not yet acknowledged by the broker."""
        self._delete_acked()
        disk = len(self.outbox) if self.outbox is not None else 0
        live = sum(1 for m in self._waiting if m[4] == LIVE)
        live += sum(1 for m in self._inflight.values() if m[4] == LIVE)
        return disk + len(self._spool) + live

    # -- the bus -----------------------------------------------------------------------------

    def _on_event(self, ev: Event) -> None:
        """A bus listener: called inside the gateway's publish, so it only queues messages."""
        if self._hold is not None:
            self._hold.append(ev)
            return
        try:
            kind = ev.kind
            if kind == "state":
                view = self.views.get(ev.node)
                if view is None:
                    return
                values = ev.data["values"]
                dev = self.devs[ev.node]
                if dev.reboot != view.reboot:  # a node that rebooted without going offline
                    self._info(view, dev)
                topics = view.state
                data = self._data
                encode = codec.encode
                for label, value in values.items():
                    topic = topics.get(label)
                    if topic is not None:
                        data(topic, encode(value), True)
                if view.light is not None and not view.light_labels.isdisjoint(values):
                    payload = view.light_state(dev)
                    if payload is not None:
                        data(view.light_topic, payload, True)
            elif kind == "event":
                view = self.views.get(ev.node)
                topic = view.state.get(ev.data["capability"]) if view is not None else None
                if topic is not None:
                    body = {"event_type": ev.data["event"]}
                    if "count" in ev.data:
                        body["count"] = ev.data["count"]
                    self._data(topic, codec.encode_json(body), False)
            elif kind == "availability":
                view = self.views.get(ev.node)
                if view is not None:
                    dev = self.devs[ev.node]
                    self._control(view.availability, ONLINE if dev.online else OFFLINE)
                    self._info(view, dev)
                elif ev.data.get("online"):
                    self._evaluate(ev.node)  # its owner may be gone: take it over
            elif kind == "device":
                self._on_device(ev.node, ev.data.get("action"))
            elif kind == "ota":  # an update's progress: the update entity, throttled
                self._on_ota(ev.node)
            elif kind == "firmware":  # the firmware shelf's newest bundle changed
                for node, view in self.views.items():
                    self._update(view, self.devs[node])
        except Exception:
            log.exception("MQTT hub: bus event %s of %s not relayed", ev.kind, ev.node)

    def _on_device(self, node: str, action: str | None) -> None:
        if action == "removed":
            self.devs.pop(node, None)
            view = self.views.pop(node, None)
            if view is not None:
                # Removed in Home Assistant and emptied on the broker; these wait in the
                # outbox like readings if the broker is away.
                self._data(self.t.discovery(node_object_id(node)), b"", True)
                for topic in view.retained_topics():
                    self._data(topic, b"", True)
                self.claims.pop(node, None)
                self._sent_info.pop(node, None)
                self._sent_update.pop(node, None)
                log.info("MQTT: node %s removed from the broker and Home Assistant", node)
            return
        dev = self.gw.devices_by_id.get(bytes.fromhex(node))
        if dev is None:
            return
        self.devs[node] = dev
        if node in self.views:
            self.views[node] = view = NodeView.of(dev, self.t)
            self._announce(view, dev)
        else:
            self._evaluate(node)

    def _track(self, dev: Device) -> None:
        """At start: publish every node unless the broker says another gateway owns it."""
        self.devs[dev.hex] = dev
        self.views[dev.hex] = NodeView.of(dev, self.t)

    # -- ownership ---------------------------------------------------------------------------

    def _evaluate(self, node: str) -> None:
        dev = self.devs.get(node)
        if dev is None:
            d = self.gw.devices_by_id.get(bytes.fromhex(node))
            if d is None:
                return
            dev = self.devs[node] = d
        owner = self.claims.get(node)
        mine = owner in (None, "", self.s.gateway_id)
        if not mine and self.gateways.get(owner) is False and dev.online:
            log.info("MQTT: node %s was published by gateway %s, which is offline: taking it over",
                     node, owner)  # fmt: skip
            mine = True
        if mine and node not in self.views:
            view = self.views[node] = NodeView.of(dev, self.t)
            if self.ready:
                self._announce(view, dev, claim=True)
                for topic, payload in view.snapshot(dev):
                    self._control(topic, payload)
        elif not mine:
            if self.views.pop(node, None) is not None or self._once(f"owner {node} {owner}"):
                log.warning(
                    "MQTT: node %s (%s) is published by gateway %s on this broker; this gateway "
                    "leaves it alone (remove it there, or stop that gateway, to move it here)",
                    node, dev.name, owner,
                )  # fmt: skip

    def _on_claim(self, node: str, owner: str) -> None:
        old = self.claims.get(node)
        self.claims[node] = owner
        if not self.ready or owner == old:
            return
        if node in self.views and owner not in ("", self.s.gateway_id):
            if owner < self.s.gateway_id:  # claimed at the same time: the smaller id keeps it
                self._evaluate(node)
            else:  # ours: claimed again, and our discovery over what the other one sent
                self._announce(self.views[node], self.devs[node], claim=True)
        elif node not in self.views and owner in ("", self.s.gateway_id):
            self._evaluate(node)
        elif node in self.views and owner == "":  # our claim was cleared: it stands
            self._control(self.views[node].owner, self.s.gateway_id.encode())

    def _on_gateway(self, gid: str, payload: bytes) -> None:
        online = payload == ONLINE
        self.gateways[gid] = online
        if not online and self.ready and gid != self.s.gateway_id:
            for node, owner in list(self.claims.items()):
                if owner == gid:
                    self._evaluate(node)

    # -- what the broker gets on (re)connection ----------------------------------------------

    def on_connected(self) -> None:
        """Subscribed; the claims come first, then our fence (the broker keeps order)."""
        self.ready = False
        self._fence = fence = f"{time.time():.6f}".encode()
        self.link.publish(self.t.fence, fence, False)
        if self._loop is not None:
            self._loop.call_later(FENCE_WAIT_S, self._no_fence, fence)

    def _no_fence(self, fence: bytes) -> None:
        """A broker whose ACL keeps the fence from coming back: go on after a while."""
        if self.link.connected and not self.ready and self._fence == fence:
            log.warning("MQTT: the fence message on %s did not come back (a broker ACL?): "
                        "publishing without knowing every owner claim", self.t.fence)  # fmt: skip
            self._on_ready()

    def _on_ready(self) -> None:
        self.ready = True
        self._publish(self.t.gateway_availability, ONLINE, True)
        self._control(
            self.t.discovery(gateway_object_id(self.s.gateway_id)),
            codec.encode_json(gateway_config(self.t, self.gw.config.name)),
        )
        for node in list(self.devs):
            self._evaluate(node)
        for node, owner in list(self.claims.items()):
            if owner == self.s.gateway_id and node not in self.devs:
                self._forget_stale(node)
        for node, view in self.views.items():
            self._announce(view, self.devs[node], claim=True)
        self._publish_state()
        self._snapshot = True
        self._unread = self._unread or (self.outbox is not None and len(self.outbox) > 0)
        self._pump()

    def _announce(self, view: NodeView, dev: Device, claim: bool = False) -> None:
        """Discovery, info, update state and availability of one node (all retained)."""
        if claim:
            self._control(view.owner, self.s.gateway_id.encode())
        self._control(
            self.t.discovery(node_object_id(view.node)),
            codec.encode_json(device_config(dev, view, self.t)),
        )
        self._sent_info.pop(view.node, None)
        self._info(view, dev)
        self._sent_update.pop(view.node, None)
        self._update(view, dev)
        avail = self._availability(dev)
        if avail is not None:
            self._control(view.availability, avail)

    def _forget_stale(self, node: str) -> None:
        """A claim of ours for a node this gateway no longer has (removed while it was away
        from the broker, or a data directory started afresh)."""
        log.info("MQTT: node %s is no longer on this gateway: removing its discovery", node)
        self.claims.pop(node, None)
        self._control(self.t.discovery(node_object_id(node)), b"")
        for leaf in ("owner", "availability", "info", "update"):
            self._control(self.t.node(node, leaf), b"")

    def _availability(self, dev: Device) -> bytes | None:
        """online/offline as the gateway sees it; None for a node not heard from since the
        gateway started, within START_GRACE_S: its retained availability stands until it
        reports (a sleeping sensor may take minutes), so a gateway restart makes nothing
        unavailable that is not."""
        if dev.online:
            return ONLINE
        if dev.last_seen is None and time.monotonic() - self._started < START_GRACE_S:
            return None
        return OFFLINE

    def _info(self, view: NodeView, dev: Device) -> None:
        view.reboot = dev.reboot
        payload = view.info_payload(dev)
        if self._sent_info.get(view.node) != payload:
            self._sent_info[view.node] = payload
            self._control(view.info, payload)

    # -- the update entity (the firmware shelf and OTA) ------------------------------------

    def latest_firmware(self, dev: Device) -> str | None:
        """The firmware shelf's newest version if it is an update for this node (None: the
        update entity shows the installed version as the latest)."""
        s = self._offer(dev)
        return s.version if s is not None else None

    def _offer(self, dev: Device) -> Any:
        shelf = getattr(self.gw, "firmware", None)
        return shelf.offer(dev.firmware) if shelf is not None else None

    def _update(self, view: NodeView, dev: Device) -> None:
        """The update entity's state, if it changed (retained, like info)."""
        s = self._offer(dev)
        summary = f"{s.name} on the gateway's firmware shelf ({s.size} bytes)" if s else ""
        payload = view.update_payload(dev, s.version if s else None, summary)
        job = dev.ota or {}
        self._update_at[view.node] = (job.get("state"), job.get("percent") or 0, time.monotonic())
        self._update_due.discard(view.node)
        if self.ready and self._sent_update.get(view.node) != payload:
            self._sent_update[view.node] = payload
            self._control(view.update, payload)

    def _on_ota(self, node: str) -> None:
        """Progress at once when the job's state changes or it moved UPDATE_STEP percent,
        else at most every UPDATE_EVERY_S (the tick sends what was held back)."""
        view, dev = self.views.get(node), self.devs.get(node)
        if view is None or dev is None:
            return
        job = dev.ota or {}
        last = self._update_at.get(node)
        if (
            last is None
            or job.get("state") != last[0]
            or (job.get("percent") or 0) - last[1] >= UPDATE_STEP
            or time.monotonic() - last[2] >= UPDATE_EVERY_S
        ):
            self._update(view, dev)
        else:
            self._update_due.add(node)

    def _install(self, topic: str, dev: Device, payload: bytes) -> None:
        """The update entity's install button: the shelf's newest bundle to this node."""
        if payload.strip().lower() != PAYLOAD_INSTALL.encode():
            self._bad(topic, f"the update entity's command is {PAYLOAD_INSTALL!r}", payload)
            return
        if len(self._tasks) >= COMMANDS_MAX:
            self._bad(topic, f"{COMMANDS_MAX} commands are already being carried out")
            return
        self.counts["mqtt_commands"] += 1
        task = asyncio.create_task(self._run_install(dev))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_install(self, dev: Device) -> None:
        try:
            job = await self.gw.ota_latest(dev.hex)
        except (CommandError, ValueError) as e:  # (a BundleError is a ValueError)
            self.counts["mqtt_commands_failed"] += 1
            why = e.reason if isinstance(e, CommandError) else str(e)
            log.warning("MQTT: no update of %s from the firmware shelf: %s", dev.name, why)
        except KeyError:
            return  # the node was removed meanwhile
        else:
            log.info("MQTT: %s: installing %s from the firmware shelf (from %s)", dev.name,
                     job["version"], job["from_version"])  # fmt: skip
        view = self.views.get(dev.hex)
        if view is not None:
            self._update(view, dev)  # as it is now, either way

    def _publish_state(self) -> None:
        devs = [self.devs[n] for n in self.views if n in self.devs]
        body = {
            "nodes": len(devs),
            "online": sum(1 for d in devs if d.online),
            "queued": self.queued(),
            "dropped": self.outbox.dropped if self.outbox is not None else 0,
        }
        self._control(self.t.gateway_state, codec.encode_json(body))

    def _rediscover_now(self) -> None:
        self._rediscover = None
        if not self.ready:
            return
        log.info("MQTT: Home Assistant is online: discovery sent again")
        self._control(
            self.t.discovery(gateway_object_id(self.s.gateway_id)),
            codec.encode_json(gateway_config(self.t, self.gw.config.name)),
        )
        for node, view in self.views.items():
            self._announce(view, self.devs[node])

    # -- messages from the broker --------------------------------------------------------------

    def on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        what = self.t.classify(topic)
        kind = what[0]
        if kind == "owner":
            self._on_claim(what[1], payload.decode("utf-8", "replace").strip())
        elif kind == "gateway":
            self._on_gateway(what[1], payload)
        elif kind == "fence":
            if payload == self._fence and not self.ready:
                self._on_ready()
        elif kind == "ha_status":
            if payload.strip().lower() == ONLINE and self._rediscover is None and self._loop:
                self._rediscover = self._loop.call_later(
                    random.uniform(*REDISCOVER_JITTER_S), self._rediscover_now
                )
        elif kind == "set":
            self._command(topic, what[1], what[2], payload, retain)
        else:
            self._bad(topic, "not a topic this gateway reads")

    def _command(self, topic: str, node: str, name: str, payload: bytes, retain: bool) -> None:
        view = self.views.get(node)
        if view is None:
            log.debug("MQTT: command for node %s, not published by this gateway", node)
            return
        if retain:
            # A retained command would run again at every reconnection.
            self._bad(topic, "a retained command (publish commands without the retain flag)")
            return
        dev = self.devs[node]
        if name == "update":  # PREFIX/NODE/update/set ("update" is no capability's topic)
            self._install(topic, dev, payload)
            return
        try:
            fade = None
            if name == "":
                obj = codec.decode_object(payload)
                fade = obj.pop("fade_ms", None)
                if fade is not None and (isinstance(fade, bool) or not isinstance(fade, int)):
                    raise codec.BadPayload("fade_ms must be a whole number of milliseconds")
                values = obj
                if not values:
                    raise codec.BadPayload("no capability to set")
            elif name == "light" and view.light is not None:
                values, fade = self._light_command(view, codec.decode_object(payload))
            else:
                cid = view.cid_of(name)
                if cid is None:
                    raise codec.BadPayload(f"{dev.name} has no capability {name!r}")
                values = {str(cid): codec.decode_value(payload)}
            for v in values.values():
                if isinstance(v, dict | list) or v is None:
                    raise codec.BadPayload("values must be numbers, true/false or text")
        except codec.BadPayload as e:
            self._bad(topic, str(e), payload)
            return
        if len(self._tasks) >= COMMANDS_MAX:
            self._bad(topic, f"{COMMANDS_MAX} commands are already being carried out")
            return
        self.counts["mqtt_commands"] += 1
        task = asyncio.create_task(self._run_command(topic, dev, values, fade))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _light_command(self, view: NodeView, obj: dict[str, Any]) -> tuple[dict, int | None]:
        """Home Assistant's JSON light command as capability values (and a fade)."""
        lt = view.light
        assert lt is not None
        values: dict[str, Any] = {}
        state = obj.get("state")
        if state is not None:
            if not isinstance(state, str) or state.upper() not in ("ON", "OFF"):
                raise codec.BadPayload(f"state must be ON or OFF, not {state!r}")
            values[str(lt.switch.cid)] = state.upper() == "ON"
        if "brightness" in obj:
            values[str(lt.brightness.cid)] = obj["brightness"]
        if "color_temp" in obj:
            if lt.colour_temp is None:
                raise codec.BadPayload("this light has no colour temperature")
            values[str(lt.colour_temp.cid)] = obj["color_temp"]
        if not values:
            raise codec.BadPayload("nothing to set (state, brightness or color_temp)")
        fade = codec.fade_ms(obj["transition"]) if "transition" in obj else None
        return values, fade

    async def _run_command(self, topic: str, dev: Device, values: dict, fade: int | None) -> None:
        try:
            res = await self.gw.set(dev.hex, values, fade_ms=fade)
        except CommandError as e:
            self.counts["mqtt_commands_failed"] += 1
            if e.status in (400, 404):
                self._bad(topic, e.reason)
            else:
                log.warning("MQTT command on %s failed: %s", topic, e.reason)
            return
        except KeyError:
            return  # the node was removed meanwhile
        if res.get("status") == "queued":
            log.info("MQTT command on %s queued: %s gets it when it next wakes", topic, dev.name)

    def _bad(self, topic: str, why: str, payload: bytes | None = None) -> None:
        """One log line per bad message (at most LOG_BURST per LOG_WINDOW_S, the rest
        counted), and nothing else: the message is ignored."""
        self.counts["mqtt_commands_invalid"] += 1
        now = time.monotonic()
        times = self._log_times
        while times and now - times[0] > LOG_WINDOW_S:
            times.popleft()
        if len(times) >= LOG_BURST:
            self._suppressed += 1
            return
        times.append(now)
        shown = "" if payload is None else f" (payload {payload[:60]!r})"
        more = f"; {self._suppressed} more not logged" if self._suppressed else ""
        self._suppressed = 0
        log.warning("MQTT: ignored %s: %s%s%s", topic, why, shown, more)

    def _once(self, key: str) -> bool:
        if key in self._logged:
            return False
        self._logged[key] = time.monotonic()
        return True

    # -- the road of a message -----------------------------------------------------------------

    def _data(self, topic: str, payload: bytes, retain: bool) -> None:
        """A reading, an event or a removal: live if possible, else the outbox."""
        self._seq += 1
        if self.ready and not self._unread and not self._spool:
            if len(self._waiting) < MEMORY_MAX:
                self._send((topic, payload, retain, self._seq, LIVE))
                return
        self._spool.append((self._seq, topic, payload, retain))
        if not self._flush_soon and self._loop is not None:
            self._flush_soon = True
            self._loop.call_soon(self._flush)

    def _control(self, topic: str, payload: bytes) -> None:
        """Retained state that every connection publishes afresh: dropped when not ready."""
        if self.ready:
            self._publish(topic, payload, True)

    def _publish(self, topic: str, payload: bytes, retain: bool) -> None:
        self._send((topic, payload, retain, 0, CONTROL))

    def _send(self, msg: Msg) -> None:
        """Published now if the window has room and nothing waits before it, else queued."""
        if not self._waiting and len(self._inflight) < WINDOW:
            mid = self.link.publish(msg[0], msg[1], msg[2])
            if mid is not None:
                self._inflight[mid] = msg
                return
        self._waiting.append(msg)

    def on_ack(self, mid: int) -> None:
        msg = self._inflight.pop(mid, None)
        if msg is None:
            return
        if msg[4] != CONTROL:
            self.counts["mqtt_published"] += 1
            self._recent.append((time.monotonic(), msg))
            if msg[4] == DISK and msg[3] > self._acked:
                self._acked = msg[3]
        if self._waiting or self._unread or self._spool or self._snapshot:
            self._pump()

    def _pump(self) -> None:
        """Fill the window: memory first, then the outbox, then (once it is empty) the
        snapshot of the current state."""
        waiting = self._waiting
        inflight = self._inflight
        publish = self.link.publish
        while self.ready and len(inflight) < WINDOW:
            if not waiting and not self._refill():
                return
            msg = waiting.popleft()
            mid = publish(msg[0], msg[1], msg[2])
            if mid is None:
                waiting.appendleft(msg)
                return
            inflight[mid] = msg

    def _refill(self) -> bool:
        if self._spool:
            self._flush()
        if self._unread and self.outbox is not None:
            self._delete_acked()
            rows = self.outbox.read(self._cursor, READ_BATCH)
            if rows:
                self._cursor = rows[-1][0]
                self._waiting.extend((t, p, r, q, DISK) for q, t, p, r in rows)
                return True
            self._unread = False
        if self._snapshot and not self._unread and not self._spool:
            self._snapshot = False
            for node, view in self.views.items():
                for topic, payload in view.snapshot(self.devs[node]):
                    self._waiting.append((topic, payload, True, 0, CONTROL))
            return bool(self._waiting)
        return False

    def flush(self) -> None:
        """The gateway calls this before it stores a batch of readings (whose nodes are
        acknowledged once it is committed): a reading waiting for the broker is then on disk
        before its node is told it is safe, so a crash cannot keep it from MQTT."""
        if self._spool:
            self._flush()

    def _flush(self) -> None:
        """The spool into the outbox: one transaction for what one turn of the loop made."""
        self._flush_soon = False
        if not self._spool or self.outbox is None:
            return
        items, self._spool = self._spool, []
        dropped = self.outbox.append(items)
        self._unread = True
        if dropped and self._once(f"dropped {self.outbox.dropped // 100_000}"):
            log.warning(
                "MQTT outbox full (%d): the oldest readings are dropped (%d so far)",
                self.outbox.limit, self.outbox.dropped,
            )  # fmt: skip
        if self.ready and not self._waiting:
            self._pump()

    def _delete_acked(self) -> None:
        if self.outbox is not None and self._acked > self._deleted:
            self.outbox.remove_through(self._acked)
            self._deleted = self._acked

    def on_lost(self) -> None:
        """The connection is gone: what was live and unacknowledged goes to the outbox (its
        sequence numbers keep it in order), the outbox is read again from its start."""
        self.ready = False
        self._keep_unsent()
        self._flush()
        self._cursor = -1
        self._unread = bool(self.outbox is not None and len(self.outbox))

    def _keep_unsent(self) -> None:
        self._delete_acked()
        since = time.monotonic() - RESEND_S
        again = [] if self._closing else [m for t, m in self._recent if t >= since]
        self._recent.clear()
        live = [m for m in (*self._inflight.values(), *self._waiting) if m[4] == LIVE]
        self._inflight.clear()
        self._waiting.clear()
        if again:  # back in the outbox under their old numbers: deleted once acknowledged anew
            low = min(m[3] for m in again) - 1
            self._acked = min(self._acked, low)
            self._deleted = min(self._deleted, low)
        self._spool.extend((q, t, p, r) for t, p, r, q, _ in (*again, *live))

    # -- time ------------------------------------------------------------------------------------

    async def _tick_forever(self) -> None:
        last_state = time.monotonic()
        while True:
            await asyncio.sleep(0.5)
            try:
                self._delete_acked()
                if self.catchup is not None:
                    self.catchup.settle(self._durable())
                    self.catchup.ask(self._seq)
                now = time.monotonic()
                if self.ready and now - last_state >= STATE_EVERY_S:
                    last_state = now
                    self._publish_state()
                for node in [n for n in self._update_due
                             if now - self._update_at[n][2] >= UPDATE_EVERY_S]:  # fmt: skip
                    if node in self.views:
                        self._update(self.views[node], self.devs[node])
                    self._update_due.discard(node)
                if not self._graced and now - self._started >= START_GRACE_S:
                    self._graced = True  # nodes still unheard of are offline now
                    for node, view in self.views.items():
                        avail = self._availability(self.devs[node])
                        if avail is not None:
                            self._control(view.availability, avail)
            except Exception:
                log.exception("MQTT hub: periodic work failed")
