"""Build an update bundle (SPEC.md 9.4): `kithnet bundle OUT` or `python -m
kithnet.tools.ota_bundle OUT`.

The bundle holds the files a board keeps under lib/, laid out as make_board lays them out
(lib/node from firmware/node, lib/protocol from protocol/, compiled to .mpy by mpy-cross
unless --py), or the files of a board's lib/ as they are (--lib). boot.py and main.py do
not travel: main.py is the loader that chooses between the flashed lib and an update's,
and, as ESP-IDF's bootloader under app OTA, it is written only by flashing, so no update
can break what would roll it back.

Without --node/--key the bundle is untagged and the gateway tags it for each node it
sends it to with that node's key; with them it is tagged for that one node.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import tempfile
from pathlib import Path

from kithnet.gateway.ota_bundle import BundleError, pack, parse

from .board import FIRMWARE, PROTOCOL, _copy_tree


def firmware_version(node_dir: Path = FIRMWARE / "node") -> str:
    """FIRMWARE in node/runtime.py: the version a flashed lib reports."""
    m = re.search(r'^FIRMWARE = "([^"]+)"', (node_dir / "runtime.py").read_text(), re.M)
    return m.group(1) if m else "0"


def read_lib(lib: Path) -> dict[str, bytes]:
    """Every file under a lib/ directory, by its path there."""
    files = {p.relative_to(lib).as_posix(): p.read_bytes() for p in sorted(lib.rglob("*"))
             if p.is_file() and "__pycache__" not in p.parts}  # fmt: skip
    if not files:
        raise BundleError(f"{lib} holds no files")
    return files


def collect(
    node_dir: Path = FIRMWARE / "node", protocol_dir: Path = PROTOCOL, mpy: bool = True
) -> dict[str, bytes]:
    """The lib/ files of a board made from these sources (what make_board writes)."""
    with tempfile.TemporaryDirectory() as tmp:
        lib = Path(tmp) / "lib"
        _copy_tree(node_dir, lib / "node", mpy)
        _copy_tree(protocol_dir, lib / "protocol", mpy)
        return read_lib(lib)


def build(
    version: str | None = None,
    *,
    files: dict[str, bytes] | None = None,
    node_dir: Path = FIRMWARE / "node",
    mpy: bool = True,
    node: tuple[bytes, bytes] | None = None,
) -> bytes:
    """A bundle of `files` (default: collect(node_dir)); version defaults to the firmware's
    FIRMWARE and a hash of the files ("0.1.0+3f2a9c1d"), so that two builds differ exactly
    when their files do."""
    if files is None:
        files = collect(node_dir, mpy=mpy)
    if version is None:
        h = hashlib.sha256()
        for path in sorted(files):
            h.update(path.encode() + b"\0" + hashlib.sha256(files[path]).digest())
        version = f"{firmware_version(node_dir)}+{h.hexdigest()[:8]}"
    return pack(version, files, node)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="kithnet bundle", description=__doc__.split("\n\n")[0])
    add_arguments(ap)
    return run(ap.parse_args(argv))


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("out", metavar="OUT", help="the bundle file to write (e.g. fw-0.2.0.knb)")
    ap.add_argument("--version", help="the version nodes report (default: FIRMWARE+files hash)")
    ap.add_argument("--lib", metavar="DIR", help="take a board's lib/ as it is")
    ap.add_argument("--firmware", metavar="DIR", help="firmware sources (default: this tree's)")
    ap.add_argument("--py", action="store_true", help="ship .py sources instead of .mpy")
    ap.add_argument("--node", metavar="ID", help="tag for this one node (16 hex digits)...")
    ap.add_argument("--key", metavar="HEX", help="...with its key (32 hex digits)")


def run(args: argparse.Namespace) -> int:
    try:
        node = None
        if args.node or args.key:
            try:
                node = (bytes.fromhex(args.node or ""), bytes.fromhex(args.key or ""))
            except ValueError:
                node = (b"", b"")
            if len(node[0]) != 8 or len(node[1]) != 16:
                raise BundleError("--node takes 16 hex digits and --key 32, both or neither")
        if args.lib:
            files = read_lib(Path(args.lib))
        else:
            src = Path(args.firmware) / "node" if args.firmware else FIRMWARE / "node"
            if not (src / "runtime.py").exists():
                raise BundleError(f"{src} is not the node firmware (no runtime.py)")
            files = collect(src, mpy=not args.py)
        data = build(args.version, files=files, node=node)
        b = parse(data)
        Path(args.out).write_bytes(data)
    except (BundleError, OSError) as e:
        print(f"kithnet: {e}", file=sys.stderr)
        return 1
    how = f"tagged for node {args.node}" if node else "untagged: the gateway tags it per node"
    print(f"{args.out}: version {b.version}, {len(b.files)} files, {len(data)} bytes ({how})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
