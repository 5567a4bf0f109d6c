# The loop of a node on Wi-Fi (Node.run): a 100 ms tick (watchdog, link timers, sampling),
# select.poll on the sockets, and each driver's poll(node, now) when it asked to be called
# again. A module of its own so that a node without Wi-Fi, which runs node/ble.py's loop,
# never loads it (it would hold 1.8 KB of its heap for nothing).

import gc
import select
import time

from micropython import const

from .hal import impl as hal
from .runtime import _ota

_TICK_MS = const(100)
# Largest datagram taken from the gateway. recvfrom allocates this much in one piece each
# time, and a long-running heap may hold its free space in smaller runs; everything the
# gateway sends a node today fits in 512 bytes (an update's chunks too: SPEC 9.4).
_RX_MAX = const(512)


def run(node):
    """Start the drivers, then loop forever (or until deep sleep)."""
    c = node.cfg
    for drv in node.drivers:
        if hasattr(drv, "start"):
            drv.start(node)
    gc.collect()
    ip = node.ip
    node.log("running at %s:%d, %d bytes of heap free" % (ip, c["port"], gc.mem_free()))
    link = node.link
    sleepy = link.sleepy
    wdt = hal.WDT(c.get("watchdog_ms", 30000))
    if sleepy and link.rtc.resume(link):
        node.log("resumed session %d after deep sleep" % link.sess.sid)
    poller = select.poll()
    poller.register(link.sock, select.POLLIN)
    md = node.mdns
    if md is not None and md.full:
        poller.register(md.sock, select.POLLIN)
    now = time.ticks_ms()
    # Drivers with a poll(node, now) -> ms method, each with the tick it is next due.
    timers = [[d, now] for d in node.drivers if hasattr(d, "poll")]
    find_at = sample_at = tick_at = now
    report_at = time.ticks_add(now, node._period())
    announce_at = time.ticks_add(now, 1000)
    awake_until = time.ticks_add(now, c["sleep"].get("awake_ms", 8000))
    sample_ms = c["report"]["sample_ms"]
    tick_ms = c["report"].get("tick_ms", _TICK_MS)
    reported = False
    while True:
        now = time.ticks_ms()
        for t in timers:
            if time.ticks_diff(now, t[1]) >= 0:
                try:
                    t[1] = time.ticks_add(now, t[0].poll(node, now))
                except OSError as e:
                    node._fault(t[0], e)
                    t[1] = time.ticks_add(now, 1000)
        if time.ticks_diff(now, tick_at) >= 0:
            tick_at = time.ticks_add(now, tick_ms)
            wdt.feed()
            if link.gw is None and time.ticks_diff(now, find_at) >= 0:
                from . import mdns

                found = mdns.find_gateway(ip)
                if found:
                    link.gw = hal.addr(found[0], found[1])
                else:
                    find_at = time.ticks_add(now, link.backoff)
                    link.backoff = min(link.backoff * 2, 60000)
            link.tick(now)
            if node.ota_at is not None and time.ticks_diff(now, node.ota_at) >= 0:
                _ota(node).due(node)
            if node.flag or time.ticks_diff(now, sample_at) >= 0:
                periodic = time.ticks_diff(now, report_at) >= 0
                if periodic:
                    report_at = time.ticks_add(now, node._period())
                node.flag = False
                sample_at = time.ticks_add(now, sample_ms)
                if node.sample(periodic):
                    reported = True
            if md is not None and time.ticks_diff(now, announce_at) >= 0:
                # RFC 6762 8.3: a second announcement after a second; a responder that
                # cannot answer queries repeats before half its records' TTL runs out.
                md.announce()
                announce_at = time.ticks_add(now, 1 << 29 if md.full else 50000)
            if sleepy and (
                (reported and link.online and not link.pending.items and not link.buf)
                or time.ticks_diff(now, awake_until) >= 0
            ):
                link.rtc.save(link)
                ms = c["sleep"].get("interval", 300) * 1000
                node.log("deep sleep for %d s" % (ms // 1000))
                hal.deepsleep(ms)
        wait = time.ticks_diff(tick_at, now)
        for t in timers:
            wait = min(wait, time.ticks_diff(t[1], now))
        for ev in poller.poll(max(0, wait)):
            sock = ev[0]
            if md is not None and sock is md.sock:
                md.poll()
                continue
            try:
                data, src = sock.recvfrom(_RX_MAX)
            except (OSError, MemoryError):
                node.faults += 1  # MemoryError: no free run that long; the datagram waits
                gc.collect()
                continue
            link.handle(data, src)
