"""bench/node_footprint.py --quick: every device type measured, as .mpy and as .py sources.

Real boards under the real `micropython`; the figures are reported, not judged: times are
only checked to be numbers, heap figures to be positive numbers. A `.py` board that does
not boot at 110k must say so, with the smallest heap it boots at.
"""

from __future__ import annotations

import pytest
from benchrun import run_quick
from kithnet.tools.board import TYPES

HEAP_KEYS = ("heap_free_after_boot_bytes", "heap_free_steady_bytes")
TIME_KEYS = ("boot_to_first_report_ms", "cpu_us_per_report")


@pytest.fixture(scope="module")
def result():
    return run_quick("node_footprint.py", timeout=180, min_lines=len(TYPES))


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _check_figures(where: str, d: dict) -> None:
    for key in (*HEAP_KEYS, *TIME_KEYS):
        assert key in d, f"{where}: {key} missing"
    problems = {k: d.get(k) for k in ("steady_error", "cpu") if k in d}
    for key in HEAP_KEYS:
        assert _is_number(d[key]) and d[key] > 0, f"{where}: {key}={d[key]!r} {problems}"
    for key in TIME_KEYS:  # never judged: machines differ
        assert _is_number(d[key]), f"{where}: {key}={d[key]!r} {problems}"


def test_quick_run_reports_every_type(result):
    doc, _ = result
    assert doc["heap"] == "110k"
    assert doc["quick"] is True
    for kind in TYPES:
        assert kind in doc, kind


@pytest.mark.parametrize("kind", TYPES)
def test_mpy_board_figures(result, kind):
    doc, _ = result
    d = doc[kind]
    assert d["boots"] is True, f"{kind} .mpy does not boot at 110k: {d.get('error')}"
    _check_figures(f"{kind} mpy", d)


@pytest.mark.parametrize("kind", TYPES)
def test_py_board_figures_or_honest_failure(result, kind):
    doc, table = result
    py = doc[kind]["py"]
    if py["boots"]:
        _check_figures(f"{kind} py", py)
        return
    # Not booting at 110k is recorded with its reason and the smallest heap that works.
    assert py["error"], py
    assert py["min_heap"] in ("128k", "160k", "192k", "256k"), py
    assert py["at_min_heap"]["heap"] == py["min_heap"]
    _check_figures(f"{kind} py at {py['min_heap']}", py["at_min_heap"])
    assert any(
        line.startswith(kind) and " py " in line and " no " in line for line in table.splitlines()
    ), "the table shows the failure too"
