"""bench/ota.py --quick: a real gateway updates a real board; the figures are reported, not
judged: the keys are there, the numbers are numbers, and the ratios are what bytes allow."""

from __future__ import annotations

from benchrun import run_quick


def test_bench_ota_quick():
    r, _ = run_quick("ota.py", timeout=180, min_lines=2)
    for k in ("bundle_bytes", "wire_bytes", "overhead_ratio", "seconds", "transfer_bytes",
              "transfer_overhead_ratio", "transfer_seconds", "chunks"):  # fmt: skip
        assert isinstance(r[k], int | float) and not isinstance(r[k], bool) and r[k] > 0, k
    # Every byte of the bundle crossed once, in chunks of at most 480 bytes, with headers.
    # The relay knows a chunk by its length (over CHUNK_MIN): a last, short one is not
    # counted, so one chunk more may be needed to cover the bundle.
    assert (r["chunks"] + 1) * 480 >= r["bundle_bytes"]
    assert r["wire_bytes"] >= r["transfer_bytes"] > r["bundle_bytes"]
    assert r["overhead_ratio"] == round(r["wire_bytes"] / r["bundle_bytes"], 3)
