"""bench/wire_size.py --quick: real frames, sizes against the goals; times are not judged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import micropython_path

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = (
    "report_2_readings_bytes",
    "esphome_noise_2_readings_bytes",
    "bthome_2_readings_bytes",
    "json_mqtt_2_readings_bytes",
    "seal_open_us_micropython",
    "seal_open_us_cpython",
)


def test_wire_size_quick_meets_the_size_goals():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "wire_size.py"), "--quick",
         "--micropython", micropython_path()],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) > 10, "a table comes before the JSON line"
    result = json.loads(lines[-1])

    for key in REQUIRED:
        assert key in result, key
    # Times are reported, never judged: only that they are numbers.
    assert isinstance(result["seal_open_us_micropython"], (int, float))
    assert isinstance(result["seal_open_us_cpython"], (int, float))

    # The goals of the issue.
    assert result["report_2_readings_bytes"] <= 28
    assert result["meets_28_byte_goal"] is True
    assert result["all_fit_udp"] is True
    assert result["broadcast_fit_ble"] is True
    assert max(result["per_type_max_frame_bytes"].values()) <= result["udp_limit_bytes"]

    # The peers, computed from their formats: ESPHome 10 B protobuf + 23 B per message.
    assert result["esphome_protobuf_bytes"] == 10
    assert result["esphome_noise_overhead_bytes"] == 23
    assert result["esphome_noise_2_readings_bytes"] == 66
    assert result["bthome_2_readings_bytes"] == 22
    assert result["json_mqtt_2_readings_bytes"] == 68

    # Every message type of the protocol appears, and both interpreters agree on the bytes.
    assert len(result["per_type_max_frame_bytes"]) == 18
    assert result["micropython_frame_matches_cpython"] is True
    assert result["portable_frame_matches_fast"] is True
    assert result["ble_adv_bytes_2"] <= 31
