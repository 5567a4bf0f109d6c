"""Network namespaces for tests that use multicast (DNS-SD) or need hosts of their own.

Every namespace is made by the test that uses it and deleted after: lo up, multicast on,
a route for 224.0.0.0/4 on lo (testing-recipes.md). Nothing reaches the machine's own
network. A process joins one with `ip netns exec NS ...`; a thread of this process with
setns_thread (setns(2) acts on the calling thread only), and every socket it opens stays
in the namespace for good.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

WAIT = 30  # bound of each wait, in seconds
CLONE_NEWNET = 0x40000000


def enter(ns: str) -> None:
    """Move the calling thread into network namespace ns."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({ns}): {os.strerror(err)}")
    finally:
        os.close(fd)


def setns_thread(ns: str, fn):
    """fn() run by a thread of this process that first entered network namespace ns; its
    result (sockets it opens stay in ns for good)."""
    out: dict = {}

    def run() -> None:
        try:
            enter(ns)
            out["value"] = fn()
        except BaseException as e:
            out["error"] = e

    t = threading.Thread(target=run, name=f"setns-{ns}")
    t.start()
    t.join(WAIT)
    if "error" in out:
        raise out["error"]
    if "value" not in out:
        raise TimeoutError(f"nothing made in {ns}")
    return out["value"]


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@contextmanager
def namespace(prefix: str = "kn-", multicast: bool = True) -> Iterator[str]:
    """A new namespace's name, deleted after the block (the test skips without root): lo
    up and, with multicast, multicast on with a route for 224.0.0.0/4 on lo."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (the tests run as root here and in CI)")
    name = prefix + uuid.uuid4().hex[:8]
    ip("netns", "add", name)
    try:
        ip("-n", name, "link", "set", "lo", "up")
        if multicast:
            ip("-n", name, "link", "set", "lo", "multicast", "on")
            ip("-n", name, "route", "add", "224.0.0.0/4", "dev", "lo")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


@pytest.fixture
def netns():
    with namespace() as name:
        state = {"name": name, "boards": [], "procs": []}
        try:
            yield state
        finally:
            for b in state["boards"]:
                b.stop()
            for p in state["procs"]:
                if p.poll() is None:
                    p.kill()
                    p.wait(10)


def wait_running(b, timeout: float = WAIT) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if "running at" in b.console():
            return
        if b.proc is not None and b.proc.poll() is not None:
            pytest.fail(f"{b.kind} node stopped ({b.proc.returncode}):\n{b.console()[-3000:]}")
        time.sleep(0.05)
    pytest.fail(f"{b.kind} node did not boot within {timeout} s:\n{b.console()[-3000:]}")
