"""Packaging: one `kithnet` console script, and nothing bare installed into site-packages."""

from __future__ import annotations

import os
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
        "kithnet/gateway/web/index.html",  # the dashboard
        "kithnet/gateway/web/app.js",
        "kithnet/gateway/web/style.css",
    ):
        assert path in names, path
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry).decode()
    assert "kithnet = kithnet.cli:main" in text
    # The firmware rides along: an installed wheel (no checkout) makes the same board.
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    make = (
        "import sys; from pathlib import Path; from kithnet.tools import board as B; "
        "B.make_board(Path(sys.argv[1]), 'sensor', 'Wheel sensor', node_id=bytes(8), "
        "key=bytes(16), overrides={'mdns': 'off'}); print(B.FIRMWARE)"
    )
    site = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}  # -S: not the checkout's
    for where, flags, env, firmware in (
        ("site", ["-S"], site, tmp_path / "site" / "kithnet" / "firmware"),
        ("checkout", [], dict(os.environ), ROOT / "firmware"),  # the editable install
    ):
        out = subprocess.run(
            [sys.executable, *flags, "-c", make, str(tmp_path / where / "board")],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == str(firmware)
    files = {
        where: {
            p.relative_to(tmp_path / where / "board"): p.read_bytes()
            for p in (tmp_path / where / "board").rglob("*")
            if p.is_file()
        }
        for where in ("site", "checkout")
    }
    assert Path("lib/node/runtime.mpy") in files["site"] and Path("main.py") in files["site"]
    assert files["site"] == files["checkout"]


def test_console_script_reports_version():
    exe = Path(sys.executable).with_name("kithnet")
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("kithnet ")
