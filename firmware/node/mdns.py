# DNS-SD for a kithnet node (RFC 6762 mDNS, RFC 6763 DNS-SD), IPv4 only. MicroPython subset.
#
# Two modes (protocol/SPEC.md, section 12.1):
#  - full=True, full responder: binds UDP 5353 (needs 5353 free: the Unix port, or ESP32
#    firmware built without the built-in responder), joins 224.0.0.251 and answers queries
#    for our PTR, SRV, TXT, A and ANY, and for _services._dns-sd._udp.local PTR: by
#    multicast; by unicast to QU questions (unless our last multicast is older than TTL/4)
#    and to legacy queries from ports other than 5353 (with their id and questions, TTL
#    10). Every standard browser can find the node on browse, at once (the tests check
#    python-zeroconf; Avahi is not tried here).
#  - full=False, announcer (stock ESP32 firmware, where the built-in responder owns 5353):
#    sends unsolicited announcements from an ephemeral port and answers nothing.
#    python-zeroconf (the kithnet gateway) accepts and caches them; strict responders such
#    as Avahi ignore them (RFC 6762 section 6: responses not from port 5353). The runtime
#    repeats announce() before half the TTL runs out (TTL 120 s: every 50 s).
# Neither mode probes or resolves name conflicts: instance and host names carry part of
# the node id, so they are unique by construction.
#
# Responder(hostname, ip, port, txt, instance, full=True); .open() -> the socket (also
# .sock; in full mode, if 5353 cannot be bound, it falls back to announce mode and sets
# .full = False), .announce(), .poll() (when .sock is readable), .goodbye(), .close();
# .dropped counts malformed queries. Sends never raise: announce() and goodbye() return
# False when the send failed (e.g. ENOBUFS, no network yet).
# find_gateway(ip, timeout_ms=2000) -> (ip, port) or None: a one-shot query from an
# ephemeral port, answered by unicast (RFC 6762 section 5.1); blocking.
#
# Memory: code that runs once (building the records, the gateway query) lives in
# mdns_once.py, imported for the call and dropped after it. Replies are written into one
# buffer sized for all our records and queries are parsed in place: per packet, only the
# received packet and a small memoryview are allocated (a legacy unicast reply is built
# by concatenation, rare). Not done: known-answer suppression, the 20-120 ms delay before
# answering shared records, probing; answers repeat what a browser already knows.

import gc
import socket
import struct
import sys
import time

TTL = 120


def _ip4(ip):
    return bytes(int(x) for x in ip.split("."))


def _mc():
    return socket.getaddrinfo("224.0.0.251", 5353)[0][-1]


def _sock(ip, port, join):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(socket.getaddrinfo("0.0.0.0", port)[0][-1])
        if join:
            s.setsockopt(0, socket.IP_ADD_MEMBERSHIP, _ip4("224.0.0.251") + _ip4(ip))
        if sys.platform == "linux":
            # IP_MULTICAST_IF (send on ip's interface), IP_MULTICAST_TTL 255 (RFC 6762 11)
            s.setsockopt(0, 32, _ip4(ip))
            s.setsockopt(0, 33, 255)
        s.setblocking(False)
    except Exception:
        s.close()
        raise
    return s


def _skip(p, o):
    # offset after the name at p[o] (pointers are not followed)
    while True:
        n = p[o]
        if n >= 0xC0:
            return o + 2
        if not n:
            return o + 1
        if n > 63:
            raise ValueError
        o += n + 1


def _eq(p, o, nm):
    # Is the name at p[o] (maybe compressed) the uncompressed name at the start of nm?
    # ASCII case-insensitive; allocates nothing. Each pointer must go below the previous
    # target (or the name's start), so loops end; bad data raises IndexError/ValueError.
    i = 0
    lim = o
    while True:
        n = p[o]
        if n >= 0xC0:
            o = (n & 0x3F) << 8 | p[o + 1]
            if o >= lim:
                raise ValueError
            lim = o
            continue
        if n > 63:
            raise ValueError
        if n != nm[i]:
            return False
        if not n:
            return True
        while n:
            n -= 1
            o += 1
            i += 1
            x = p[o]
            y = nm[i]
            if 64 < x < 91:
                x += 32
            if 64 < y < 91:
                y += 32
            if x != y:
                return False
        o += 1
        i += 1


def _once(f, *a):
    # mdns_once.f(*a), then forget mdns_once so that its code is garbage
    from . import mdns_once as m

    try:
        return getattr(m, f)(*a)
    finally:
        del sys.modules[m.__name__]
        delattr(sys.modules[__name__.rpartition(".")[0]], "mdns_once")


class Responder:
    def __init__(self, hostname, ip, port, txt, instance, full=True):
        self.ip = ip
        self.full = full
        self.sock = None
        self.dropped = 0
        self._mt = None  # ticks_ms of our last multicast
        # record i (wire format, TTL 120) = bit i of an answer mask
        self._r = _once("records", hostname, ip, port, txt, instance)
        self._buf = bytearray(12 + sum(len(r) for r in self._r))

    def open(self):
        # Full mode falls back to announce mode (.full becomes False) when 5353 is taken:
        # by the built-in responder of stock esp32 firmware, or another exclusive owner.
        if self.full:
            try:
                self.sock = _sock(self.ip, 5353, 1)
            except OSError:
                self.full = False
        if not self.full:
            self.sock = _sock(self.ip, 0, 0)
        self._to = _mc()
        return self.sock

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None

    def _tx(self, an, ar, ttl, to=None, p=None, o=0):
        # Send a response: answers = the records of mask an, additionals = mask ar; by
        # multicast, or to `to`. With p, a legacy unicast reply to the query p whose
        # questions end at o (RFC 6762 6.7): its id and questions, no cache-flush bits.
        b = self._buf
        struct.pack_into("!6H", b, 0, 0, 0x8400, 0, 0, 0, 0)
        n = 12
        for h in (7, 11):
            for i in range(5):
                if an >> i & 1:
                    b[h] += 1
                    r = self._r[i]
                    k = len(r)
                    b[n : n + k] = r
                    k = _skip(r, 0) + n + 2  # the class field
                    if p:
                        b[k] &= 0x7F
                    struct.pack_into("!I", b, k + 2, ttl)
                    n += len(r)
            an = ar
        try:
            if p:
                self.sock.sendto(p[:2] + b[2:4] + p[4:6] + b[6:12] + p[12:o] + b[12:n], to)
            else:
                self.sock.sendto(memoryview(b)[:n], to or self._to)
                if not to:
                    self._mt = time.ticks_ms()
            return True
        except OSError:
            return False

    def announce(self):
        # unsolicited response with every record (RFC 6762 section 8.3); False if not sent
        return self._tx(31, 0, TTL)

    def goodbye(self):
        return self._tx(31, 0, 0)

    def poll(self):
        # answer the queries waiting on the socket (at most 8); never raises on bad input
        c = 8
        while c:
            c -= 1
            try:
                p, a = self.sock.recvfrom(1500)
            except OSError:
                return
            except MemoryError:  # no 1.5 KB in one piece now (a long-running heap): the
                gc.collect()  # query stays queued for the next poll; the node goes on
                return
            try:
                if p[2] & 0xF8:  # a response (our own multicasts come back) or not a QUERY
                    continue
                an = 0
                u = 1  # all our questions are QU
                o = 12
                for _ in range(p[4] << 8 | p[5]):
                    e = _skip(p, o)
                    ty = p[e] << 8 | p[e + 1]
                    n = p[e + 2] << 8 | p[e + 3]  # class and QU bit
                    if (n & 0x7FFF) in (1, 255):
                        for i in range(5):
                            r = self._r[i]
                            k = _skip(r, 0)
                            if (ty == 255 or ty == r[k] << 8 | r[k + 1]) and _eq(p, o, r):
                                an |= 1 << i
                                if not n & 0x8000:
                                    u = 0
                    o = e + 4
                if not an:
                    continue
                ar = 30 & ~an  # the other records (not _services) as additionals
                # the source port: recvfrom gives a tuple on esp32, a sockaddr_in on Unix
                if (a[1] if type(a) is tuple else a[2] << 8 | a[3]) != 5353:
                    self._tx(an, ar, 10, a, p, o)
                elif u and self._mt and time.ticks_diff(time.ticks_ms(), self._mt) < TTL * 250:
                    # QU: unicast, unless our last multicast is older than TTL/4 (5.4)
                    self._tx(an, ar, TTL, a)
                else:
                    self._tx(an, ar, TTL)
            except Exception:
                self.dropped += 1


def find_gateway(ip, timeout_ms=2000):
    # (ip, port) of the first gateway instance that answers with an SRV record (ip from
    # its A record, else the sender's address), or None after timeout_ms. Blocks; the
    # query goes out again every second.
    return _once("find", ip, timeout_ms)
