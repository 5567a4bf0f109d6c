"""node.mdns (firmware/node/mdns.py): the node's DNS-SD under the real MicroPython.

- Replies byte by byte: tests/mp/mdns_packets.py drives a Responder over a fake socket
  (no network) and python-zeroconf's parser reads what it sent.
- Against python-zeroconf: full responder, announcer, find_gateway, garbage. Each of these
  runs inside a network namespace that the test creates (lo up, multicast on, a route for
  224.0.0.0/4) and deletes: nothing reaches the machine's own network. The pytest process
  itself stays outside, so every process that touches the network is started with
  `ip netns exec`: the MicroPython drivers (tests/mp/mdns_node.py, mdns_find.py) and this
  very file run as a script, which is the CPython side (python-zeroconf, raw sockets):

      python tests/test_node_mdns.py browse | resolve NAME | legacy NAME TYPE
                                   | register | fakegw | garbage

  Helpers print one event per line ("BROWSING", "RESOLVED {json}", ...) and stop at the
  end of their input or after a bounded time.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import queue
import random
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid

import pytest
from conftest import MP_DIR, ROOT, micropython_path, run_micropython
from kithnet.protocol import discovery
from zeroconf import (
    DNSAddress,
    DNSIncoming,
    DNSOutgoing,
    DNSPointer,
    DNSQuestion,
    DNSService,
    DNSText,
    ServiceStateChange,
)
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

NODE_SERVICE = discovery.NODE_SERVICE
GATEWAY_SERVICE = discovery.GATEWAY_SERVICE
T_A, T_PTR, T_TXT, T_AAAA, T_SRV, T_ANY = 1, 12, 16, 28, 33, 255

TXT = {
    "id": "0102030405060708",
    "md": "kn-plug-1",
    "fw": "0.1.0",
    "pv": "1",
    "sl": "0",
    "ty": "plug",
}
NODE = {
    "host": "kn-0102030405060708",
    "ip": "127.0.0.1",
    "port": discovery.NODE_PORT,
    "txt": TXT,
    "name": "Kitchen plug ÄÖÜ 0708",
    "full": True,
}
INSTANCE = NODE["name"] + "." + NODE_SERVICE
HOST = NODE["host"] + ".local."
GW_NAME = "Test gateway." + GATEWAY_SERVICE
GW_ADDR = "10.1.2.3"
WAIT = 30  # bound of every wait for a line from a process, in seconds


# --- the CPython side, run inside a namespace as `python tests/test_node_mdns.py ...` ---


def _qpacket(qid, questions, flags=0):
    """A query; questions = [(name, type, qu)]; names compressed by python-zeroconf.

    python-zeroconf writes the QU bit only in multicast packets, and their id only in
    unicast ones: so id 0 makes a multicast query, any other id a legacy unicast one."""
    out = DNSOutgoing(flags, not qid, qid)
    for name, qtype, qu in questions:
        q = DNSQuestion(name, qtype, 1)
        q.unicast = qu
        out.add_question(q)
    return out.packets()[0]


def _record(r):
    d = {"name": r.name, "type": r.type, "ttl": r.ttl, "flush": r.unique}
    if isinstance(r, DNSPointer):
        d["data"] = r.alias
    elif isinstance(r, DNSService):
        d["data"] = [r.priority, r.weight, r.port, r.server]
    elif isinstance(r, DNSText):
        d["data"] = r.text.hex()
    elif isinstance(r, DNSAddress):
        d["data"] = socket.inet_ntoa(r.address)
    return d


def _message(data):
    """A reply as a dict: id, flags, questions, answers, additionals (JSON-friendly)."""
    m = DNSIncoming(data)
    assert m.valid, data.hex()
    recs = [_record(r) for r in m.answers()]
    assert len(recs) == m.num_answers + m.num_authorities + m.num_additionals, data.hex()
    return {
        "id": m.id,
        "flags": m.flags,
        "questions": [[q.name, q.type] for q in m.questions],
        "answers": recs[: m.num_answers],
        "additionals": recs[m.num_answers + m.num_authorities :],
    }


def _say(*words):
    print(*words, flush=True)


async def _until_eof(limit):
    """Until our stdin ends (the test is done with us) or `limit` seconds pass."""
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def read():
        sys.stdin.read()
        loop.call_soon_threadsafe(done.set)

    threading.Thread(target=read, daemon=True).start()
    try:
        await asyncio.wait_for(done.wait(), limit)
    except TimeoutError:
        pass


async def _resolve(zc, name):
    info = AsyncServiceInfo(NODE_SERVICE, name)
    ok = await info.async_request(zc, 5000)
    return {
        "name": name,
        "ok": ok,
        "port": info.port,
        "addresses": info.parsed_addresses(),
        "server": info.server,
        "properties": info.decoded_properties,
    }


async def _h_browse():
    aiozc = AsyncZeroconf(interfaces=["127.0.0.1"])
    tasks = set()

    async def resolve(name):
        _say("RESOLVED", json.dumps(await _resolve(aiozc.zeroconf, name)))

    def on_change(zeroconf, service_type, name, state_change):
        _say("EVENT", state_change.name, name)
        if state_change is ServiceStateChange.Added:
            task = asyncio.ensure_future(resolve(name))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    browser = AsyncServiceBrowser(aiozc.zeroconf, [NODE_SERVICE], handlers=[on_change])
    _say("BROWSING")
    await _until_eof(120)
    await browser.async_cancel()
    await aiozc.async_close()


async def _h_resolve(name):
    aiozc = AsyncZeroconf(interfaces=["127.0.0.1"])
    _say("RESOLVED", json.dumps(await _resolve(aiozc.zeroconf, name)))
    await aiozc.async_close()


async def _h_register():
    aiozc = AsyncZeroconf(interfaces=["127.0.0.1"])
    info = AsyncServiceInfo(
        GATEWAY_SERVICE,
        GW_NAME,
        port=discovery.GATEWAY_PORT,
        properties={"id": "00000000000000aa", "pv": "1"},
        server="kithnet-gw-test.local.",
        parsed_addresses=[GW_ADDR],
    )
    await (await aiozc.async_register_service(info))
    _say("REGISTERED")
    await _until_eof(120)
    await aiozc.async_unregister_all_services()
    await aiozc.async_close()


def _udp(port=0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", port))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
    return s


MDNS = ("224.0.0.251", 5353)


def _ask(s, packet, qid):
    """Send a query from s's (ephemeral) port; the first reply with our id, as a dict."""
    s.settimeout(3)
    for _ in range(3):
        s.sendto(packet, MDNS)
        try:
            while True:
                data, _src = s.recvfrom(9000)
                if data[:2] == struct.pack("!H", qid):
                    return _message(data)
        except TimeoutError:
            continue
    return None


def _h_legacy(name, qtype):
    with _udp() as s:
        _say("REPLY", json.dumps(_ask(s, _qpacket(0x4B4E, [(name, int(qtype), False)]), 0x4B4E)))


def _h_fakegw():
    """A gateway responder without A records, that answers a query with garbage first."""
    with _udp(5353) as s:
        mreq = socket.inet_aton("224.0.0.251") + socket.inet_aton("127.0.0.1")
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        s.settimeout(WAIT)
        _say("LISTENING")
        while True:
            data, src = s.recvfrom(9000)
            m = DNSIncoming(data)
            if m.is_query() and any(q.name == GATEWAY_SERVICE for q in m.questions):
                break
        _say("QUERY", src[1], [q.name for q in m.questions], m.questions[0].unicast)
        out = DNSOutgoing(0x8400, False, m.id)
        out.add_question(m.questions[0])
        out.add_answer_at_time(
            DNSPointer(GATEWAY_SERVICE, T_PTR, 1, 10, "Fake gw." + GATEWAY_SERVICE), 0
        )
        srv = DNSService("Fake gw." + GATEWAY_SERVICE, T_SRV, 1, 10, 0, 0, 47900, "fake-gw.local.")
        out.add_additional_answer(srv)
        good = out.packets()[0]
        hdr = struct.pack("!6H", m.id, 0x8400, 0, 1, 0, 0)
        for bad in (
            random.Random(7).randbytes(200),
            hdr + b"\xc0\x0c" + struct.pack("!HHIH", T_PTR, 1, 10, 2) + b"\xc0\x0c",  # loop
            good[: len(good) - 5],  # cut inside the SRV record
        ):
            s.sendto(bad, src)
        s.sendto(good, src)
        _say("ANSWERED")


def _h_garbage():
    """Malformed and random packets to the responder, then a query it must still answer."""
    valid = _qpacket(0x4B4E, [(NODE_SERVICE, T_PTR, False)])
    one_q = struct.pack("!6H", 7, 0, 1, 0, 0, 0)
    malformed = (
        [valid[:n] for n in range(len(valid))]
        + [
            one_q + b"\x40" + b"a" * 64 + b"\x00\x00\x0c\x00\x01",  # label of 64
            one_q + b"\xc0\x0c\x00\x0c\x00\x01",  # pointer to itself
            one_q + b"\xc0\x20\x00\x0c\x00\x01" + bytes(20),  # pointer forwards
            struct.pack("!6H", 7, 0, 0xFFFF, 0, 0, 0) + valid[12:],  # 65535 questions, one there
        ]
    )
    rnd = random.Random(1234)
    noise = [rnd.randbytes(rnd.randrange(0, 600)) for _ in range(150)] + [rnd.randbytes(4000)]
    with _udp() as s:
        for i, packet in enumerate(malformed + noise):
            s.sendto(packet, MDNS)
            if i % 16 == 15:
                time.sleep(0.01)  # pacing only: keep well inside the receiver's buffer
        _say("MALFORMED", len(malformed))
        _say("REPLY", json.dumps(_ask(s, valid, 0x4B4E)))


def _h_hold5353():
    """Own UDP 5353 the way the esp32 firmware's built-in responder does, as far as our
    socket (SO_REUSEADDR only) can tell: it cannot bind. SO_REUSEPORT alone still lets
    python-zeroconf (SO_REUSEADDR and SO_REUSEPORT) share the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("", 5353))
        _say("HOLDING")
        sys.stdin.read()


def _helper(argv):
    cmd = argv[0]
    if cmd == "browse":
        asyncio.run(_h_browse())
    elif cmd == "resolve":
        asyncio.run(_h_resolve(argv[1]))
    elif cmd == "register":
        asyncio.run(_h_register())
    elif cmd == "legacy":
        _h_legacy(argv[1], argv[2])
    elif cmd == "fakegw":
        _h_fakegw()
    elif cmd == "garbage":
        _h_garbage()
    elif cmd == "hold5353":
        _h_hold5353()
    else:
        raise SystemExit("unknown helper " + cmd)


# --- pytest side ---


class Proc:
    """A process whose output lines are read by a thread; every wait is bounded."""

    def __init__(self, cmd, label):
        self.label = label
        self.lines = []
        self._q = queue.Queue()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.p = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            env=env,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self._q.put(line.rstrip("\n"))
        self._q.put(None)

    def _fail(self, why):
        output = "\n".join(self.lines)
        return AssertionError(f"{self.label}: {why}; its output:\n{output}")

    def expect(self, prefix, timeout=WAIT):
        """The rest of the next line that starts with prefix."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._q.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise self._fail(f"no {prefix!r} line within {timeout} s") from None
            if line is None:
                self._q.put(None)
                raise self._fail(f"ended (exit {self.p.wait()}) before a {prefix!r} line")
            self.lines.append(line)
            if line.startswith(prefix):
                return line[len(prefix) :].strip()

    def send(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def finish(self, timeout=WAIT):
        """Close its input (helpers and the node driver stop on that); its exit code."""
        if not self.p.stdin.closed:
            try:
                self.p.stdin.close()
            except BrokenPipeError:
                pass
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise self._fail(f"did not stop within {timeout} s") from None

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(10)


class Netns:
    """A network namespace of our own, and the processes started in it."""

    def __init__(self, name, tmp):
        self.name = name
        self.tmp = tmp
        self.procs = []

    def cmd(self, *args):
        return ["ip", "netns", "exec", self.name, *args]

    def mp_cmd(self, script, *args):
        path = os.pathsep.join([str(ROOT), str(ROOT / "firmware"), str(MP_DIR), ".frozen"])
        exe = micropython_path()
        return self.cmd(
            "env", "MICROPYPATH=" + path, exe, "-X", "heapsize=110k", str(script), *args
        )

    def py_cmd(self, *args):
        return self.cmd(sys.executable, __file__, *args)

    def start(self, cmd, label):
        p = Proc(cmd, label)
        self.procs.append(p)
        return p

    def node(self, **cfg):
        path = self.tmp / f"node{len(self.procs)}.json"
        path.write_text(json.dumps(dict(NODE, **cfg)))
        return self.start(self.mp_cmd(MP_DIR / "mdns_node.py", str(path)), "node")

    def helper(self, *args):
        return self.start(self.py_cmd(*args), "helper " + args[0])

    def run(self, cmd, timeout=WAIT):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        assert r.returncode == 0, (cmd, r.stdout, r.stderr)
        return r.stdout

    def udp_ports(self, pid):
        """Local UDP ports of the process pid in this namespace (ss)."""
        out = self.run(self.cmd("ss", "-H", "-uanp"))
        return {
            int(line.split()[3].rsplit(":", 1)[1])
            for line in out.splitlines()
            if f"pid={pid}," in line
        }


@pytest.fixture
def netns(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (the tests run as root here and in CI)")
    name = "kn-mdns-" + uuid.uuid4().hex[:6]
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, timeout=10)
    ns = Netns(name, tmp_path)
    try:
        for args in (
            ["link", "set", "lo", "up"],
            ["link", "set", "lo", "multicast", "on"],
            ["route", "add", "224.0.0.0/4", "dev", "lo"],
        ):
            subprocess.run(["ip", "-n", name, *args], check=True, capture_output=True, timeout=10)
        yield ns
    finally:
        for p in ns.procs:
            p.kill()
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


def _check_resolved(info):
    assert info["ok"], info
    assert info["name"] == INSTANCE
    assert info["port"] == NODE["port"]
    assert info["addresses"] == [NODE["ip"]]
    assert info["server"] == HOST
    assert info["properties"] == TXT


# --- replies, byte by byte (no network) ---


def _txt(hexdata):
    raw = bytes.fromhex(hexdata)
    out, i = {}, 0
    while i < len(raw):
        n = raw[i]
        k, _, v = raw[i + 1 : i + 1 + n].decode().partition("=")
        out[k] = v
        i += 1 + n
    return out


def _mp_packets(tmp, cfg, queries):
    """Run mdns_packets.py; {"ANNOUNCE": .., "GOODBYE": .., "replies": {i: [..] or None}}."""
    job = tmp / "mdns_packets.json"
    job.write_text(json.dumps({"node": cfg, "queries": queries}))
    r = run_micropython(MP_DIR / "mdns_packets.py", str(job))
    assert r.returncode == 0, r.stdout + r.stderr
    out = {"replies": {}}
    for line in r.stdout.splitlines():
        w = line.split()
        if w[0] in ("ANNOUNCE", "GOODBYE"):
            out[w[0]] = (w[1], _message(bytes.fromhex(w[2])))
        elif w[0] == "REPLY":
            out["replies"].setdefault(int(w[1]), []).append((w[2], _message(bytes.fromhex(w[3]))))
        elif w[0] == "NONE":
            out["replies"][int(w[1])] = None
        elif w[0] == "DROPPED":
            out[w[0]] = int(w[1])
    return out


def _kinds(recs):
    return [(r["type"], r["name"]) for r in recs]


ALL = [
    (T_PTR, "_services._dns-sd._udp.local."),
    (T_PTR, NODE_SERVICE),
    (T_SRV, INSTANCE),
    (T_TXT, INSTANCE),
    (T_A, HOST),
]
# (query packet, source port, address style, forget our last multicast, expected reply:
#  None or (MC|UNI, answer kinds, additional kinds))
UPPER = INSTANCE.replace("Kitchen plug", "KITCHEN PLUG")
CASES = [
    (_qpacket(0, [(NODE_SERVICE, T_PTR, False)]), 5353, "tuple", 0, ("MC", ALL[1:2], ALL[2:])),
    (_qpacket(0, [(NODE_SERVICE, T_PTR, True)]), 5353, "raw", 0, ("UNI", ALL[1:2], ALL[2:])),
    (_qpacket(0, [(NODE_SERVICE, T_PTR, True)]), 5353, "raw", 1, ("MC", ALL[1:2], ALL[2:])),
    (_qpacket(0, [(UPPER, T_SRV, False)]), 5353, "raw", 0, ("MC", ALL[2:3], [ALL[1], *ALL[3:]])),
    (
        _qpacket(0, [(INSTANCE, T_TXT, False)]),
        5353,
        "raw",
        0,
        ("MC", ALL[3:4], [*ALL[1:3], ALL[4]]),
    ),
    (_qpacket(0, [(INSTANCE, T_ANY, False)]), 5353, "raw", 0, ("MC", ALL[2:4], [ALL[1], ALL[4]])),
    (_qpacket(0, [(HOST.upper(), T_A, False)]), 5353, "tuple", 0, ("MC", ALL[4:], ALL[1:4])),
    (_qpacket(0, [(HOST, T_AAAA, False)]), 5353, "raw", 0, None),
    (
        _qpacket(0, [("_services._dns-sd._udp.local.", T_PTR, False)]),
        5353,
        "raw",
        0,
        ("MC", ALL[:1], ALL[1:]),
    ),
    (_qpacket(0, [(NODE_SERVICE, T_ANY, False)]), 5353, "raw", 0, ("MC", ALL[1:2], ALL[2:])),
    (_qpacket(0, [("other.local.", T_A, False)]), 5353, "raw", 0, None),
    (_qpacket(0, [(INSTANCE.lower(), T_SRV, False)]), 5353, "raw", 0, None),  # äöü != ÄÖÜ
    (_qpacket(0, [(NODE_SERVICE, T_PTR, False)], flags=0x0800), 5353, "raw", 0, None),  # opcode
    (_qpacket(0, [(NODE_SERVICE, T_PTR, False)])[:-1] + b"\x03", 5353, "raw", 0, None),  # CH
    (_qpacket(0, [("_other._udp.local.", T_PTR, False)]), 5353, "raw", 0, None),
    # two questions, the second compressed; from another host's QM and QU mixed: multicast
    (
        _qpacket(0, [(INSTANCE, T_SRV, True), (INSTANCE, T_TXT, False)]),
        5353,
        "raw",
        0,
        ("MC", ALL[2:4], [ALL[1], ALL[4]]),
    ),
]
LEGACY = [
    (_qpacket(0x1234, [(NODE_SERVICE, T_PTR, False)]), 40000, "tuple", 0),
    (_qpacket(0x4321, [(INSTANCE, T_SRV, False), (INSTANCE, T_TXT, False)]), 40001, "raw", 0),
]
ONE_Q = struct.pack("!6H", 9, 0, 1, 0, 0, 0)
MALFORMED = [
    b"",
    CASES[0][0][:5],
    CASES[0][0][:20],
    ONE_Q + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01",
    ONE_Q + b"\xc0\x0c\x00\x0c\x00\x01",
    ONE_Q + b"\xc0\x20\x00\x0c\x00\x01" + bytes(20),
    struct.pack("!6H", 9, 0, 2, 0, 0, 0) + CASES[0][0][12:],
]


@pytest.fixture(scope="module")
def packets(tmp_path_factory):
    queries = [[q.hex(), port, style, reset] for q, port, style, reset, _ in CASES]
    queries += [[q.hex(), port, style, reset] for q, port, style, reset in LEGACY]
    queries += [[q.hex(), 5353, "raw", 0] for q in MALFORMED]
    return _mp_packets(tmp_path_factory.mktemp("mdns"), NODE, queries)


def test_announce_and_goodbye_carry_every_record(packets):
    for tag, ttl in (("ANNOUNCE", 120), ("GOODBYE", 0)):
        dest, m = packets[tag]
        assert dest == "MC"
        assert (m["id"], m["flags"], m["questions"], m["additionals"]) == (0, 0x8400, [], [])
        assert _kinds(m["answers"]) == ALL
        assert [r["ttl"] for r in m["answers"]] == [ttl] * 5
        assert [r["flush"] for r in m["answers"]] == [False, False, True, True, True]
    ans = packets["ANNOUNCE"][1]["answers"]
    assert ans[0]["data"] == NODE_SERVICE
    assert ans[1]["data"] == INSTANCE
    assert ans[2]["data"] == [0, 0, NODE["port"], HOST]
    assert _txt(ans[3]["data"]) == TXT
    assert ans[4]["data"] == NODE["ip"]


@pytest.mark.parametrize("i", range(len(CASES)))
def test_reply_to_query(packets, i):
    expected = CASES[i][4]
    got = packets["replies"][i]
    if expected is None:
        assert got is None
        return
    assert got is not None and len(got) == 1
    dest, m = got[0]
    assert (dest, _kinds(m["answers"]), _kinds(m["additionals"])) == expected
    assert (m["id"], m["flags"], m["questions"]) == (0, 0x8400, [])
    for r in m["answers"] + m["additionals"]:
        assert r["ttl"] == 120
        assert r["flush"] == (r["type"] != T_PTR)


@pytest.mark.parametrize("j", range(len(LEGACY)))
def test_legacy_unicast_reply(packets, j):
    query = DNSIncoming(LEGACY[j][0])
    got = packets["replies"][len(CASES) + j]
    assert got is not None and len(got) == 1
    dest, m = got[0]
    assert dest == "UNI"
    assert m["id"] == query.id and m["flags"] == 0x8400
    assert m["questions"] == [[q.name, q.type] for q in query.questions]
    kinds = {T_PTR: ALL[1:2], T_SRV: ALL[2:3], T_TXT: ALL[3:4]}
    assert _kinds(m["answers"]) == [k for q in query.questions for k in kinds[q.type]]
    for r in m["answers"] + m["additionals"]:
        assert r["ttl"] == 10 and not r["flush"]


def test_malformed_queries_are_dropped_and_counted(packets):
    first = len(CASES) + len(LEGACY)
    assert [packets["replies"][first + k] for k in range(len(MALFORMED))] == [None] * len(MALFORMED)
    assert packets["DROPPED"] == len(MALFORMED)


def test_long_instance_name_is_cut_at_a_character(tmp_path):
    out = _mp_packets(tmp_path, dict(NODE, name="Ä" * 40), [])
    inst = out["ANNOUNCE"][1]["answers"][1]["data"]
    assert inst == "Ä" * 31 + "." + NODE_SERVICE  # 62 bytes: a label holds 63


def test_service_names_match_protocol_discovery():
    tree = ast.parse((ROOT / "firmware" / "node" / "mdns_once.py").read_text())
    consts = {
        t.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    assert consts["NODE"] + "." == NODE_SERVICE
    assert consts["GW"] + "." == GATEWAY_SERVICE


def test_import_costs_under_6_kb_of_heap(micropython, tmp_path):
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"node": NODE, "queries": []}))
    r = micropython(MP_DIR / "mdns_packets.py", str(job))
    assert r.returncode == 0, r.stdout + r.stderr
    heap = dict(line.split()[1:] for line in r.stdout.splitlines() if line.startswith("HEAP"))
    print(heap)  # shown with -s: import, one Responder, modules loaded after it
    assert int(heap["import"]) < 6 * 1024
    assert heap["modules"] == "node,node.mdns"  # mdns_once dropped after the records


# --- against python-zeroconf, in a namespace ---


def test_full_responder_answers_zeroconf(netns):
    node = netns.node(full=True)
    assert int(node.expect("HEAP")) < 6 * 1024
    assert node.expect("FULL") == "True"
    node.expect("READY")
    assert 5353 in netns.udp_ports(node.p.pid)
    assert node.expect("SENT") == "True"  # the second announcement; after it, only answers
    # A browser started now has seen no announcement: it finds the node by querying.
    browser = netns.helper("browse")
    browser.expect("BROWSING")
    assert browser.expect("EVENT Added") == INSTANCE
    _check_resolved(json.loads(browser.expect("RESOLVED")))
    # A fresh cache, resolving by name: SRV, TXT and A queries answered.
    resolver = netns.helper("resolve", INSTANCE)
    _check_resolved(json.loads(resolver.expect("RESOLVED")))
    assert resolver.finish() == 0
    # Legacy unicast (a query from another port than 5353): answered to that port.
    legacy = netns.helper("legacy", "_services._dns-sd._udp.local.", str(T_PTR))
    m = json.loads(legacy.expect("REPLY"))
    assert m["id"] == 0x4B4E
    assert m["questions"] == [["_services._dns-sd._udp.local.", T_PTR]]
    assert [r["data"] for r in m["answers"]] == [NODE_SERVICE]
    assert legacy.finish() == 0
    # Goodbye: the browser forgets the node.
    node.send("stop")
    assert node.expect("SENT") == "True"
    assert node.expect("BYE") == "0"
    assert browser.expect("EVENT Removed") == INSTANCE
    assert node.finish() == 0
    assert browser.finish() == 0


@pytest.mark.parametrize("how", ["asked", "5353 taken"])
def test_announcer_is_seen_by_zeroconf(netns, how):
    if how == "5353 taken":  # as on stock esp32 firmware: open() falls back to announcing
        netns.helper("hold5353").expect("HOLDING")
    browser = netns.helper("browse")
    browser.expect("BROWSING")
    node = netns.node(full=how != "asked", every=50000)
    assert node.expect("FULL") == "False"
    node.expect("READY")
    ports = netns.udp_ports(node.p.pid)
    assert len(ports) == 1 and 5353 not in ports  # an ephemeral port: 5353 is left alone
    assert browser.expect("EVENT Added") == INSTANCE
    _check_resolved(json.loads(browser.expect("RESOLVED")))
    node.send("stop")
    assert node.expect("BYE") == "0"
    assert browser.expect("EVENT Removed") == INSTANCE
    assert node.finish() == 0
    assert browser.finish() == 0


def _find(netns, timeout_ms):
    out = netns.run(netns.mp_cmd(MP_DIR / "mdns_find.py", "127.0.0.1", str(timeout_ms)))
    lines = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    assert lines["LOADED"] == "node node.mdns", out  # mdns_once dropped after the call
    return json.loads(lines["RESULT"])


def test_find_gateway_registered_with_zeroconf(netns):
    gw = netns.helper("register")
    gw.expect("REGISTERED")
    assert _find(netns, 5000) == [GW_ADDR, discovery.GATEWAY_PORT]
    assert gw.finish() == 0
    assert _find(netns, 300) is None  # nobody answers: None when the time is up


def test_find_gateway_skips_garbage_and_falls_back_to_the_sender(netns):
    gw = netns.helper("fakegw")
    gw.expect("LISTENING")
    assert _find(netns, 5000) == ["127.0.0.1", 47900]  # no A record: the sender's address
    assert int(gw.expect("QUERY").split()[0]) != 5353  # from an ephemeral port
    gw.expect("ANSWERED")
    assert gw.finish() == 0


def test_garbage_does_not_stop_the_responder(netns):
    node = netns.node(full=True)
    node.expect("READY")
    sender = netns.helper("garbage")
    malformed = int(sender.expect("MALFORMED"))
    m = json.loads(sender.expect("REPLY"))  # a query after the garbage is still answered
    assert m is not None and [r["data"] for r in m["answers"]] == [INSTANCE]
    assert sender.finish() == 0
    node.send("stat")
    assert int(node.expect("DROPPED")) >= malformed
    node.send("stop")
    assert int(node.expect("BYE")) >= malformed
    assert node.finish() == 0


if __name__ == "__main__":
    _helper(sys.argv[1:])
