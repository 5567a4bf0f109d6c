"""`kithnet demo`: a real MicroPython node and the CPython peer, over loopback UDP."""

from __future__ import annotations

import subprocess
import sys


def test_demo_runs_handshake_reports_and_commands():
    out = subprocess.run(
        [sys.executable, "-m", "kithnet.cli", "demo", "--seconds", "7"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "the gateway is not built yet" in text
    assert "confirmed: the node holds its key" in text
    assert "peer: report" in text and "temperature" in text and "humidity" in text
    assert "node: switch -> True" in text
    assert "peer: result for" in text and "code 0, switch True" in text
    assert "dropped a frame" not in text
