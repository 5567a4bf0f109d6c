"""Ports and processes of this machine, as tests look them up."""

from __future__ import annotations

import os
import socket
from pathlib import Path


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free on 127.0.0.1 (TCP, or UDP with SOCK_DGRAM): the kernel's pick."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes_under(root: Path) -> list[str]:
    """Processes whose working directory is under root, with their command lines (a board
    runs `micropython main.py` in its own directory, so no command line names root)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = os.readlink(proc / "cwd")
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cwd == str(root) or cwd.startswith(f"{root}/"):
            found.append(f"{proc.name} {cmd} (in {cwd})")
    return found
