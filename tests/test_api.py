"""The gateway's HTTP/WebSocket API against the real Gateway and nodes speaking the real
protocol over UDP.

The gateway runs on an event loop of its own thread, so that tests (and the CLI's own
asyncio.run in test_cli.py) reach it from outside, as any client does. A node is played
by `ProtoNode`: the node's side of kithnet.protocol in CPython (what firmware/ does on a
board), so a test decides exactly what it reports and how it answers commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kithnet.gateway import api, config, openapi
from kithnet.gateway.service import Gateway
from kithnet.protocol import errors, frame, model, session
from kithnet.protocol import messages as M

KEY = bytes(range(16))
CAPS = {1: model.SWITCH, 2: model.POWER, 3: model.SETPOINT, 4: model.HVAC_MODE}


# -- harness -------------------------------------------------------------------------------


class Running:
    """A real Gateway (UDP, SQLite, HTTP API) on its own event-loop thread."""

    def __init__(self, data: Path, **overrides: Any) -> None:
        cfg = config.load(
            None,
            {
                "data": str(data), "udp_host": "127.0.0.1", "udp_port": 0,
                "http_host": "127.0.0.1", "http_port": 0, "discovery": False, **overrides,
            },
        )  # fmt: skip
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.gw = Gateway(cfg)
        self.call(self.gw.start())
        self.url = f"http://127.0.0.1:{self.gw.http_port}"
        self.token = self.gw.token
        self.data = data

    def call(self, coro: Any, timeout: float = 30) -> Any:
        """Run a coroutine on the gateway's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.call(self.gw.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@contextlib.contextmanager
def serve(data: Path, **overrides: Any) -> Iterator[Running]:
    r = Running(data, **overrides)
    try:
        yield r
    finally:
        r.stop()


class ProtoNode:
    """A node's side of the protocol on a thread: hello until adopted, then the handshake,
    reports on demand, and a RESULT for every command (recorded in `commands`)."""

    def __init__(
        self, gw_port: int, *, sleepy: bool = False, name: str = "Test node", key: bytes = KEY
    ) -> None:
        self.node_id = os.urandom(8)
        self.id = self.node_id.hex()
        self.key = key
        self.name = name
        self.sleepy = sleepy
        self.gw = ("127.0.0.1", gw_port)
        self.values: dict[int, Any] = {1: False, 2: 125, 3: 2100, 4: 0}
        self.commands: list[dict] = []
        self.configs: list[dict] = []  # config-set values, as the node got them
        self.refuse: int | None = None  # answer commands with this error code
        self.mute = False  # ignore commands (a node that has gone quiet)
        self.sess: session.Session | None = None
        self._hello: tuple[bytes, dict] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def report(self, values: dict[int, Any]) -> None:
        with self._lock:
            assert self.sess is not None, "no session yet"
            self.values.update(values)
            _, data = self.sess.seal(M.REPORT, {**values, M.DUE: 60})
            self.sock.sendto(data, self.gw)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def _run(self) -> None:
        last_hello = 0.0
        while not self._stop.is_set():
            if self.sess is None and time.monotonic() - last_hello > 0.2:
                body = {
                    M.H_NODE: self.node_id, M.H_NONCE: os.urandom(8),
                    M.H_PROTO: session.PROTOCOL_VERSION, M.H_MODEL: "kithnet-climate",
                    M.H_FW: "0.1.0", M.H_CAPS: CAPS, M.H_NAME: self.name,
                    M.H_SLEEPY: self.sleepy,
                }  # fmt: skip
                msg, data = session.hello_frame(body)
                self._hello = (msg, body)
                self.sock.sendto(data, self.gw)
                last_hello = time.monotonic()
            try:
                data = self.sock.recv(2048)
            except (TimeoutError, OSError):
                continue
            with self._lock:
                try:
                    self._handle(data)
                except errors.ProtocolError:
                    pass

    def _handle(self, data: bytes) -> None:
        p = frame.parse(data)
        if p[0] == frame.PLAIN:
            mtype, body = M.decode(data[p[5] :])
            if mtype == M.CHALLENGE and self._hello is not None:
                self.sess = session.answer(self.key, *self._hello, body)
                _, out = self.sess.seal(M.CONFIRM, {}, True)
                self.sock.sendto(out, self.gw)
            elif mtype == M.ERROR and body.get(M.CODE) == errors.NO_SESSION:
                self.sess = None
            return
        if self.sess is None:
            return
        seq, _, mtype, body, _ = self.sess.open(data, p)
        if mtype not in (M.COMMAND, M.CONFIG_SET) or self.mute:
            return
        answer = self.sess.answer_for(seq)
        if answer is None and mtype == M.CONFIG_SET:  # settings: recorded, taken as they are
            self.configs.append(body[M.CFG_VALUES])
            _, answer = self.sess.seal(M.CONFIG, {M.REF: seq, M.CODE: 0,
                                                  M.CFG_VALUES: body[M.CFG_VALUES]})  # fmt: skip
            self.sess.remember(seq, answer)
        if answer is None:
            self.commands.append(body)
            states = M.states(body)
            if self.refuse is None:
                self.values.update(states)
            result = {M.REF: seq, M.CODE: self.refuse or 0}
            result.update({cid: self.values[cid] for cid in states})
            _, answer = self.sess.seal(M.RESULT, result)
            self.sess.remember(seq, answer)
        self.sock.sendto(answer, self.gw)


def wait(what: Any, timeout: float = 20) -> Any:
    """Poll a condition until it holds; the timeout only keeps a broken test from hanging."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = what()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def http(
    g: Running,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = "default",
    raw: bytes | None = None,
) -> tuple[int, Any, Any]:
    """(status, decoded JSON or None, headers) of one request."""
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {g.token if token == 'default' else token}"
    if raw is not None:
        headers["Content-Type"] = "application/json"

    async def go() -> tuple[int, Any, Any]:
        async with (
            aiohttp.ClientSession() as s,
            s.request(method, g.url + path, json=body, data=raw, headers=headers) as r,
        ):
            text = await r.text()
            return r.status, json.loads(text) if text else None, r.headers

    return asyncio.run(go())


def online_node(g: Running, **kw: Any) -> ProtoNode:
    """A node adopted ahead of time, with its session up and a first report in."""
    node = ProtoNode(g.gw.udp_port, **kw)
    status, dev, _ = http(g, "POST", "/api/devices", {"id": node.id, "key": KEY.hex()})
    assert status == 201, dev
    wait(lambda: node.sess is not None and http(g, "GET", f"/api/devices/{node.id}")[1]["online"])
    node.report({1: False, 2: 125, 3: 2100, 4: 0})
    wait(lambda: "power" in http(g, "GET", f"/api/devices/{node.id}/state")[1])
    return node


@pytest.fixture
def gw(tmp_path):
    with serve(tmp_path, command_timeout_s=2.0) as g:
        yield g


@pytest.fixture
def nodes():
    made: list[ProtoNode] = []

    def make(g: Running, **kw: Any) -> ProtoNode:
        n = online_node(g, **kw)
        made.append(n)
        return n

    yield make
    for n in made:
        n.close()


# -- the description -----------------------------------------------------------------------


def test_openapi_describes_exactly_the_routes():
    app = api.make_app(object(), "t")
    routes: dict[str, set[str]] = {}
    for r in app.router.routes():
        routes.setdefault(r.resource.canonical, set()).add(r.method.lower())
    doc = openapi.OPENAPI
    described = {p: {m for m in ops if m != "parameters"} for p, ops in doc["paths"].items()}
    assert described == routes
    assert doc["openapi"].startswith("3.1")
    # every $ref points at something that exists
    text = json.dumps(doc)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "#/')[1:]}:
        node: Any = doc
        for key in ref.split("/"):
            node = node[key]
    # every path parameter is declared
    for path, ops in doc["paths"].items():
        declared = {p["name"] for p in ops.get("parameters", []) if p["in"] == "path"}
        assert declared == {s[1:-1] for s in path.split("/") if s.startswith("{")}, path


# -- auth ----------------------------------------------------------------------------------

PROTECTED = [
    ("GET", "/api/metrics"),
    ("GET", "/api/devices"),
    ("POST", "/api/devices"),
    ("GET", "/api/devices/x"),
    ("PATCH", "/api/devices/x"),
    ("DELETE", "/api/devices/x"),
    ("GET", "/api/devices/x/state"),
    ("POST", "/api/devices/x/set"),
    ("GET", "/api/devices/x/history/power"),
    ("GET", "/api/pending"),
    ("POST", "/api/pending/0011223344556677/adopt"),
    ("GET", "/api/ws"),
    ("GET", "/api/no-such-thing"),
]


def test_health_and_openapi_need_no_token(gw):
    status, body, _ = http(gw, "GET", "/api/health", token=None)
    assert status == 200
    assert body["status"] == "ok" and body["nodes"] == 0
    status, body, _ = http(gw, "GET", "/api/openapi.json", token=None)
    assert status == 200 and body == json.loads(json.dumps(openapi.OPENAPI))


def test_every_other_route_needs_the_token(gw):
    for method, path in PROTECTED:
        for token in (None, "wrong", ""):
            status, body, headers = http(gw, method, path, {}, token=token)
            assert status == 401, (method, path, token)
            assert body["error"] == "unauthorized" and body["reason"], (method, path)
            assert headers["WWW-Authenticate"] == "Bearer"
    assert http(gw, "GET", "/api/devices", token="x" + gw.token)[0] == 401
    assert http(gw, "GET", "/api/devices", token=gw.token[:-1])[0] == 401
    assert http(gw, "GET", "/api/devices")[0] == 200
    # ?token= is for WebSockets only (browsers cannot set headers there)
    assert http(gw, "GET", f"/api/devices?token={gw.token}", token=None)[0] == 401


def test_websocket_takes_the_token_as_header_or_query(gw):
    async def go() -> list[int]:
        out = []
        async with aiohttp.ClientSession() as s:
            for url, headers in (
                (f"{gw.url}/api/ws?token={gw.token}", {}),
                (f"{gw.url}/api/ws", {"Authorization": f"Bearer {gw.token}"}),
                (f"{gw.url}/api/ws?token=nope", {}),
                (f"{gw.url}/api/ws", {}),
            ):
                try:
                    async with s.ws_connect(url, headers=headers) as ws:
                        out.append(101)
                        await ws.close()
                except aiohttp.WSServerHandshakeError as e:
                    out.append(e.status)
        return out

    assert asyncio.run(go()) == [101, 101, 401, 401]


# -- bad requests --------------------------------------------------------------------------


def test_bad_requests_get_4xx_with_a_reason(gw, nodes):
    node = nodes(gw)
    dev = f"/api/devices/{node.id}"
    cases = [
        # (method, path, json body, raw body, status, words the reason must contain)
        ("POST", f"{dev}/set", None, b"{not json", 400, "JSON"),
        ("POST", f"{dev}/set", None, b"", 400, "JSON"),
        ("POST", f"{dev}/set", [1, 2], None, 400, "object"),
        ("POST", f"{dev}/set", {"value": {"switch": True}}, None, 400, "'value'"),
        ("POST", f"{dev}/set", {}, None, 400, "'values'"),
        ("POST", f"{dev}/set", {"values": {}}, None, 400, "'values'"),
        ("POST", f"{dev}/set", {"values": "on"}, None, 400, "'values'"),
        ("POST", f"{dev}/set", {"values": {"switch": None}}, None, 400, "switch"),
        ("POST", f"{dev}/set", {"values": {"switch": [1]}}, None, 400, "switch"),
        ("POST", f"{dev}/set", {"values": {"switch": 1}, "fade_ms": -1}, None, 400, "fade_ms"),
        ("POST", f"{dev}/set", {"values": {"switch": 1}, "fade_ms": True}, None, 400, "fade_ms"),
        ("POST", f"{dev}/set", {"values": {"switch": 1}, "fade_ms": 1.5}, None, 400, "fade_ms"),
        ("POST", f"{dev}/set", {"values": {"power": 5}}, None, 400, "power"),
        ("POST", f"{dev}/set", {"values": {"setpoint": 99}}, None, 400, "setpoint"),
        ("POST", f"{dev}/set", {"values": {"hvac_mode": "warm"}}, None, 400, "cool"),
        ("POST", f"{dev}/set", {"values": {"switch": "maybe"}}, None, 400, "switch"),
        ("POST", f"{dev}/set", {"values": {"colour": 1}}, None, 404, "colour"),
        ("POST", "/api/devices/nobody/set", {"values": {"switch": True}}, None, 404, "nobody"),
        ("GET", f"{dev}/history/power?limit=0", None, None, 400, "limit"),
        ("GET", f"{dev}/history/power?limit=100001", None, None, 400, "limit"),
        ("GET", f"{dev}/history/power?limit=ten", None, None, 400, "limit"),
        ("GET", f"{dev}/history/power?since=yesterday", None, None, 400, "since"),
        ("GET", f"{dev}/history/power?until=nan", None, None, 400, "until"),
        ("GET", f"{dev}/history/colour", None, None, 404, "colour"),
        ("GET", "/api/devices/nobody/history/power", None, None, 404, "nobody"),
        ("GET", "/api/devices/nobody", None, None, 404, "nobody"),
        ("GET", "/api/devices/nobody/config", None, None, 404, "nobody"),
        ("PATCH", f"{dev}/config", {}, None, 400, "non-empty"),
        ("PATCH", f"{dev}/config", {"intervall": 60}, None, 400, "'intervall'"),
        ("GET", "/api/devices/nobody/state", None, None, 404, "nobody"),
        ("DELETE", "/api/devices/nobody", None, None, 404, "nobody"),
        ("PATCH", dev, {"name": 5}, None, 400, "'name'"),
        ("PATCH", dev, {"name": "  "}, None, 400, "'name'"),
        ("PATCH", dev, {"room": ["a"]}, None, 400, "'room'"),
        ("PATCH", dev, {"colour": "red"}, None, 400, "'colour'"),
        ("PATCH", "/api/devices/nobody", {"name": "x"}, None, 404, "nobody"),
        ("POST", "/api/devices", {"key": KEY.hex()}, None, 400, "'id'"),
        ("POST", "/api/devices", {"id": "12", "key": KEY.hex()}, None, 400, "'id'"),
        ("POST", "/api/devices", {"id": node.id, "key": "abc"}, None, 400, "'key'"),
        ("POST", "/api/devices", {"id": node.id}, None, 400, "'key'"),
        ("POST", "/api/devices", {"id": node.id, "key": KEY.hex(), "x": 1}, None, 400, "'x'"),
        ("POST", "/api/devices", {"id": node.id, "key": 7}, None, 400, "'key'"),
        ("POST", "/api/pending/0011223344556677/adopt", {"key": KEY.hex()}, None, 404, "pending"),
        ("GET", "/api/ws?types=gossip", None, None, 400, "gossip"),
        ("GET", "/api/ws", None, None, 400, "WebSocket"),  # not an upgrade
        ("POST", f"{dev}/set", None, b'{"values": {"setpoint": NaN}}', 400, "NaN"),
        ("POST", f"{dev}/set", None, b'{"values": {"setpoint": 1e999}}', 400, "range"),
        ("POST", f"{dev}/set", None, b'{"values": {"switch": true}} x', 400, "JSON"),
        ("POST", f"{dev}/set", None, b"\xff\xfe", 400, "JSON"),
        ("POST", f"{dev}/set", None, b'{"values": "' + b"x" * 70000 + b'"}', 413, "size"),
        ("GET", "/api/nothing", None, None, 404, "/api/nothing"),
        ("PUT", dev, {"name": "x"}, None, 405, "PUT"),
        ("POST", "/api/health", {}, None, 405, "POST"),
    ]
    for method, path, body, raw, status, words in cases:
        got, answer, headers = http(gw, method, path, body, raw=raw)
        assert got == status, (method, path, body, raw, answer)
        assert set(answer) == {"error", "reason"}, answer
        assert words in answer["reason"], (method, path, answer)
        if status == 405:
            assert "Allow" in headers
    assert http(gw, "GET", dev)[1]["name"] == "Test node"  # nothing above changed it
    assert node.commands == []


def test_command_errors_map_to_409_and_504(gw, nodes):
    node = nodes(gw)
    set_ = f"/api/devices/{node.id}/set"
    node.refuse = errors.BUSY
    status, body, _ = http(gw, "POST", set_, {"values": {"switch": True}})
    assert (status, body["error"]) == (409, "conflict") and "busy" in body["reason"]
    node.refuse, node.mute = None, True
    status, body, _ = http(gw, "POST", set_, {"values": {"switch": True}})
    assert (status, body["error"]) == (504, "timeout") and "did not answer" in body["reason"]


def test_command_to_an_offline_node_is_503(tmp_path):
    with serve(tmp_path) as g:
        node = online_node(g)
        node.close()
    with serve(tmp_path) as g:  # a restarted gateway knows the node, which is not back
        set_ = f"/api/devices/{node.id}/set"
        status, body, _ = http(g, "POST", set_, {"values": {"switch": True}})
        assert (status, body["error"]) == (503, "unavailable") and "offline" in body["reason"]
        status, body, _ = http(g, "GET", f"/api/devices/{node.id}/config")
        assert (status, body["error"]) == (503, "unavailable") and "offline" in body["reason"]


# -- devices, state, commands, history -----------------------------------------------------


def test_pending_node_is_adopted_and_reports(gw):
    node = ProtoNode(gw.gw.udp_port, name="Hall climate")
    try:
        pending = wait(lambda: http(gw, "GET", "/api/pending")[1])
        assert pending[0]["id"] == node.id and pending[0]["model"] == "kithnet-climate"
        path = f"/api/pending/{node.id}/adopt"
        assert http(gw, "POST", path, {"key": "zz" * 16})[0] == 400
        status, dev, headers = http(gw, "POST", path, {"key": KEY.hex(), "room": "hall"})
        assert status == 201 and headers["Location"] == f"/api/devices/{node.id}"
        assert (dev["id"], dev["name"], dev["room"]) == (node.id, "Hall climate", "hall")
        assert http(gw, "GET", "/api/pending")[1] == []
        wait(lambda: node.sess is not None)
        node.report({2: 453, 3: 2150, 4: 2})
        state = wait(lambda: http(gw, "GET", "/api/devices/hall climate/state")[1])
        assert {k: v["value"] for k, v in state.items()} == {
            "power": 45.3,
            "setpoint": 21.5,
            "hvac_mode": "cool",
        }
        devs = http(gw, "GET", "/api/devices")[1]
        assert [d["id"] for d in devs] == [node.id] and devs[0]["online"] is True
        caps = {c["name"]: c for c in devs[0]["capabilities"]}
        assert caps["hvac_mode"]["options"][2] == "cool" and caps["power"]["unit"] == "W"
        health = http(gw, "GET", "/api/health")[1]
        assert (health["nodes"], health["online"]) == (1, 1)
        metrics = http(gw, "GET", "/api/metrics")[1]
        assert metrics["reports_received"] >= 1
        assert all(isinstance(v, int | float) for v in metrics.values())
    finally:
        node.close()


def test_set_applies_and_answers_with_the_nodes_state(gw, nodes):
    node = nodes(gw)
    set_ = f"/api/devices/{node.id}/set"
    status, body, _ = http(gw, "POST", set_, {"values": {"switch": True}})
    assert (status, body) == (200, {"status": "applied", "state": {"switch": True}})
    assert node.commands[-1] == {1: True}
    body = {"values": {"setpoint": 22.5, "hvac_mode": "heat", "4": "cool"}, "fade_ms": 300}
    status, res, _ = http(gw, "POST", set_, body)
    assert status == 200 and res["state"] == {"setpoint": 22.5, "hvac_mode": "cool"}
    assert node.commands[-1] == {3: 2250, 4: 2, M.FADE: 300}
    state = http(gw, "GET", f"/api/devices/{node.id}/state")[1]
    assert state["setpoint"]["value"] == 22.5 and state["switch"]["value"] is True


def test_sleeping_node_gets_a_queued_command_when_it_wakes(gw, nodes):
    node = nodes(gw, sleepy=True)
    # A sleepy node counts as awake for 2 s after its last frame; then it is asleep.
    time.sleep(2.2)
    set_ = f"/api/devices/{node.id}/set"
    status, body, _ = http(gw, "POST", set_, {"values": {"switch": True}})
    assert (status, body) == (202, {"status": "queued"})
    assert node.commands == []
    status, body, _ = http(gw, "GET", f"/api/devices/{node.id}/config")  # asked: it cannot
    assert status == 409 and "asleep" in body["reason"]
    status, body, _ = http(gw, "PATCH", f"/api/devices/{node.id}/config", {"interval": 600})
    assert (status, body) == (202, {"status": "queued"})  # a change waits, like a command
    node.report({2: 130})  # it wakes
    wait(lambda: node.commands and node.configs)
    assert node.commands == [{1: True}] and node.configs == [{"interval": 600}]
    wait(lambda: http(gw, "GET", f"/api/devices/{node.id}/state")[1]["switch"]["value"])


def test_history_is_oldest_first_and_limited(gw, nodes):
    node = nodes(gw)
    for w in (10, 20, 30, 40):
        node.report({2: w * 10})
    path = f"/api/devices/{node.id}/history/power"
    points = wait(lambda: (p := http(gw, "GET", path)[1]) and len(p) == 5 and p)
    assert [p["value"] for p in points] == [12.5, 10, 20, 30, 40]
    assert [p["ts"] for p in points] == sorted(p["ts"] for p in points)
    assert [p["value"] for p in http(gw, "GET", path + "?limit=2")[1]] == [30, 40]
    since = points[2]["ts"]
    got = http(gw, "GET", f"{path}?since={since}")[1]
    assert [p["value"] for p in got] == [20, 30, 40]
    assert http(gw, "GET", f"{path}?until={points[0]['ts'] - 1}")[1] == []


def test_rename_move_and_forget(gw, nodes):
    node = nodes(gw)
    path = f"/api/devices/{node.id}"
    status, dev, _ = http(gw, "PATCH", path, {"name": "Den climate", "room": "den"})
    assert status == 200 and (dev["name"], dev["room"]) == ("Den climate", "den")
    assert http(gw, "GET", "/api/devices/Den%20climate")[1]["id"] == node.id
    assert http(gw, "PATCH", path, {"room": ""})[1]["room"] is None
    assert http(gw, "PATCH", path, {})[1]["name"] == "Den climate"
    status, body, _ = http(gw, "DELETE", "/api/devices/den climate")
    assert (status, body) == (204, None)
    assert http(gw, "GET", path)[0] == 404
    assert http(gw, "GET", "/api/devices")[1] == []


# -- WebSocket -----------------------------------------------------------------------------


async def _next(ws: aiohttp.ClientWebSocketResponse, timeout: float = 20) -> dict:
    msg = await ws.receive(timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)


def test_websocket_delivers_state_changes_in_order(gw, nodes):
    node = nodes(gw)
    n, burst = 200, 25  # bursts: a loopback socket buffer holds a few hundred datagrams

    async def go() -> list[dict]:
        out = []
        async with (
            aiohttp.ClientSession() as s,
            s.ws_connect(f"{gw.url}/api/ws?types=state&token={gw.token}") as ws,
        ):
            for start in range(0, n, burst):
                for i in range(start, start + burst):
                    node.report({2: i})
                out += [await _next(ws) for _ in range(burst)]
        return out

    events = asyncio.run(go())
    assert all(e["type"] == "state" and e["node"] == node.id for e in events)
    assert [e["values"]["power"] for e in events] == [i / 10 for i in range(n)]
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)


def test_websocket_sends_every_kind_of_event(gw, nodes):
    node = nodes(gw)
    newcomers: list[ProtoNode] = []

    async def go() -> list[dict]:
        out = []
        async with (
            aiohttp.ClientSession() as s,
            s.ws_connect(f"{gw.url}/api/ws", headers={"Authorization": f"Bearer {gw.token}"}) as ws,
        ):
            newcomers.append(ProtoNode(gw.gw.udp_port, name="Newcomer"))
            out.append(await _next(ws))  # its hello: pending
            await asyncio.to_thread(
                http, gw, "POST", f"/api/devices/{node.id}/set", {"values": {"switch": True}}
            )
            out.append(await _next(ws))  # the command's result: state
            await asyncio.to_thread(http, gw, "PATCH", f"/api/devices/{node.id}", {"room": "den"})
            out.append(await _next(ws))  # device updated
        return out

    try:
        pending, state, device = asyncio.run(go())
    finally:
        for n in newcomers:
            n.close()
    assert (pending["type"], pending["node"]) == ("pending", newcomers[0].id)
    assert (state["type"], state["node"], state["values"]) == ("state", node.id, {"switch": True})
    assert (device["type"], device["node"], device["action"]) == ("device", node.id, "updated")


def test_websocket_ends_cleanly_both_ways(tmp_path):
    g = Running(tmp_path)
    try:
        subscribers = lambda: len(g.gw.bus._subs)  # noqa: E731 - the bus's own record

        async def client_goes() -> None:
            async with aiohttp.ClientSession() as s:
                ws = await s.ws_connect(f"{g.url}/api/ws?token={g.token}")
                assert subscribers() == 1
                await ws.close()

        asyncio.run(client_goes())
        wait(lambda: subscribers() == 0)

        async def gateway_goes() -> aiohttp.WSMessage:
            async with (
                aiohttp.ClientSession() as s,
                s.ws_connect(f"{g.url}/api/ws?token={g.token}") as ws,
            ):
                await asyncio.to_thread(g.call, g.gw.stop())
                return await ws.receive(20)

        msg = asyncio.run(gateway_goes())
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == aiohttp.WSCloseCode.GOING_AWAY
        assert subscribers() == 0
    finally:
        g.stop()
