"""Every device type is found on the network: python-zeroconf browses and resolves real boards.

One board of each type (tools/board.py, .mpy, -X heapsize=110k) runs its full mDNS
responder ({"mdns": "full"}: each binds 5353 with SO_REUSEADDR) inside a network namespace
that the test creates and deletes (lo up, multicast on, a route for 224.0.0.0/4): nothing
reaches the machine's own network. The pytest process stays in its own namespace; the
nodes run as `ip netns exec NS micropython ...` (Board(prefix=...)) and the browser, this
file run as a script under CPython, the same way:

    python tests/test_node_discovery.py browse COUNT SECONDS

It browses _kithnet._udp.local. on 127.0.0.1 (AsyncServiceBrowser), resolves every service
it sees, prints "RESOLVED {json}" for each, and "DONE" once it has COUNT of them or its
time is up.

The simulated world of each board: Board serves it from this process (a WorldServer on
127.0.0.1) and writes its address to BOARD/.world; a node in the namespace cannot reach the
root namespace's loopback. So the test opens each board's WorldServer socket inside the
namespace: a short-lived thread of this process enters the namespace (setns(2) acts on the
calling thread only), creates the WorldServer there, and hands it to the Board as
`board.server` before start(); Board then writes that address to .world as usual. The world
stays in this process (a test could still drive it), only its socket lives in the
namespace. The nodes are given a gateway on an unused port, so they need none.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from kithnet.tools import board as B
from kithnet.tools.world import WorldServer
from netns import setns_thread, wait_running

ROOT = Path(__file__).resolve().parent.parent
SERVICE = "_kithnet._udp.local."
WAIT = 30  # bound of each wait, in seconds


# --- the CPython side, run inside the namespace as `python tests/test_node_discovery.py` ---


def _say(*words) -> None:
    print(*words, flush=True)


async def _browse(count: int, limit: float) -> None:
    from zeroconf import ServiceStateChange
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

    aiozc = AsyncZeroconf(interfaces=["127.0.0.1"])
    resolved: dict[str, dict] = {}
    tasks: set[asyncio.Task] = set()
    done = asyncio.Event()

    async def resolve(name: str) -> None:
        info = AsyncServiceInfo(SERVICE, name)
        for _ in range(3):
            if await info.async_request(aiozc.zeroconf, 3000):
                break
        out = {
            "name": name,
            "ok": bool(info.port and info.decoded_properties),
            "port": info.port,
            "addresses": info.parsed_addresses(),
            "server": info.server,
            "properties": info.decoded_properties,
        }
        if out["ok"] and name not in resolved:
            resolved[name] = out
            _say("RESOLVED", json.dumps(out))
            if len(resolved) >= count:
                done.set()

    def on_change(zeroconf, service_type, name, state_change) -> None:
        _say("EVENT", state_change.name, name)
        if state_change is ServiceStateChange.Added:
            task = asyncio.ensure_future(resolve(name))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    browser = AsyncServiceBrowser(aiozc.zeroconf, [SERVICE], handlers=[on_change])
    _say("BROWSING")
    try:
        await asyncio.wait_for(done.wait(), limit)
    except TimeoutError:
        pass
    await browser.async_cancel()
    for task in list(tasks):
        task.cancel()
    await aiozc.async_close()
    _say("DONE", len(resolved))


# --- the test ---


def _firmware_version() -> str:
    text = (ROOT / "firmware" / "node" / "runtime.py").read_text()
    return re.search(r'^FIRMWARE = "([^"]+)"', text, re.M).group(1)


def test_zeroconf_discovers_every_device_type(netns, tmp_path):
    ns = netns["name"]
    expected = {}
    lib = None  # lib/ is the same on every board: compiled by mpy-cross once (~4 s)
    for i, kind in enumerate(B.TYPES):
        node_id = bytes([0xD1, 0x5C, 0, 0, 0, 0, 0, i + 1])
        name = f"Discovery {kind}"
        cfg = B.make_board(
            tmp_path / kind, kind, name, node_id=node_id, key=bytes(16),
            gateway=("127.0.0.1", 47999), ip="127.0.0.1", port=47811 + i,
            mpy=lib is None, overrides={"mdns": "full", "sleep": {}}, plan=False,
        )  # fmt: skip
        if lib is None:
            lib = tmp_path / kind / "lib"
        else:
            shutil.rmtree(tmp_path / kind / "lib")
            shutil.copytree(lib, tmp_path / kind / "lib")
        B.plan_boot(tmp_path / kind)
        b = B.Board(tmp_path / kind, prefix=["ip", "netns", "exec", ns], restart=False)
        b.kind = kind
        netns["boards"].append(b)
        # The world's socket in the namespace, where the node can reach it.
        b.server = setns_thread(ns, lambda b=b: WorldServer(b.world))
        b.start()
        expected[f"{name}.{SERVICE}"] = {
            "port": cfg["port"],
            "addresses": ["127.0.0.1"],
            "server": f"kn-{node_id.hex()}.local.",
            "properties": {
                "id": node_id.hex(),
                "md": cfg.get("model", f"kithnet-{kind}"),
                "fw": _firmware_version(),
                "pv": "1",
                "sl": "0",
                "ty": kind,
            },
        }
    for b in netns["boards"]:
        wait_running(b)
        assert "mDNS unavailable" not in b.console(), b.console()[-2000:]

    # Started after the nodes' announcements: it finds them by asking, as a gateway does.
    browser = subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, __file__, "browse", str(len(B.TYPES)),
         str(WAIT)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    netns["procs"].append(browser)
    try:
        out, err = browser.communicate(timeout=WAIT + 15)
    except subprocess.TimeoutExpired:
        browser.kill()
        out, err = browser.communicate(timeout=10)
    consoles = "\n".join(f"--- {b.kind}\n{b.console()[-1500:]}" for b in netns["boards"])
    assert browser.returncode == 0, out + err + consoles
    found = {}
    for line in out.splitlines():
        if line.startswith("RESOLVED "):
            info = json.loads(line[len("RESOLVED ") :])
            found[info.pop("name")] = info
    assert set(found) == set(expected), out + err + consoles
    for name, want in expected.items():
        got = found[name]
        got.pop("ok")
        assert got == want, name

    for b in netns["boards"]:
        assert b.proc.poll() is None, b.console()[-2000:]  # still running
        assert "no world server" not in b.console(), b.console()[-2000:]
        assert b.server is not None and b.server.requests > 0  # the world reached the node


if __name__ == "__main__":
    if sys.argv[1:2] == ["browse"]:
        asyncio.run(_browse(int(sys.argv[2]), float(sys.argv[3])))
    else:
        sys.exit(f"usage: {sys.argv[0]} browse COUNT SECONDS")
