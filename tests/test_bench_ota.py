"""bench/ota.py --quick: a real gateway updates a real board; the figures are reported, not
judged: the keys are there, the numbers are numbers, and the ratios are what bytes allow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_ota_quick():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "ota.py"), "--quick"],
                          cwd=ROOT, capture_output=True, text=True, timeout=180)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) > 2, "a table comes before the JSON line"
    r = json.loads(lines[-1])
    for k in ("bundle_bytes", "wire_bytes", "overhead_ratio", "seconds", "transfer_bytes",
              "transfer_overhead_ratio", "transfer_seconds", "chunks"):  # fmt: skip
        assert isinstance(r[k], int | float) and not isinstance(r[k], bool) and r[k] > 0, k
    # Every byte of the bundle crossed once, in chunks of at most 480 bytes, with headers.
    assert r["chunks"] * 480 >= r["bundle_bytes"]
    assert r["wire_bytes"] >= r["transfer_bytes"] > r["bundle_bytes"]
    assert r["overhead_ratio"] == round(r["wire_bytes"] / r["bundle_bytes"], 3)
