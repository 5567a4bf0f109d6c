# An update of the MicroPython image itself (SPEC.md 9.4), on an ESP32 whose firmware has
# OTA app partitions (ESP32_GENERIC's OTA variant): an offer without the "files" bundle.
# The same rules as a file bundle, through esp32.Partition (the esp32 HAL's ota_*):
# chunks fill a 4 KB buffer and each whole block goes to the next update partition;
# ota/rx/image ("SHA256 SIZE BLOCKS_WRITTEN VERSION") lets a transfer resume at the last
# whole block. After the last block the partition is read back and must match the
# offer's SHA-256; then set_boot(), ota/trial = "image LABEL SHA256 VERSION", a restart.
# The bootloader boots the image on trial (pending verify) and rolls it back by itself at
# the next reset unless node/ota_trial.py, once the node is online, marks it valid
# (hal.ota_confirm: Partition.mark_app_valid_cancel_rollback()).
# Not testable on the host (no partitions): kept thin. Loaded from node/ota.py.

import hashlib
import time
from binascii import hexlify

from protocol import ota as O
from protocol.errors import BAD_VALUE, LIMIT, UNSUPPORTED

from . import ota
from .hal import impl as hal

BLOCK = 4096
_buf = None
_fill = 0


def offer(node, body):
    global _buf, _fill
    part = hal.ota_partition()
    if part is None:
        return ota._end(node, UNSUPPORTED, "no OTA partitions in this MicroPython firmware")
    size, sha = body[O.SIZE], hexlify(body[O.SHA256]).decode()
    if size > part.ioctl(4, 0) * BLOCK:
        return ota._end(node, LIMIT, "the image is larger than the update partition")
    known = ota._known(sha)
    if known is not None and body.get(O.FORCE) is not True:
        return ota._end(node, 0, known[1], known[0])
    rec = (ota._read(ota.RX + "image") or "").split()
    if not rec or rec[0] != sha:
        ota._mkdirs("ota/rx")
        rec = [sha, str(size), "0", body[O.VERSION]]
        ota._write(ota.RX + "image", " ".join(rec))
    _buf, _fill = bytearray(BLOCK), 0
    return ota._status(0, O.RECEIVING, None, int(rec[2]) * BLOCK)


def chunk(node, body):
    global _fill
    rec = ota._read(ota.RX + "image").split()
    size, blocks = int(rec[1]), int(rec[2])
    pos = blocks * BLOCK + _fill
    data = body[O.DATA]
    if body[O.OFFSET] != pos or _buf is None:
        return ota._status(0, O.RECEIVING, None, pos)
    if _fill + len(data) > BLOCK or pos + len(data) > size:
        return ota._status(BAD_VALUE, O.RECEIVING, "chunk beyond a block", pos)
    _buf[_fill : _fill + len(data)] = data
    _fill += len(data)
    pos += len(data)
    part = hal.ota_partition()
    if _fill == BLOCK or pos == size:
        part.writeblocks(blocks, _buf)
        rec[2] = str(blocks + 1)
        ota._write(ota.RX + "image", " ".join(rec))
        _fill = 0
    if pos < size:
        return ota._status(0, O.RECEIVING, None, pos)
    h = hashlib.sha256()
    for b in range(int(rec[2])):
        part.readblocks(b, _buf)
        h.update(_buf[: min(BLOCK, size - b * BLOCK)])
    if hexlify(h.digest()).decode() != rec[0]:
        ota._rm(ota.RX + "image")
        return ota._end(node, BAD_VALUE, "the image does not match the offer's SHA-256")
    part.set_boot()
    if ota._read("ota/lib") is None:
        ota._write("ota/lib", "lib")  # main.py asks node/ota_boot.py from now on
    ota._write("ota/trial", "image %s %s %s" % (part.info()[4], rec[0], rec[3]))
    ota._rm(ota.RX + "image")
    node.ota_at = time.ticks_add(time.ticks_ms(), ota.RESET_MS)  # then due() restarts
    return ota._status(0, O.STAGED, None, size)
