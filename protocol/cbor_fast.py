# CPython fast path of protocol.cbor, on cbor2's C extension. Never imported on MicroPython.
#
# cbor2 accepts more than the subset (tags, indefinite lengths, simple values, any map
# key), so every result is walked by _check, which applies exactly the portable
# decoder's rules and limits; the tests hold both paths to the same answers.

import io

import cbor2

from .cbor import MAX_BYTES, MAX_DEPTH, MAX_ITEMS, MAX_TEXT
from .errors import LIMIT, MALFORMED, ProtocolError


def _no_tag(decoder, *args):
    raise ProtocolError(MALFORMED, "tags are outside the subset")


class _EveryTag(dict):
    """Routes every semantic tag, including those cbor2 decodes itself, to _no_tag."""

    def __contains__(self, key):
        return True

    def __missing__(self, key):
        return _no_tag

    def get(self, key, default=None):
        return _no_tag


_TAGS = _EveryTag()


def _check(x, depth):
    t = type(x)
    if t is int or t is float or t is bool or x is None:
        if t is int and not -0x10000000000000000 <= x < 0x10000000000000000:
            raise ProtocolError(LIMIT, "integer beyond 64 bits")
        return
    if t is str:
        if len(x) > MAX_TEXT // 4 and len(x.encode("utf-8")) > MAX_TEXT:
            raise ProtocolError(LIMIT, "text string longer than %d bytes" % MAX_TEXT)
        return
    if t is bytes or t is bytearray or t is memoryview:
        if len(x) > MAX_BYTES:
            raise ProtocolError(LIMIT, "byte string of %d bytes > %d" % (len(x), MAX_BYTES))
        return
    if t is list or t is tuple or t is dict:
        if depth >= MAX_DEPTH:
            raise ProtocolError(LIMIT, "nesting deeper than %d" % MAX_DEPTH)
        if len(x) > MAX_ITEMS:
            raise ProtocolError(LIMIT, "container of %d entries > %d" % (len(x), MAX_ITEMS))
        if t is dict:
            for k, v in x.items():
                kt = type(k)
                if kt is not int and kt is not str:
                    raise ProtocolError(MALFORMED, "map key must be an integer or text")
                _check(k, depth + 1)
                _check(v, depth + 1)
        else:
            for v in x:
                _check(v, depth + 1)
        return
    raise ProtocolError(MALFORMED, "%s is outside the subset" % t.__name__)


def dumps(obj):
    _check(obj, 0)
    try:
        return cbor2.dumps(obj, canonical=True)
    except cbor2.CBORError as e:
        raise ProtocolError(MALFORMED, "cannot encode: %s" % e) from None


def _decode(fp, count):
    dec = cbor2.CBORDecoder(
        fp,
        semantic_decoders=_TAGS,
        tag_hook=_no_tag,
        max_depth=MAX_DEPTH + 1,
        allow_indefinite=False,
        allow_duplicate_keys=False,
    )
    out = []
    try:
        for _ in range(count):
            out.append(dec.decode())
    except ProtocolError:
        raise
    except cbor2.CBORDecodeEOF:
        raise ProtocolError(MALFORMED, "truncated") from None
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError) as e:
        cause = e.__cause__
        if isinstance(cause, ProtocolError):
            raise cause from None
        raise ProtocolError(MALFORMED, "not CBOR of the subset: %s" % e) from None
    for obj in out:
        _check(obj, 0)
    return out


def loads(data):
    fp = io.BytesIO(data)
    obj = _decode(fp, 1)[0]
    if fp.tell() != len(data):
        raise ProtocolError(MALFORMED, "%d bytes after the item" % (len(data) - fp.tell()))
    return obj


def decode_seq(data, count):
    fp = io.BytesIO(data)
    out = _decode(fp, count)
    if fp.tell() != len(data):
        raise ProtocolError(MALFORMED, "%d bytes after the items" % (len(data) - fp.tell()))
    return out
