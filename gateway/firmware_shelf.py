"""The firmware shelf: update bundles the user leaves in DATA/firmware/ for the gateway to
offer (the MQTT hub's `update` entity, `GET /api/firmware`).

Any regular file there whose name does not start with "." is a candidate: a bundle that
`kithnet bundle DATA/firmware/NAME` wrote, or a copy of one, or an ESP32 application image
(gateway/ota_bundle.parse takes both). A file that is not one is ignored with one log line
(again only if it changes). The newest bundle is the one with the highest version (below);
of equal versions, the file written last.

A listing costs one stat of the directory while nothing changed: the directory's mtime says
when a file came or went, and a full listing runs anyway every RESCAN_S (a file rewritten
in place leaves the directory's mtime alone). A file written less than SETTLE_S ago is left
for the next listing, so a copy in progress is neither logged as broken nor offered
truncated (an ESP32 image's header is all the check it gets).

Versions (version_key): a numeric dotted release, an optional "v" before it, compares
number by number (1.10.0 > 1.9.2; 1.0 = 1.0.0); a pre-release (1.0.0-rc.1) comes before its
release; build metadata (+3f2a9c1d, what `kithnet bundle` appends by default) does not
order anything. Any other text ("nightly") sorts below every numeric version, by text.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .ota_bundle import MAX_BUNDLE, Bundle, BundleError, parse

log = logging.getLogger("kithnet.gateway.firmware")

SETTLE_S = 1.0  # a file younger than this may still be being written
RESCAN_S = 10.0  # a full listing at least this often (files rewritten in place)

_VERSION = re.compile(r"[vV]?(\d+(?:\.\d+)*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]*)?")


def version_key(version: str) -> tuple:
    """The order of versions described above, as a sort key."""
    m = _VERSION.fullmatch(version.strip())
    if m is None:
        return (0, version)
    nums = [int(n) for n in m.group(1).split(".")]
    while len(nums) > 1 and nums[-1] == 0:
        nums.pop()
    pre = m.group(2)
    if pre is None:
        return (1, tuple(nums), 1, ())
    # As SemVer: numeric identifiers below alphanumeric ones, each compared in its kind.
    ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (1, tuple(nums), 0, ids)


def is_update(version: str, installed: str | None) -> bool:
    """Whether a node running `installed` should be offered `version`: anything but the
    same version, or an older one. Another build of an equal version (0.1.0+3f2a9c1d on a
    node running 0.1.0) is offered: it is what `kithnet bundle` makes of changed files."""
    if installed is None:
        return True
    return version != installed and version_key(version) >= version_key(installed)


@dataclass(frozen=True)
class Shelved:
    """One valid bundle on the shelf (its bytes are read again when it is installed)."""

    name: str
    path: Path
    version: str
    size: int
    mtime: float
    image: bool
    files: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "size": self.size,
            "mtime": self.mtime,
            "image": self.image,
            "files": self.files,
        }

    def load(self) -> Bundle:
        """The bundle as the file now holds it; BundleError if it is gone or broken."""
        try:
            raw = self.path.read_bytes()
        except OSError as e:
            raise BundleError(f"cannot read {self.path}: {e.strerror}") from None
        return parse(raw)


class FirmwareShelf:
    """The bundles in one directory, newest first; scan() is safe from any thread."""

    def __init__(self, path: Path, settle_s: float = SETTLE_S, rescan_s: float = RESCAN_S):
        self.path = Path(path)
        self.settle_s = settle_s
        self.rescan_s = rescan_s
        self._lock = threading.Lock()
        self._bundles: tuple[Shelved, ...] = ()
        self._cache: dict[tuple[str, int, int], Shelved | None] = {}  # None: not a bundle
        self._dir_mtime: int | None = -1
        self._scanned = float("-inf")
        self._unsettled = False

    def latest(self) -> Shelved | None:
        """The newest bundle as of the last scan (no I/O)."""
        b = self._bundles
        return b[0] if b else None

    def bundles(self) -> list[Shelved]:
        return list(self._bundles)

    def offer(self, installed: str | None) -> Shelved | None:
        """The newest bundle if it is an update for a node running `installed` (is_update)."""
        b = self.latest()
        return b if b is not None and is_update(b.version, installed) else None

    def _dir_stamp(self) -> int | None:
        try:
            return os.stat(self.path).st_mtime_ns
        except OSError:
            return None

    def due(self) -> bool:
        """Whether scan() has anything to look at: one stat, for the event loop."""
        return (
            self._unsettled
            or self._dir_stamp() != self._dir_mtime
            or time.monotonic() - self._scanned >= self.rescan_s
        )

    def scan(self) -> bool:
        """List the directory if due(); True when the newest bundle changed."""
        with self._lock:
            if not self.due():
                return False
            self._dir_mtime = self._dir_stamp()
            self._scanned = time.monotonic()
            before = self.latest()
            found, seen = [], set()
            now = time.time()
            # A file added within the directory's timestamp granularity of the last change
            # would not move its mtime: while that change is recent, look again next time.
            stamp = self._dir_mtime
            self._unsettled = stamp is not None and 0 <= now - stamp / 1e9 < self.settle_s
            try:
                entries = list(os.scandir(self.path))
            except OSError:
                entries = []  # no shelf (yet): nothing to offer
            for e in entries:
                try:
                    if e.name.startswith(".") or not e.is_file():
                        continue
                    st = e.stat()
                except OSError:
                    continue  # gone meanwhile
                if 0 <= now - st.st_mtime < self.settle_s:
                    self._unsettled = True  # perhaps still being written: next time
                    continue
                key = (e.name, st.st_size, st.st_mtime_ns)
                seen.add(key)
                if key not in self._cache:
                    self._cache[key] = self._read(Path(e.path), st.st_size, st.st_mtime)
                item = self._cache[key]
                if item is not None:
                    found.append(item)
            for key in set(self._cache) - seen:
                del self._cache[key]
            found.sort(key=lambda s: (version_key(s.version), s.mtime, s.name), reverse=True)
            self._bundles = tuple(found)
            after = self.latest()
            if after != before:
                if after is None:
                    log.info("firmware shelf %s: no bundle", self.path)
                else:
                    log.info("firmware shelf %s: newest is %s (%s)", self.path, after.version,
                             after.name)  # fmt: skip
                return True
            return False

    def _read(self, path: Path, size: int, mtime: float) -> Shelved | None:
        """The file as a bundle, or None with one log line saying why it is not one."""
        try:
            if size > MAX_BUNDLE:
                raise BundleError(f"{size} bytes: a bundle holds at most {MAX_BUNDLE}")
            b = parse(path.read_bytes())
        except OSError as e:
            log.warning("firmware shelf: ignoring %s: cannot read it (%s)", path, e.strerror)
            return None
        except BundleError as e:
            log.warning("firmware shelf: ignoring %s: %s", path, e)
            return None
        return Shelved(path.name, path, b.version, size, mtime, b.image, len(b.files))
