"""`kithnet flash` and `kithnet node create` end to end.

The board is the MicroPython Unix port behind a pseudo-terminal, driven by mpremote as a
chip on a USB serial port would be (tests/vboard.py); its working directory is its
filesystem. After flashing, that directory is booted (tools/board.Board, the real firmware
under `micropython`) in a network namespace of the test's own, where the real gateway runs
with DNS-SD: the node finds it, and the gateway must know the key flashing gave it.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gwrun import GatewayThread
from kithnet.tools import board as B
from kithnet.tools import flash as F
from kithnet.tools import provision as P
from kithnet.tools.world import WorldServer
from netns import namespace, setns_thread
from vboard import VirtualBoard

WAIT = 45
WIFI_PASSWORD = "correct-horse-battery-staple"


def kithnet(*args: str, ns: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "kithnet.cli", *args]
    if ns is not None:
        cmd = ["ip", "netns", "exec", ns, *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def config_of(path: Path) -> dict:
    return json.loads((path / "config.json").read_text())


def no_secrets(out: subprocess.CompletedProcess | str, *secrets: str) -> None:
    text = out if isinstance(out, str) else out.stdout + out.stderr
    for s in secrets:
        assert s.lower() not in text.lower(), "a secret was printed"


class Lab:
    """One namespace, one gateway (restartable) on one data directory, boards in it."""

    def __init__(self, ns: str, root: Path) -> None:
        self.ns = ns
        self.root = root
        self.data = root / "gw"
        self.g: GatewayThread | None = None
        self.boards: list[B.Board] = []

    def gateway(self) -> GatewayThread:
        # token=None: the gateway makes DATA/token, which provisioning reads.
        self.g = GatewayThread(self.ns, data=str(self.data), udp_host="0.0.0.0",
                               udp_port=47800, http_port=47880, token=None)  # fmt: skip
        return self.g

    def boot(self, path: Path) -> B.Board:
        b = B.Board(path, prefix=["ip", "netns", "exec", self.ns])
        b.server = setns_thread(self.ns, lambda: WorldServer(b.world))
        self.boards.append(b)
        return b.start()

    def online(self, b: B.Board, node_id: str, after: float = 0.0) -> dict:
        """The device once it has a session made after `after` (time.time())."""
        g = self.g
        try:
            return g.wait(lambda: (d := g.gw.device(node_id))["online"]
                          and (d["last_seen"] or 0) > after and d, WAIT)  # fmt: skip
        except TimeoutError:
            pytest.fail(f"{node_id} never came online:\n{b.console()[-3000:]}")

    def key(self, node_id: str) -> str:
        return self.g.call(lambda: self.g.gw.devices_by_id[bytes.fromhex(node_id)].key.hex())

    def stop_boards(self) -> None:
        for b in self.boards:
            b.stop()
        self.boards.clear()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with namespace() as ns:
        lab = Lab(ns, tmp_path_factory.mktemp("flash"))
        try:
            yield lab
        finally:
            lab.stop_boards()
            if lab.g is not None:
                lab.g.stop()


@pytest.fixture(scope="module")
def flashed(lab):
    """A plug flashed into a gateway's data directory while no gateway ran; then the
    gateway started and the board booted: it must come online with the key it was given."""
    path = lab.root / "plug-board"
    ref = lab.root / "reference"  # what a freshly laid out board holds
    P.stage(ref, P.Options("plug", "Flashed plug", mpy=True), P.Identity("0" * 16, "0" * 32, "new"))
    vb = VirtualBoard(path, lab.root / "ttyKN-plug").start()
    try:
        out = kithnet(
            "flash", "--port", vb.port, "--type", "plug", "--name", "Flashed plug",
            "--room", "lab", "--gateway-data", str(lab.data), "--wifi-ssid", "home",
            "--wifi-password", WIFI_PASSWORD, "--mpy",
        )  # fmt: skip
    finally:
        vb.stop()
    assert out.returncode == 0, out.stdout + out.stderr
    cfg = config_of(path)
    node_id, key = cfg["node"]["id"], cfg["node"]["key"]
    no_secrets(out, key, WIFI_PASSWORD)
    assert f"node {node_id}, a new id and key" in out.stdout
    assert "every file verified by SHA-256" in out.stdout
    assert "%" in out.stderr  # the copy's progress
    assert cfg["wifi"] == {"ssid": "home", "password": WIFI_PASSWORD}
    assert cfg["type"] == "plug" and cfg["node"]["name"] == "Flashed plug"
    # Every file on the board is what a freshly laid out board holds.
    for rel in P.files(ref):
        if rel != "config.json" and not rel.startswith("lib/node/hal/esp32"):
            assert (path / rel).read_bytes() == (ref / rel).read_bytes(), rel
    assert not list(path.rglob("*.tmp")) and not (path / P.PENDING).exists()
    # Registered directly in the (stopped) gateway's database.
    with sqlite3.connect(lab.data / "kithnet.db") as db:
        row = db.execute("SELECT key, name, room, type FROM nodes WHERE id = ?", (node_id,))
        assert row.fetchone() == (bytes.fromhex(key), "Flashed plug", "lab", "plug")
    lab.gateway()
    b = lab.boot(path)
    d = lab.online(b, node_id)
    assert d["name"] == "Flashed plug" and d["room"] == "lab" and d["type"] == "plug"
    assert lab.key(node_id) == key
    b.stop()
    return path, node_id


def _flash_again(lab: Lab, path: Path, *extra: str) -> subprocess.CompletedProcess:
    with VirtualBoard(path, lab.root / "ttyKN-plug") as vb:
        return kithnet(
            "flash", "--port", vb.port, "--type", "plug", "--name", "Flashed plug",
            "--gateway-data", str(lab.data), "--mpy", *extra, ns=lab.ns,
        )  # fmt: skip


def test_reflash_keeps_id_and_key_and_registers_through_the_running_gateway(lab, flashed):
    path, node_id = flashed
    before = config_of(path)
    # An update the board took over the air (SPEC 9.4): flashing replaces it.
    (path / "ota" / "a").mkdir(parents=True)
    (path / "ota" / "a" / "meta").write_text("kithnet 9.9.9\n")
    (path / "ota" / "lib").write_text("ota/a/lib\n")
    out = _flash_again(lab, path)
    assert out.returncode == 0, out.stdout + out.stderr
    no_secrets(out, before["node"]["key"], WIFI_PASSWORD)
    assert "removed the files of an over-the-air update" in out.stdout
    assert not (path / "ota" / "lib").exists() and not (path / "ota" / "a" / "meta").exists()
    # The gateway holds the database: registration went through its API, with DATA/token.
    assert "gateway: the gateway at http://127.0.0.1:47880" in out.stdout
    assert "its id and key kept" in out.stdout
    # Only what differs is copied: nothing, unless the firmware changed since (a source
    # edited between two flashes); config.json is the same.
    files, written = map(int, re.search(r"(\d+) files, .*?, (\d+) written", out.stdout).groups())
    assert files > 40 and written <= 2, out.stdout
    after = config_of(path)
    assert after["node"] == before["node"] and after["wifi"] == before["wifi"]
    assert lab.key(node_id) == before["node"]["key"]


def test_rotation_changes_the_key_on_both_sides(lab, flashed):
    path, node_id = flashed
    old = config_of(path)["node"]["key"]
    out = _flash_again(lab, path, "--rotate-key")
    assert out.returncode == 0, out.stdout + out.stderr
    new = config_of(path)["node"]["key"]
    no_secrets(out, old, new)
    assert new != old and config_of(path)["node"]["id"] == node_id
    assert "a new key" in out.stdout
    assert lab.key(node_id) == new
    since = time.time()
    b = lab.boot(path)
    lab.online(b, node_id, after=since)  # the board's new key opens a session
    b.stop()


def _rotate_in_process(lab: Lab, path: Path, at: str, act) -> BaseException:
    """flash --rotate-key run here (in the namespace), act() at step `at`; the error."""
    vb = VirtualBoard(path, lab.root / "ttyKN-plug").start()

    def step(name: str) -> None:
        if name == at:
            act(vb)

    o = F.FlashOptions(vb.port, P.Options("plug", "Flashed plug", mpy=True), rotate=True,
                       gateway_data=str(lab.data))  # fmt: skip
    lines: list[str] = []

    def go() -> BaseException:
        try:
            F.flash(o, say=lines.append, step=step)
        except Exception as e:
            return e
        raise AssertionError("flashing should have failed")

    try:
        err = setns_thread(lab.ns, go)
    finally:
        vb.stop()
    assert "%" not in "\n".join(lines)  # progress went to stderr, not to say()
    return err


def test_rotation_failing_at_the_gateway_leaves_the_old_key_on_both_sides(lab, flashed):
    path, node_id = flashed
    old = config_of(path)["node"]["key"]

    def gateway_dies(vb: VirtualBoard) -> None:
        lab.g.stop()

    err = _rotate_in_process(lab, path, "gateway", gateway_dies)
    assert "does not answer" in str(err) and "keeps its old config.json" in str(err), err
    assert config_of(path)["node"]["key"] == old
    assert not (path / P.PENDING).exists()
    lab.gateway()
    assert lab.key(node_id) == old
    since = time.time()
    b = lab.boot(path)
    lab.online(b, node_id, after=since)
    b.stop()


def test_rotation_failing_on_the_board_puts_the_old_key_back_in_the_gateway(lab, flashed):
    path, node_id = flashed
    old = config_of(path)["node"]["key"]

    def unplugged(vb: VirtualBoard) -> None:
        vb.stop()  # the gateway has the new key now; the rename on the board cannot happen

    err = _rotate_in_process(lab, path, "commit", unplugged)
    assert "has the board's old key back" in str(err), err
    assert old not in str(err)
    assert config_of(path)["node"]["key"] == old
    assert lab.key(node_id) == old
    assert (path / P.PENDING).exists()  # unplugged before it could be cleaned up
    since = time.time()
    b = lab.boot(path)
    lab.online(b, node_id, after=since)  # it boots config.json: the old key, which works
    b.stop()
    # The next flash cleans up what the interrupted one left.
    out = _flash_again(lab, path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"removed {P.PENDING} left by an interrupted flash" in out.stdout
    assert not (path / P.PENDING).exists() and config_of(path)["node"]["key"] == old


def test_node_create_makes_a_board_that_micropython_boots(lab, flashed):
    path = lab.root / "created"
    out = kithnet("node", "create", str(path), "--type", "light", "--name", "Created lamp",
                  "--room", "hall", "--gateway-data", str(lab.data), ns=lab.ns)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    cfg = config_of(path)
    node_id, key = cfg["node"]["id"], cfg["node"]["key"]
    no_secrets(out, key)
    assert lab.key(node_id) == key
    assert (path / "nvs" / "boot").exists()  # its first (planning) boot is done
    # As a person would: `micropython main.py` in the directory (no simulated world).
    proc = subprocess.Popen(
        ["ip", "netns", "exec", lab.ns, B.micropython(), "main.py"], cwd=path,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        d = lab.g.wait(lambda: (d := lab.g.gw.device(node_id))["online"] and d, WAIT)
        assert d["name"] == "Created lamp" and d["room"] == "hall" and d["type"] == "light"
    except TimeoutError:
        proc.kill()
        pytest.fail("the created node never came online:\n" + proc.communicate()[0][-3000:])
    finally:
        proc.kill()
        proc.wait(10)
    # Created again: the same id and key.
    again = kithnet("node", "create", str(path), "--type", "light", "--name", "Created lamp",
                    "--gateway-data", str(lab.data), ns=lab.ns)  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert "its id and key kept" in again.stdout and config_of(path)["node"]["key"] == key
    # A name the gateway already gives another node is refused; the board gets no config.
    other = lab.root / "created-twin"
    twin = kithnet("node", "create", str(other), "--type", "light", "--name", "created LAMP",
                   "--gateway-data", str(lab.data), ns=lab.ns)  # fmt: skip
    assert twin.returncode == 1
    assert f"the name 'created LAMP' is taken by node {node_id}" in twin.stderr, twin.stderr
    assert not (other / "config.json").exists() and not (other / P.PENDING).exists()


# -- errors ----------------------------------------------------------------------------------


def test_no_board_on_the_port(tmp_path):
    out = kithnet("flash", "--port", str(tmp_path / "ttyUSB9"), "--type", "plug", "--name",
                  "X", "--no-register")  # fmt: skip
    assert out.returncode == 1
    assert "no board on" in out.stderr and "no such port" in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1


def test_a_port_that_is_not_micropython(tmp_path):
    with VirtualBoard(tmp_path / "cat", tmp_path / "ttyCAT", command="cat") as vb:
        out = kithnet("flash", "--port", vb.port, "--type", "plug", "--name", "X",
                      "--no-register")  # fmt: skip
    assert out.returncode == 1
    assert "did not answer as a MicroPython board" in out.stderr, out.stderr
    assert not (tmp_path / "cat" / "config.json").exists()


def test_a_gateway_that_does_not_answer_leaves_the_board_untouched(tmp_path):
    with VirtualBoard(tmp_path / "b", tmp_path / "ttyGW") as vb:
        out = kithnet("flash", "--port", vb.port, "--type", "plug", "--name", "X",
                      "--gateway", "http://127.0.0.1:9", "--token", "t")  # fmt: skip
    assert out.returncode == 1
    assert "the gateway does not answer at http://127.0.0.1:9" in out.stderr, out.stderr
    assert list((tmp_path / "b").iterdir()) == []


@pytest.fixture
def small_fs(tmp_path):
    """A board directory on a tmpfs of a given size (root can mount one)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounts: list[Path] = []

    def make(size: int) -> Path:
        path = tmp_path / f"fs{len(mounts)}"
        path.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                              capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounts.append(path)
        return path

    yield make
    for m in mounts:
        subprocess.run(["umount", "-l", str(m)], capture_output=True)


def test_a_full_filesystem_is_named_with_its_sizes(tmp_path, small_fs):
    data = tmp_path / "gw"
    # Far too small: refused before anything is written.
    tiny = small_fs(64 * 1024)
    with VirtualBoard(tiny, tmp_path / "ttyFS0") as vb:
        out = kithnet("flash", "--port", vb.port, "--type", "plug", "--name", "Full",
                      "--gateway-data", str(data))  # fmt: skip
    assert out.returncode == 1
    assert "not enough space on the board" in out.stderr, out.stderr
    assert "64.0 KB are free" in out.stderr and "--mpy makes them smaller" in out.stderr
    assert list(tiny.iterdir()) == []
    # Enough bytes, but files take whole pages: the board itself says ENOSPC midway.
    ref = tmp_path / "ref"
    P.stage(ref, P.Options("plug", "Full"), P.Identity("00" * 8, "00" * 16, "new"))
    size = sum((ref / f).stat().st_size for f in P.files(ref)) + 24 * 1024
    snug = small_fs(size)
    with VirtualBoard(snug, tmp_path / "ttyFS1") as vb:
        out = kithnet("flash", "--port", vb.port, "--type", "plug", "--name", "Full",
                      "--gateway-data", str(data))  # fmt: skip
    assert out.returncode == 1
    assert "the board's filesystem is full (ENOSPC): writing lib/" in out.stderr, out.stderr
    assert "were not written" in out.stderr and "keeps its old config.json" in out.stderr
    assert not (snug / "config.json").exists() and not list(snug.rglob("*.tmp"))
    assert not (data / "kithnet.db").exists()  # and the gateway got no key


# -- the MicroPython image (esptool) ---------------------------------------------------------
# Writing an image needs a chip on the port, which no test machine has: what is tested is
# the command that would run, and the refusal of a file that is not an image.


def test_esptool_commands_use_the_chip_familys_offset(tmp_path):
    img = tmp_path / "fw.bin"
    cmds = F.esptool_commands("/dev/ttyUSB0", "esp32", img)
    assert cmds[0][1:] == ["-m", "esptool", "--chip", "esp32", "--port", "/dev/ttyUSB0",
                           "erase-flash"]  # fmt: skip
    assert cmds[1][1:] == ["-m", "esptool", "--chip", "esp32", "--port", "/dev/ttyUSB0",
                           "--baud", "460800", "write-flash", "-z", "0x1000", str(img)]  # fmt: skip
    offsets = {c: F.esptool_commands("p", c, img)[1][-2] for c in F.FLASH_OFFSET}
    assert offsets == {"esp32": "0x1000", "esp32s2": "0x1000", "esp32s3": "0x0",
                       "esp32c2": "0x0", "esp32c3": "0x0", "esp32c6": "0x0"}  # fmt: skip
    with pytest.raises(F.FlashError, match="--chip must be one of"):
        F.esptool_commands("p", "esp8266", img)


def test_an_image_that_is_not_an_esp32_image_is_refused_before_erasing(tmp_path):
    img = tmp_path / "notes.txt"
    img.write_text("not firmware")
    out = kithnet("flash", "--port", str(tmp_path / "ttyUSB0"), "--type", "plug", "--name", "X",
                  "--no-register", "--micropython-image", str(img))  # fmt: skip
    assert out.returncode == 1
    assert "is not an ESP32 firmware image" in out.stderr and "running:" not in out.stdout
