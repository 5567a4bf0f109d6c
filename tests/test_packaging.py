"""Packaging: one `kithnet` console script, and nothing bare installed into site-packages."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_installs_only_under_kithnet(tmp_path):
    subprocess.run(
        [
            sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
            "-q", "-w", str(tmp_path), str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("kithnet-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert tops == {"kithnet", next(t for t in tops if t.endswith(".dist-info"))}
    # The design's folders arrive as subpackages, with the contract beside the code.
    for path in (
        "kithnet/protocol/cbor.py",
        "kithnet/protocol/SPEC.md",
        "kithnet/protocol/kithnet.cddl",
        "kithnet/tools/protocol_demo.py",
        "kithnet/tools/mp_demo_node.py",
    ):
        assert path in names, path
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry).decode()
    assert "kithnet = kithnet.cli:main" in text


def test_console_script_reports_version():
    exe = Path(sys.executable).with_name("kithnet")
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("kithnet ")
