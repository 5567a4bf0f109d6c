"""`kithnet demo`: the real gateway and a real MicroPython board of every type, as `make demo`
runs it (a subprocess, its own temp dir), and the protocol demo (`--protocol`)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from kithnet.tools.board import TYPES
from procs import processes_under


def test_demo_runs_the_gateway_with_every_device_type():
    out = subprocess.run(
        [sys.executable, "-m", "kithnet.cli", "demo", "--seconds", "15", "--no-discovery"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    text = out.stdout
    assert out.returncode == 0, text + out.stderr
    assert "Traceback" not in text + out.stderr, text + out.stderr
    root = Path(re.search(r"^  data +(\S+) \(removed at exit\)$", text, re.M).group(1))
    # What to try is printed with the live address and token.
    url = re.search(r"^  API +(http://127\.0\.0\.1:\d+)$", text, re.M).group(1)
    token = re.search(r"^  token +(\S+)$", text, re.M).group(1)
    assert f"kithnet devices --url {url} --token {token}" in text
    assert f"curl -s -H 'Authorization: Bearer {token}' {url}/api/devices" in text
    assert re.search(rf"^  dashboard {re.escape(url)}/#token={token}$", text, re.M)
    # Every type came online and its readings were printed.
    for kind in TYPES:
        assert re.search(rf"  online \({kind} [0-9a-f]{{16}} at 127\.0\.0\.1:\d+\)", text), kind
    assert re.search(r"Hallway sensor +temperature [\d.]+ °C, humidity", text)
    assert re.search(r"Kitchen plug +switch (on|off), power [\d.]+ W", text)
    assert re.search(r"Bedroom AC +setpoint [\d.]+ °C, hvac_mode", text)
    # The household's plug toggle went through the gateway to the node and back.
    cmd = re.search(r"Kitchen plug +-> command: switch (on|off)$", text, re.M)
    assert cmd, text
    assert re.search(rf"Kitchen plug +<- applied in \d+ ms: switch {cmd.group(1)}$", text, re.M)
    # A clean stop: boards and gateway stopped, the temp dir removed, no board left running.
    assert "stopped cleanly" in text
    assert f"removed {root}" in text and not root.exists()
    assert not processes_under(root)


def test_protocol_demo_runs_handshake_reports_and_commands():
    out = subprocess.run(
        [sys.executable, "-m", "kithnet.cli", "demo", "--protocol", "--seconds", "7"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "confirmed: the node holds its key" in text
    assert "peer: report" in text and "temperature" in text and "humidity" in text
    assert "node: switch -> True" in text
    assert "peer: result for" in text and "code 0, switch True" in text
    assert "dropped a frame" not in text
