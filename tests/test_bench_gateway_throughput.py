"""bench/gateway_throughput.py --quick: a real gateway, a real fleet; figures are sane,
never judged against time goals (the machine is shared)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from benchrun import run_quick

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from harness import gateway_command  # noqa: E402

REQUIRED = (
    "nodes",
    "reference_per_s",
    "processed_per_s",
    "ratio",
    "p50_ms",
    "p99_ms",
    "rss_bytes_per_node",
)


@pytest.mark.skipif(
    gateway_command() is None,
    reason="`kithnet gateway` does not exist yet (gateway/service.py and the CLI subcommand)",
)
def test_gateway_throughput_quick_reports_every_figure():
    result, _ = run_quick("gateway_throughput.py", timeout=240, min_lines=10)
    for key in REQUIRED:
        assert key in result, key

    assert result["nodes"] == result["nodes_total"] == 1000  # every node got a session
    for key in ("reference_per_s", "processed_per_s", "ratio", "p50_ms", "p99_ms"):
        assert isinstance(result[key], int | float) and result[key] > 0, key
    assert result["p50_ms"] <= result["p99_ms"]
    assert result["ratio"] == pytest.approx(
        result["processed_per_s"] / result["reference_per_s"], rel=0.01
    )
    # Memory: the gateway grew by something, and by less than 1 MB per node.
    assert 0 < result["rss_bytes_per_node"] < 1 << 20
    # Every latency marker sent at 1,000/s was delivered over the WebSocket and matched.
    assert result["latency_samples"] > 0
    assert result["latency_lost"] == 0
    # The ramp ran: at least one step, and a flat-out step at the end.
    assert len(result["steps"]) >= 2 and result["steps"][-1]["fraction"] is None
    assert all(s["processed_per_s"] > 0 for s in result["steps"])
    # The fleet's frames are genuine: the gateway never found one forged, malformed or replayed.
    for why in ("auth", "malformed", "replay", "limit"):
        assert f"dropped_{why}" not in result["gateway_drops"], result["gateway_drops"]
