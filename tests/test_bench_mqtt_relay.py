"""bench/mqtt_relay.py --quick: a real gateway, a real fleet, a real mosquitto; figures are
sane and consistent, never judged against time goals (the machine is shared)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from benchrun import run_quick

REQUIRED = ("client_ceiling_per_s", "relay_per_s", "ratio", "p50_ms", "p99_ms")


@pytest.mark.skipif(
    not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()),
    reason="mosquitto is not installed (make test installs it)",
)
def test_mqtt_relay_quick_reports_every_figure():
    result, _ = run_quick("mqtt_relay.py", timeout=180, min_lines=5)
    for key in REQUIRED:
        assert isinstance(result[key], int | float) and result[key] > 0, key
    assert result["p50_ms"] <= result["p99_ms"]
    assert result["ratio"] == pytest.approx(
        result["relay_per_s"] / result["client_ceiling_per_s"], rel=0.01
    )
    assert result["nodes"] == 300  # every fleet node got a session
    # Every latency marker reached the subscriber, and nothing was dropped on the way.
    assert result["latency_samples"] > 0 and result["latency_lost"] == 0
    assert result["mqtt_dropped"] == 0
    assert len(result["steps"]) >= 2 and all(s["relay_per_s"] > 0 for s in result["steps"])
    # Each step ends with the gateway's queue for MQTT drained (relayed and acknowledged).
    assert all(s["published"] > 0 and s["drain_s"] >= 0 for s in result["steps"])
