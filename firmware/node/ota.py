# Updates over the air (SPEC.md 9.4), the node's side: taking and installing a bundle.
#
# An update runs in boots of its own. A node that has run a while keeps 40 KB free, but
# not in one piece, and this module's names would make the interpreter allocate a new
# table of names of several KB; so:
#   1. The first offer restarts the node (runtime._ota). That boot loads this module
#      before the network and runs no drivers (outputs stay as at power-on): the node
#      is online, says hello and reports its diagnostics, and takes the update.
#   2. Each chunk is appended straight to ota/rx/bundle (nothing is buffered), so a
#      transfer cut by a reboot goes on where the file ends: every answer names the
#      offset wanted next. After the last one the node restarts again (VERIFYING).
#   3. That boot installs before anything else: the whole file must match the offer's
#      SHA-256, the manifest its tag (HMAC-SHA256 under a key derived from this node's
#      key), each file its own SHA-256 as it is copied into the spare slot (ota/a or
#      ota/b). The switch is one rename (ota/trial), then a restart.
#   4. main.py boots the new lib on trial (node/ota_boot.py counts its boots), and
#      node/ota_trial.py makes it the lib in force (ota/lib, one rename) once the node is
#      online again; a trial that crashes, or is not online by its deadline, rolls back.
# Each of these boots ends with a restart into a normal one. A refused install or a
# rollback is remembered (ota/failed): offered the same bundle again, the node says so
# instead of taking it, unless the offer says force.

import gc
import hashlib
import os
import sys
import time
from binascii import hexlify

from protocol import cbor
from protocol import messages as M
from protocol import ota as O
from protocol.errors import AUTH, BAD_VALUE, BUSY, INTERNAL, LIMIT, UNSUPPORTED, ProtocolError

from . import unload
from .hal import impl as hal

RX = "ota/rx/"
CHUNK = 480  # the largest chunk taken: its frame fits the loop's 512-byte receive buffer (loop.py)
IDLE_MS = 60000  # a transfer silent this long drops this module (its file stays)
RESET_MS = 300  # from the answer to the restart: time for the answer to leave
_OK = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"


# -- files ------------------------------------------------------------------------------


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _write(path, text):
    """Write a small file whole: the new content appears by one rename (atomic on littlefs
    and POSIX; FAT does not replace by rename, so the old file goes first there)."""
    with open(path + ".tmp", "w") as f:
        f.write(text)
    try:
        os.rename(path + ".tmp", path)
    except OSError:
        _rm(path)
        os.rename(path + ".tmp", path)


def _rm(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _rmtree(path):
    try:
        for e in os.ilistdir(path):
            p = path + "/" + e[0]
            if e[1] == 0x4000:
                _rmtree(p)
            else:
                os.remove(p)
        os.rmdir(path)
    except OSError:
        pass


def _mkdirs(path):
    p = ""
    for part in path.split("/"):
        p = p + "/" + part if p else part
        try:
            os.mkdir(p)
        except OSError:
            pass


def _size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return 0


def _hash(f, n, out=None):
    """SHA-256 of the next n bytes of file f (copied to file out on the way), or None if
    f ends first."""
    h = hashlib.sha256()
    buf = bytearray(512)
    mv = memoryview(buf)
    while n > 0:
        k = f.readinto(mv[: min(n, 512)])
        if not k:
            return None
        h.update(mv[:k])
        if out is not None:
            out.write(mv[:k])
        n -= k
    return h.digest()


def _at(stage, done=0):
    """A power cut here, for the tests: the file .ota_kill names the stage, and how many
    bytes must be in first ("chunk 20000"). Once: the file goes first."""
    t = (_read(".ota_kill") or "-").split()
    if t[0] == stage and done >= (int(t[1]) if len(t) > 1 else 0):
        os.remove(".ota_kill")
        os.system("kill -9 $PPID")
        time.sleep(5)


# -- what start.py and the runtime call ----------------------------------------------


def boot(node, mode):
    """An update's boot (start.py, before the network): 1 takes it, 2 installs it."""
    node.reboot = M.REBOOT_OTA
    if mode == 2:
        _install(node)  # the switch, or the reason it was refused
        hal.reset()
    node.ota_at = time.ticks_add(time.ticks_ms(), IDLE_MS)


def answer(node, mtype, body):
    """The ota-status answering an ota-offer or ota-chunk."""
    node.ota_at = time.ticks_add(time.ticks_ms(), IDLE_MS)
    try:
        if mtype == M.OTA_OFFER:
            return _offered(node, body)
        return _chunk(node, body)
    except OSError as e:  # a full or failing filesystem: this transfer starts over
        _clean()
        return _end(node, LIMIT if e.args and e.args[0] == 28 else INTERNAL, "storage: %s" % e)


def due(node):
    """The transfer ended, or stalled: back to a normal boot (or on to the install)."""
    hal.reset()


# -- receiving --------------------------------------------------------------------------


def _status(code, state, text=None, nxt=None):
    b = {M.CODE: code, O.STATE: state}
    if text:
        b[M.TEXT] = text
    if nxt is not None:
        b[O.NEXT] = nxt
        b[O.MAX_CHUNK] = CHUNK
    return b


def _end(node, code, text, state=O.FAILED):
    """An answer that ends the transfer: a normal boot follows once it has left."""
    if text and code:
        node.log("update refused: " + text)
    node.ota_at = time.ticks_add(time.ticks_ms(), RESET_MS)
    return _status(code, state, text)


def _load():
    """[sha256 hex, size, chunk size, version] of the transfer in ota/rx, or None."""
    t = _read(RX + "offer")
    if not t:
        return None
    t = t.split(None, 3)
    return [t[0], int(t[1]), int(t[2]), t[3]]


def _clean():
    _rm(RX + "offer")
    _rm(RX + "bundle")


def _known(sha):
    """(state, text) of an image this node knows by its SHA-256: on trial, refused or
    rolled back, in force; or None."""
    t = _read("ota/trial")
    if t and t.split()[1] == sha:
        return O.TRIAL, None
    t = _read("ota/failed")
    if t:
        t = t.split(None, 3)
        if t[1] == sha:
            return O.FAILED, t[3] if len(t) > 3 else "it rolled back from this update"
    lib = _read("ota/lib")
    if lib:
        m = _read(lib[:-3] + "meta")
        if m and m.split()[0] == sha:
            return O.CONFIRMED, None
    return None


def _spare():
    """The slot an update unpacks into: never the lib in force."""
    return "ota/b" if _read("ota/lib") == "ota/a/lib" else "ota/a"


def _offered(node, body):
    if body.get(O.BUNDLE) != O.FILES:
        if not hasattr(hal, "ota_partition"):
            return _end(node, UNSUPPORTED, "firmware images need an ESP32 OTA build")
        return __import__("node.ota_image", None, None, ["offer"]).offer(node, body)
    sha, size, chunk, version = body[O.SHA256], body[O.SIZE], body[O.CHUNK_SIZE], body[O.VERSION]
    if len(sha) != 32 or size < O.HEAD_LEN + O.TAG_LEN or not 0 < chunk <= 1024:
        return _end(node, BAD_VALUE, "bad offer")
    if not version or " " in version:
        return _end(node, BAD_VALUE, "a version has no spaces")
    sha = hexlify(sha).decode()
    known = _known(sha)
    if known is not None and known[0] == O.TRIAL:
        return _end(node, 0, None, O.TRIAL)
    if _read("ota/trial") is not None:  # (main.py boots it, or rolls it back, first)
        return _end(node, BUSY, "another update is on trial", O.TRIAL)
    if known is not None and body.get(O.FORCE) is not True:
        return _end(node, 0, known[1], known[0])  # in force already, or refused before
    if known is not None:
        _rm("ota/failed")
    o = _load()
    if o is not None and o[0] == sha and o[1] == size:
        have = _size(RX + "bundle")
        if have < size:
            return _status(0, O.RECEIVING, None, have)  # goes on where the file ends
        return _received(node, size)
    _clean()
    _rmtree(_spare())
    st = os.statvfs("/" if hal.PLATFORM == "esp32" else ".")
    free = st[0] * st[4]
    if free < 2 * size + 8192:  # the bundle, then its files unpacked
        return _end(node, LIMIT, "not enough space: %d bytes free, %d needed" % (free, 2 * size))
    _mkdirs("ota/rx")
    open(RX + "bundle", "wb").close()
    _write(RX + "offer", "%s %d %d %s" % (sha, size, chunk, version))
    node.log("update %s offered: %d bytes" % (version, size))
    return _status(0, O.RECEIVING, None, 0)


def _chunk(node, body):
    img = sys.modules.get("node.ota_image")
    if img is not None and img._buf is not None:  # a MicroPython image (ESP32)
        return img.chunk(node, body)
    o = _load()
    if o is None:
        return _end(node, BAD_VALUE, "no transfer: offer first", O.IDLE)
    off, data = body[O.OFFSET], body[O.DATA]
    have = _size(RX + "bundle")
    if off != have:  # not written: the answer names the offset wanted
        return _status(0, O.RECEIVING, None, have)
    if not data or len(data) > CHUNK or have + len(data) > o[1]:
        return _status(BAD_VALUE, O.RECEIVING, "chunk beyond the offer", have)
    with open(RX + "bundle", "ab") as f:
        f.write(data)
    have += len(data)
    _at("chunk", have)
    if have < o[1]:
        return _status(0, O.RECEIVING, None, have)
    return _received(node, have)


def _received(node, size):
    """Every byte is in: install it in a boot of its own, before anything else runs."""
    node.store.put("ota", 2)
    node.ota_at = time.ticks_add(time.ticks_ms(), RESET_MS)
    node.log("update received: installing it after a restart")
    return _status(0, O.VERIFYING, None, size)


# -- installing (a boot of its own) ------------------------------------------------------


def _install(node):
    gc.collect()
    o = _load()
    if o is None or _size(RX + "bundle") != o[1]:
        return
    _at("received")
    try:
        with open(RX + "bundle", "rb") as f:
            h = _hash(f, o[1])
        if h is None or hexlify(h).decode() != o[0]:
            raise ProtocolError(BAD_VALUE, "the bundle does not match the offer's SHA-256")
        slot, version = _unpack(node, o)
    except ProtocolError as e:  # refused: remembered for the gateway's next offer
        _clean()
        node.log("update %s refused: %s" % (o[3], e.why))
        _mkdirs("ota")
        _write("ota/failed", "- %s %s %s" % (o[0], o[3], e.why))
        return
    _write(slot + "/meta", "%s %s" % (o[0], version))
    _at("staged")
    _rm("ota/boots")
    if _read("ota/lib") is None:
        _write("ota/lib", "lib")  # main.py asks node/ota_boot.py from now on
    _write("ota/trial", "%s/lib %s %s" % (slot, o[0], version))  # the switch
    _at("switched")
    _clean()
    node.log("update %s installed in %s: restarting into it on trial" % (version, slot))


def _unpack(node, o):
    with open(RX + "bundle", "rb") as f:
        head = f.read(O.HEAD_LEN)
        n = (head[4] << 8) | head[5] if len(head) == O.HEAD_LEN else 0
        if head[:4] != O.MAGIC or O.HEAD_LEN + n + O.TAG_LEN > o[1]:
            raise ProtocolError(BAD_VALUE, "not a kithnet bundle")
        man = f.read(n)
        if not _authentic(node, head, man, f.read(O.TAG_LEN)):
            raise ProtocolError(AUTH, "the manifest is not authenticated with this node's key")
        try:
            m = cbor.loads(man)
            version, files = m[O.MF_VERSION], m[O.MF_FILES]
            dirs = sorted(files)  # directories in bytewise order, as the data follows
            if not isinstance(version, str) or " " in version or not version:
                raise TypeError
            man = m = None
        except (ProtocolError, KeyError, TypeError, ValueError):
            raise ProtocolError(BAD_VALUE, "the manifest cannot be read")
        gc.collect()
        slot = _spare()
        _rmtree(slot)
        try:
            left = _files(f, slot, files, dirs, o[1] - O.HEAD_LEN - n - O.TAG_LEN)
        except ProtocolError:
            _rmtree(slot)
            raise
        except (IndexError, TypeError, ValueError):  # an entry of the wrong shape
            left = -1
        if left:
            _rmtree(slot)
            raise ProtocolError(BAD_VALUE, "the bundle's data does not match its manifest")
    return slot, version


def _files(f, slot, files, dirs, left):
    """Copy every file of the manifest out of the bundle; returns the bytes left over."""
    for d in dirs:
        _mkdirs(slot + "/lib/" + _safe(d))
        for e in files[d]:
            name, size, sha = e[0], e[1], e[2]
            if "/" in _safe(name) or not 0 <= size <= left:
                raise ValueError
            with open(slot + "/lib/" + d + "/" + name, "wb") as out:
                h = _hash(f, size, out)
            if h != sha:
                raise ProtocolError(BAD_VALUE, "%s/%s does not match its SHA-256" % (d, name))
            left -= size
            _at("unpack")
    return left


def _safe(path):
    """A relative path of plain names, or ProtocolError: nothing outside the slot."""
    if not isinstance(path, str):
        raise ProtocolError(BAD_VALUE, "a path must be text")
    for part in path.split("/"):
        if not part or part[0] == "." or [c for c in part if c not in _OK]:
            raise ProtocolError(BAD_VALUE, "unsafe path %r in the manifest" % path)
    return path


def _authentic(node, head, man, tag):
    """The tag is HMAC-SHA256 (RFC 2104) of head || manifest under HKDF(node key,
    "kithnet/1 ota" || node id); computed in two pieces, not copied into one."""
    kdf = __import__("protocol.kdf", None, None, ["hkdf"])
    link = node.link
    key = kdf.hkdf(link.key, b"", O.TAG_INFO + link.node_id, 32) + bytes(32)
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    inner.update(head)
    inner.update(man)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    ok = kdf.equal(outer.digest(), tag)
    unload("protocol.kdf")
    return ok
