"""bench/ble_adv.py --quick: bytes per advertisement from the real codec against BTHome v2,
and the gateway's scanner path against a reference from the same run; figures are sane,
never judged against time goals (the machine is shared)."""

from __future__ import annotations

import pytest
from benchrun import run_quick

REQUIRED = ("adv_bytes_1", "adv_bytes_2", "adv_bytes_3", "bthome_bytes_1", "bthome_bytes_2",
            "bthome_bytes_3", "scanner_adv_per_s", "reference_adv_per_s", "ratio")  # fmt: skip


def test_ble_adv_quick_reports_every_figure():
    result, _ = run_quick("ble_adv.py", timeout=120, min_lines=5)
    for key in REQUIRED:
        assert key in result, key
    # SPEC 13 and the BTHome v2 format, exactly: one to three readings fit 31 bytes.
    assert [result[f"adv_bytes_{n}"] for n in (1, 2, 3)] == [24, 28, 31]
    assert [result[f"bthome_bytes_{n}"] for n in (1, 2, 3)] == [19, 22, 24]
    # BTHome as our node sends it (no Flags: 3 bytes less; a packet id: 2 more).
    assert [result[f"adv_bytes_bthome_{n}"] for n in (1, 2, 3)] == [18, 21, 23]
    # Every advertisement went through bleak's callback into the state path, none refused.
    assert result["complete"] and result["accepted"] == result["advertisements"]
    assert not result["dropped"]
    assert result["scanner_adv_per_s"] > 0 and result["reference_adv_per_s"] > 0
    assert result["ratio"] == pytest.approx(
        result["scanner_adv_per_s"] / result["reference_adv_per_s"], rel=0.01
    )
