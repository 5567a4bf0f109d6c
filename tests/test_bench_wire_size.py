"""bench/wire_size.py --quick: real frames, sizes against the goals; times are not judged."""

from __future__ import annotations

from benchrun import run_quick
from conftest import micropython_path

REQUIRED = (
    "report_2_readings_bytes",
    "esphome_noise_2_readings_bytes",
    "bthome_2_readings_bytes",
    "json_mqtt_2_readings_bytes",
    "seal_open_us_micropython",
    "seal_open_us_cpython",
)


def test_wire_size_quick_meets_the_size_goals():
    result, _ = run_quick(
        "wire_size.py", "--micropython", micropython_path(), timeout=120, min_lines=10
    )

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
