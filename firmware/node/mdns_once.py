# The parts of node.mdns that run once: building a responder's records, and the one-shot
# DNS-SD query for the gateway (RFC 6762 section 5.1). mdns imports this module for the
# call and drops it after, so that its code costs no heap in steady state.
# MicroPython subset.

import select
import struct
import time

from .mdns import TTL, _eq, _ip4, _mc, _skip, _sock

# protocol.discovery.NODE_SERVICE and GATEWAY_SERVICE (a test holds them equal):
# importing protocol.discovery on the node would cost 5 KB of heap.
NODE = "_kithnet._udp.local"
GW = "_kithnet-gw._udp.local"


def _enc(s):
    # "a.b.local" -> wire-format name
    b = b""
    for x in s.split("."):
        if x:
            x = x.encode()
            b += bytes((len(x),)) + x
    return b + b"\x00"


def _rr(name, ty, cls, rd):
    return name + struct.pack("!HHIH", ty, cls, TTL, len(rd)) + rd


def records(hostname, ip, port, txt, instance):
    # (_services PTR, PTR, SRV, TXT, A) in wire format; cache-flush bit on the unique ones
    st = _enc(NODE)
    while len(instance.encode()) > 63:  # a label holds 63 bytes; cut whole characters
        instance = instance[:-1]
    inst = instance.encode()
    inst = bytes((len(inst),)) + inst + st
    host = _enc(hostname + ".local")
    t = b""
    for k in txt:
        k = ("%s=%s" % (k, txt[k])).encode()[:255]
        t += bytes((len(k),)) + k
    return (
        _rr(_enc("_services._dns-sd._udp.local"), 12, 1, st),
        _rr(st, 12, 1, inst),
        _rr(inst, 33, 0x8001, struct.pack("!HHH", 0, 0, port) + host),
        _rr(inst, 16, 0x8001, t or b"\x00"),
        _rr(host, 1, 0x8001, _ip4(ip)),
    )


def find(ip, timeout_ms):
    # the QU question, from an ephemeral port: answered by unicast to that port
    s = _sock(ip, 0, 0)
    try:
        gw = _enc(GW)
        q = struct.pack("!6H", time.ticks_ms() & 0xFFFF, 0, 1, 0, 0, 0) + gw + b"\x00\x0c\x80\x01"
        pl = select.poll()
        pl.register(s, select.POLLIN)
        t0 = time.ticks_ms()
        tx = None
        while True:
            now = time.ticks_ms()
            left = timeout_ms - time.ticks_diff(now, t0)
            if left <= 0:
                return None
            if tx is None or time.ticks_diff(now, tx) >= 1000:
                tx = now
                try:
                    s.sendto(q, _mc())
                except OSError:
                    pass
            if pl.poll(min(left, 1000 - time.ticks_diff(now, tx))):
                try:
                    p, a = s.recvfrom(1500)
                    r = _answer(p, gw)
                    if r:
                        if not r[0]:
                            r = (a[0] if type(a) is tuple else _dq(a[4:8]), r[1])
                        return r
                except Exception:
                    pass
    finally:
        s.close()


def _dq(b):
    return "%d.%d.%d.%d" % tuple(b)


def _name(p, o):
    # the name at p[o], uncompressed and lowercased
    n = b""
    lim = o
    while True:
        c = p[o]
        if c >= 0xC0:
            o = (c & 0x3F) << 8 | p[o + 1]
            if o >= lim:
                raise ValueError
            lim = o
            continue
        n += p[o : o + c + 1]
        if not c:
            return n.lower()
        o += c + 1


def _answer(p, gw):
    # (ip or None, port) from a response naming a gateway instance, or None
    if not p[2] & 0x80:
        return None
    o = 12
    for _ in range(p[4] << 8 | p[5]):
        o = _skip(p, o) + 4
    ptr = []
    srv = {}
    a4 = {}
    for _ in range((p[6] << 8 | p[7]) + (p[8] << 8 | p[9]) + (p[10] << 8 | p[11])):
        e = _skip(p, o) + 10
        ty = p[e - 10] << 8 | p[e - 9]
        if ty == 12 and _eq(p, o, gw):
            ptr.append(_name(p, e))
        elif ty == 33:
            srv[_name(p, o)] = (p[e + 4] << 8 | p[e + 5], _name(p, e + 6))
        elif ty == 1:
            a4[_name(p, o)] = _dq(p[e : e + 4])
        o = e + (p[e - 2] << 8 | p[e - 1])
    for n in ptr:
        if n in srv:
            return (a4.get(srv[n][1]), srv[n][0])
    return None
