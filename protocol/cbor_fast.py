# CPython fast path of protocol.cbor, on cbor2's C extension. Never imported on MicroPython.
#
# cbor2 accepts more than the subset (tags, indefinite lengths, simple values, any map
# key), so every result is walked by _check, which applies exactly the portable
# decoder's rules and limits; the tests hold both paths to the same answers.

import io
import threading

import cbor2

from .errors import LIMIT, MALFORMED, ProtocolError
from .limits import MAX_BYTES, MAX_DEPTH, MAX_ITEMS, MAX_TEXT


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


_U64 = 0x10000000000000000
_SCALARS = (float, bool, type(None))


def _check(x, depth):
    """Apply the subset's types and limits to a decoded (or to-be-encoded) value."""
    t = type(x)
    if t is int:
        if not -_U64 <= x < _U64:
            raise ProtocolError(LIMIT, "integer beyond 64 bits")
    elif t is str:
        if len(x) > MAX_TEXT // 4 and len(x.encode("utf-8")) > MAX_TEXT:
            raise ProtocolError(LIMIT, "text string longer than %d bytes" % MAX_TEXT)
    elif t is dict or t is list or t is tuple:
        if depth >= MAX_DEPTH:
            raise ProtocolError(LIMIT, "nesting deeper than %d" % MAX_DEPTH)
        if len(x) > MAX_ITEMS:
            raise ProtocolError(LIMIT, "container of %d entries > %d" % (len(x), MAX_ITEMS))
        depth += 1
        if t is dict:
            for k, v in x.items():
                kt = type(k)
                if kt is int:
                    if not -_U64 <= k < _U64:
                        raise ProtocolError(LIMIT, "integer beyond 64 bits")
                elif kt is str:
                    _check(k, depth)
                else:
                    raise ProtocolError(MALFORMED, "map key must be an integer or text")
                if type(v) is not int or not -_U64 <= v < _U64:
                    _check(v, depth)
        else:
            for v in x:
                if type(v) is not int or not -_U64 <= v < _U64:
                    _check(v, depth)
    elif t is bytes or t is bytearray or t is memoryview:
        if len(x) > MAX_BYTES:
            raise ProtocolError(LIMIT, "byte string of %d bytes > %d" % (len(x), MAX_BYTES))
    elif t not in _SCALARS:
        raise ProtocolError(MALFORMED, "%s is outside the subset" % t.__name__)


# cbor2 encodes a memoryview as an array of ints; the subset (and the portable path) as bytes.
_ENCODERS = {memoryview: lambda enc, v: enc.encode(bytes(v))}


def dumps(obj):
    _check(obj, 0)
    try:
        return cbor2.dumps(obj, canonical=True, encoders=_ENCODERS)
    except cbor2.CBORError as e:
        raise ProtocolError(MALFORMED, "cannot encode: %s" % e) from None


_local = threading.local()


def _decoder(fp):
    # Building a decoder with these options costs more than decoding a report: one per thread.
    dec = getattr(_local, "dec", None)
    if dec is None:
        dec = _local.dec = cbor2.CBORDecoder(
            fp,
            semantic_decoders=_TAGS,
            tag_hook=_no_tag,
            max_depth=MAX_DEPTH + 1,
            allow_indefinite=False,
            allow_duplicate_keys=False,
        )
    else:
        dec.fp = fp
    return dec


def _decode(fp, count):
    dec = _decoder(fp)
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
        if type(obj) is dict and len(obj) <= MAX_ITEMS:
            # A flat map of integers (a report's body) is in the subset as it stands: a
            # decoded integer cannot leave 64 bits without a tag, and tags are refused.
            for k, v in obj.items():
                if type(k) is not int or type(v) is not int:
                    _check(obj, 0)
                    break
        elif type(obj) is not int:
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
    first = data[0] if count == 2 and len(data) > 1 else 24
    if first < 24:
        # A message: its type is one byte (an integer below 24 is its own head), decoded
        # here; cbor2 takes only the body, the hot path of every gateway report.
        fp.seek(1)
        out = [first, *_decode(fp, 1)]
    else:
        out = _decode(fp, count)
    if fp.tell() != len(data):
        raise ProtocolError(MALFORMED, "%d bytes after the items" % (len(data) - fp.tell()))
    return out
