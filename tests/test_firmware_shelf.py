"""The firmware shelf (gateway/firmware_shelf.py) on a real directory: the version order,
files that are not bundles (ignored, logged once), a new file showing up without a restart
and what the shelf offers a node."""

from __future__ import annotations

import logging
import os
import time

import pytest
from kithnet.gateway.firmware_shelf import FirmwareShelf, is_update, version_key
from kithnet.gateway.ota_bundle import MAX_BUNDLE, BundleError, pack

FILES = {"node/a.py": b"print('a')\n", "protocol/b.py": b"B = 1\n"}


def bundle(version: str) -> bytes:
    return pack(version, FILES)


def image(version: str) -> bytes:
    """An ESP32 application image's header (esp_image_header_t, esp_app_desc_t)."""
    head = bytearray(256)
    head[0] = 0xE9
    head[32:36] = (0xABCD5432).to_bytes(4, "little")
    head[48 : 48 + len(version)] = version.encode()
    return bytes(head) + bytes(4096)


def put(path, data: bytes, age: float = 10.0) -> None:
    """A file written `age` seconds ago (older than the shelf's settling time)."""
    path.write_bytes(data)
    t = time.time() - age
    os.utime(path, (t, t))


def test_versions_order_numerically_with_a_fallback_for_text():
    ordered = [
        "nightly",  # not a version: below every numeric one, by text
        "snapshot",
        "0.1.0-rc.1",
        "0.1.0",
        "0.1.1",
        "0.2.0-alpha",
        "0.2.0-alpha.2",
        "0.2.0-alpha.10",
        "0.2.0-beta",
        "v0.2.0",
        "0.9.9",
        "0.10.0",
        "1.0.0",
        "10",
    ]
    assert sorted(reversed(ordered), key=version_key) == ordered
    assert version_key("1.0") == version_key("1.0.0") == version_key("v1")
    assert version_key("0.1.0+3f2a9c1d") == version_key("0.1.0")  # build metadata: no order
    assert is_update("0.2.0", "0.1.0") and not is_update("0.1.0", "0.2.0")
    assert not is_update("0.2.0", "0.2.0") and is_update("0.2.0", None)
    # Another build of the same version (what `kithnet bundle` makes of changed files).
    assert is_update("0.1.0+3f2a9c1d", "0.1.0") and is_update("0.1.0+aa", "0.1.0+bb")
    assert not is_update("0.1.0-rc.1", "0.1.0") and not is_update("nightly", "0.1.0")


def test_the_newest_valid_bundle_and_garbage_ignored_once(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="kithnet.gateway.firmware")
    shelf = FirmwareShelf(tmp_path / "firmware", rescan_s=0)
    assert not shelf.scan() and shelf.latest() is None and shelf.offer("0.1.0") is None
    d = shelf.path
    d.mkdir()
    put(d / "fw-0.9.0.knb", bundle("0.9.0"))
    put(d / "fw-0.10.0.knb", bundle("0.10.0"))
    put(d / "fw-0.10.0-rc.1.knb", bundle("0.10.0-rc.1"))
    put(d / "notes.txt", b"release notes\n")
    put(d / "empty", b"")
    put(d / "cut.knb", bundle("0.11.0")[:-3])  # a copy cut short
    put(d / "badhash.knb", bundle("0.12.0")[:-1] + b"!")
    put(d / ".hidden.knb", bundle("9.0.0"))  # dotfiles are not on the shelf
    (d / "old").mkdir()  # nor is anything in a subdirectory
    put(d / "old" / "fw-8.knb", bundle("8.0.0"))
    with open(d / "huge.bin", "wb") as f:
        f.truncate(MAX_BUNDLE + 1)  # (sparse: nothing is written)
    os.utime(d / "huge.bin", (time.time() - 10,) * 2)
    assert shelf.scan()
    assert [s.version for s in shelf.bundles()] == ["0.10.0", "0.10.0-rc.1", "0.9.0"]
    s = shelf.latest()
    assert s is not None and (s.name, s.image, s.files) == ("fw-0.10.0.knb", False, 2)
    assert s.to_json()["size"] == (d / "fw-0.10.0.knb").stat().st_size
    ignored = [r.getMessage() for r in caplog.records if "ignoring" in r.getMessage()]
    assert len(ignored) == 5, ignored
    for name, why in [
        ("notes.txt", "not a kithnet bundle"),
        ("empty", "not a kithnet bundle"),
        ("cut.knb", "truncated"),
        ("badhash.knb", "does not match its SHA-256"),
        ("huge.bin", "at most"),
    ]:
        assert any(name in m and why in m for m in ignored), (name, ignored)
    caplog.clear()
    assert not shelf.scan()  # listed again (rescan_s=0), nothing new: nothing logged again
    assert not [r for r in caplog.records if "ignoring" in r.getMessage()]
    assert s.load().version == "0.10.0"
    # What a node is offered: the newest, unless it runs that or something newer.
    assert shelf.offer("0.9.0") == s and shelf.offer(None) == s
    assert shelf.offer("0.10.0") is None and shelf.offer("1.0") is None
    # A file fixed in place is read again; a file gone is gone.
    put(d / "cut.knb", bundle("0.11.0"), age=5)
    assert shelf.scan() and shelf.latest().version == "0.11.0"
    (d / "cut.knb").unlink()
    assert shelf.scan() and shelf.latest().name == "fw-0.10.0.knb"
    (d / "fw-0.10.0.knb").unlink()
    with pytest.raises(BundleError, match="cannot read"):
        s.load()


def test_a_new_file_shows_up_without_a_restart_and_costs_one_stat_otherwise(tmp_path):
    d = tmp_path / "firmware"
    d.mkdir()
    put(d / "a.knb", bundle("1.0.0"))
    t = time.time() - 30
    os.utime(d, (t, t))  # the directory's last change is long past
    shelf = FirmwareShelf(d, rescan_s=3600)
    assert shelf.scan() and shelf.latest().version == "1.0.0"
    assert not shelf.due() and not shelf.scan()  # nothing moved: no listing
    put(d / "b.knb", bundle("1.1.0"))  # a new file moves the directory's mtime
    assert shelf.due() and shelf.scan() and shelf.latest().version == "1.1.0"
    # Equal versions: the file written last wins; an ESP32 image is a bundle too.
    put(d / "c.knb", bundle("1.1.0"), age=5)
    put(d / "esp32.bin", image("v1.0.5"))
    assert shelf.scan() and shelf.latest().name == "c.knb"
    assert {s.name: s.image for s in shelf.bundles()}["esp32.bin"] is True
    # A file rewritten in place leaves the directory alone: the periodic listing finds it.
    put(d / "a.knb", bundle("2.0.0"), age=5)
    shelf.rescan_s = 0
    assert shelf.due() and shelf.scan() and shelf.latest().version == "2.0.0"


def test_a_file_being_written_waits_until_it_settles(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="kithnet.gateway.firmware")
    d = tmp_path / "firmware"
    d.mkdir()
    shelf = FirmwareShelf(d, settle_s=60, rescan_s=3600)
    half = bundle("3.0.0")
    (d / "fw.knb").write_bytes(half[: len(half) // 2])  # a copy in progress, just now
    assert not shelf.scan() and shelf.latest() is None
    assert not caplog.records  # not logged as broken: it may be complete in a moment
    assert shelf.due()  # and looked at again, though the directory does not move
    put(d / "fw.knb", half, age=120)  # done (and older than the settling time)
    assert shelf.scan() and shelf.latest().version == "3.0.0" and not caplog.records
