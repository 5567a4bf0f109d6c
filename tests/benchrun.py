"""A benchmark run as the tests run each one: `python bench/SCRIPT --quick`, its last line
the JSON object of its figures (tests/test_bench_*.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_quick(script: str, *args: str, timeout: float, min_lines: int) -> tuple[dict, str]:
    """The figures and the whole output; it must exit 0 and print more than min_lines lines
    (its tables come before the JSON line)."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), "--quick", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) > min_lines, "the tables come before the JSON line:\n" + proc.stdout
    result = json.loads(lines[-1])
    assert isinstance(result, dict), lines[-1]
    return result, proc.stdout
