"""The OTA file bundle (SPEC.md 9.4): what `kithnet bundle` writes and the gateway sends.

    bundle = "KNB1" || manifest length (2 bytes, big-endian) || manifest (CBOR map)
             || tag (32 bytes) || every file's bytes, in manifest order

The manifest names the version and, per directory under the board's lib/, each file's
name, size and SHA-256. The tag is HMAC-SHA256 over everything before it, under a key
derived from one node's key (HKDF-SHA256, info "kithnet/1 ota" || node id): the node
checks it with the key it already holds. A bundle is built untagged (32 zero bytes) and
the gateway, which holds every node's key, tags it for each node it sends it to; a bundle
tagged for one node (`--key`) is sent as it is.

An ESP32 application image (MicroPython's micropython.bin of a firmware built with OTA
partitions) is sent as it is, offered without the "files" kind: the node writes it to its
next app partition (node/ota_image.py, SPEC 9.4).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from kithnet.protocol import cbor
from kithnet.protocol import ota as O
from kithnet.protocol.errors import ProtocolError

UNTAGGED = bytes(O.TAG_LEN)
MAX_BUNDLE = 4 << 20  # bytes: a lib is 70 KB of .mpy; a MicroPython image under 2 MB
_PART = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*")


class BundleError(ValueError):
    """Not a bundle this version can send, with the reason for a person."""


@dataclass(frozen=True)
class Bundle:
    raw: bytes
    version: str
    files: list[tuple[str, int, bytes]]  # (path under lib/, size, sha256), in data order
    tag: bytes
    image: bool = False  # an ESP32 application image, not a file bundle

    @property
    def tagged(self) -> bool:
        return self.tag != UNTAGGED

    @property
    def size(self) -> int:
        return len(self.raw)

    def for_node(self, node_id: bytes, key: bytes) -> bytes:
        """The bytes one node gets: tagged with its key, unless the bundle was tagged already."""
        if self.tagged or self.image:
            return self.raw
        end = O.HEAD_LEN + _manifest_len(self.raw)
        return self.raw[:end] + tag(self.raw[:end], node_id, key) + self.raw[end + O.TAG_LEN :]

    def tagged_for(self, node_id: bytes, key: bytes) -> bool:
        end = O.HEAD_LEN + _manifest_len(self.raw)
        return hmac.compare_digest(tag(self.raw[:end], node_id, key), self.tag)


def ota_key(node_id: bytes, key: bytes) -> bytes:
    """HKDF-SHA256(salt = none, IKM = the node key, info = "kithnet/1 ota" || node id)."""
    return HKDF(hashes.SHA256(), 32, None, O.TAG_INFO + node_id).derive(key)


def tag(signed: bytes, node_id: bytes, key: bytes) -> bytes:
    return hmac.new(ota_key(node_id, key), signed, hashlib.sha256).digest()


def _manifest_len(raw: bytes) -> int:
    return int.from_bytes(raw[4:6], "big")


def check_path(path: str) -> None:
    """DIR/NAME under lib/: plain names (no "..", no hidden files), at least one directory."""
    parts = path.split("/")
    if len(parts) < 2 or not all(_PART.fullmatch(p) for p in parts):
        raise BundleError(f"{path!r} is not a file path under lib/ (DIR/NAME, plain names)")


def pack(version: str, files: dict[str, bytes], node: tuple[bytes, bytes] | None = None) -> bytes:
    """A bundle of `files` (path under lib/ -> content), untagged or tagged for node (id, key)."""
    if not version or len(version.encode()) > 255 or any(c.isspace() for c in version):
        raise BundleError("the version must be 1..255 bytes of text without spaces")
    by_dir: dict[str, list[list]] = {}
    for path in sorted(files):
        check_path(path)
        d, _, name = path.rpartition("/")
        sha = hashlib.sha256(files[path]).digest()
        by_dir.setdefault(d, []).append([name, len(files[path]), sha])
    for d, entries in by_dir.items():
        if len(entries) > 64:
            raise BundleError(f"lib/{d} has {len(entries)} files: at most 64 per directory")
    if len(by_dir) > 64:
        raise BundleError(f"{len(by_dir)} directories: at most 64")
    manifest = cbor.dumps({O.MF_VERSION: version, O.MF_FILES: by_dir})
    if len(manifest) > 0xFFFF:
        raise BundleError("the manifest is over 64 KB")
    head = O.MAGIC + len(manifest).to_bytes(2, "big") + manifest
    t = tag(head, *node) if node else UNTAGGED
    order = [f"{d}/{e[0]}" for d in sorted(by_dir) for e in by_dir[d]]
    return head + t + b"".join(files[p] for p in order)


_APP_DESC = 0xABCD5432  # esp_app_desc_t's magic word, after the image and segment headers


def parse_image(raw: bytes) -> Bundle | None:
    """An ESP32 application image (esp_image_header_t, then esp_app_desc_t at byte 32 with
    its version at byte 48), or None if raw is not one."""
    if len(raw) < 256 or raw[0] != 0xE9 or int.from_bytes(raw[32:36], "little") != _APP_DESC:
        return None
    version = raw[48:80].split(b"\0")[0].decode("ascii", "replace").replace(" ", "_")
    return Bundle(raw, version or "image", [], UNTAGGED, True)


def parse(raw: bytes, check_files: bool = True) -> Bundle:
    """Check a bundle's structure and every file's hash; BundleError says what is wrong.

    check_files=False skips the hashes (the node checks them anyway): tests use it to
    send a bundle the node must refuse."""
    image = parse_image(raw)
    if image is not None:
        return image
    if len(raw) > MAX_BUNDLE:
        raise BundleError(f"{len(raw)} bytes: a bundle holds at most {MAX_BUNDLE}")
    if len(raw) < O.HEAD_LEN + O.TAG_LEN or raw[:4] != O.MAGIC:
        raise BundleError("not a kithnet bundle (it must start with KNB1; see kithnet bundle)")
    n = _manifest_len(raw)
    start = O.HEAD_LEN + n + O.TAG_LEN
    if start > len(raw):
        raise BundleError("truncated: the manifest runs past the end")
    try:
        m = cbor.loads(raw[O.HEAD_LEN : O.HEAD_LEN + n])
        version, by_dir = m[O.MF_VERSION], m[O.MF_FILES]
        if not isinstance(version, str) or not isinstance(by_dir, dict):
            raise TypeError
        files = []
        for d in sorted(by_dir):
            for name, size, sha in by_dir[d]:
                if not (isinstance(name, str) and isinstance(size, int) and isinstance(sha, bytes)):
                    raise TypeError
                files.append((f"{d}/{name}", size, sha))
    except (ProtocolError, KeyError, TypeError, ValueError) as e:
        raise BundleError(f"the manifest cannot be read ({e or type(e).__name__})") from None
    pos = start
    for path, size, sha in files:
        check_path(path)
        if pos + size > len(raw):
            raise BundleError(f"truncated: lib/{path} runs past the end")
        if check_files and hashlib.sha256(raw[pos : pos + size]).digest() != sha:
            raise BundleError(f"lib/{path} does not match its SHA-256 in the manifest")
        pos += size
    if pos != len(raw):
        raise BundleError(f"{len(raw) - pos} bytes after the last file")
    return Bundle(raw, version, files, raw[start - O.TAG_LEN : start])
