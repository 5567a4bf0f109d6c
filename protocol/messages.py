# Messages: a small integer type followed by a body map, as a CBOR sequence.
# MicroPython and CPython.
#
# Body keys are small integers. Negative keys are metadata with one meaning in every
# message (DUE, AGE, REF, CODE, TEXT, FADE); non-negative keys are either the type's
# own fields or, in the state messages REPORT, COMMAND and RESULT, capability ids
# mapped to values. Unknown keys are ignored; unknown types are an UNKNOWN_TYPE error.

import sys

from . import cbor
from .errors import MALFORMED, UNKNOWN_TYPE, ProtocolError, nth_word

HELLO = 1
CHALLENGE = 2
CONFIRM = 3
ACK = 4
ERROR = 5
PING = 6
PONG = 7
REPORT = 8
EVENT = 9
COMMAND = 10
RESULT = 11
CONFIG_GET = 12
CONFIG_SET = 13
CONFIG = 14
TIME = 15
OTA_OFFER = 16
OTA_CHUNK = 17
OTA_STATUS = 18

# Names by type, as one string (a dict of strings would stay on a node's heap).
_NAMES = (
    "hello challenge confirm ack error ping pong report event command result config-get"
    " config-set config time ota-offer ota-chunk ota-status"
)


def name(mtype):
    """The name of a message type ("type-N" for one this version does not know)."""
    return nth_word(_NAMES, mtype, "type-%s")


# Metadata keys.
DUE = -1  # next report due within this many seconds
AGE = -2  # seconds since the reading or event was taken (buffered while away)
REF = -3  # sequence number of the request this answers
CODE = -4  # status: 0 ok, else an error code (errors.py)
TEXT = -5  # human-readable detail
FADE = -6  # transition time in milliseconds

# Field keys, per type.
H_NODE = 1
H_NONCE = 2
H_PROTO = 3
H_MODEL = 4
H_FW = 5
H_CAPS = 6
H_REBOOT = 7
H_SLEEPY = 8
H_NAME = 9

C_NODE = 1
C_NONCE = 2
C_SID = 3
C_PROOF = 4
C_TIME = 5

E_CAP = 1
E_CODE = 2
E_COUNT = 3

ERR_VERSIONS = 1

CFG_KEYS = 1
CFG_VALUES = 1

T_UNIX = 1
T_OFFSET = 2


# Reboot reasons carried in hello (machine.reset_cause() mapped to these).
REBOOT_POWER_ON = 0
REBOOT_HARD = 1
REBOOT_WATCHDOG = 2
REBOOT_DEEP_SLEEP = 3
REBOOT_SOFT = 4
REBOOT_BROWNOUT = 5
REBOOT_OTA = 6
REBOOT_UNKNOWN = 7


NONCE_LEN = 8

# Field rules per type, one token per field: key, kind, "!" if required. Kinds: u uint,
# i int, b bytes, t text, B bool, m map, a array. State messages also take capability
# entries. One text for all types, in type order, "|" between them: on a node every tuple,
# and every separate string, would stay on the heap for good.
_RULES = (
    "1b! 2b! 3u! 4t! 5t! 6m! 7u 8B 9t -1u"  # hello
    "|1b! 2b! 3u! 4b! 5u"  # challenge
    "|"  # confirm
    "|-3u!"  # ack
    "|-4u! -3u -5t 1a"  # error
    "|"  # ping
    "|-3u!"  # pong
    "|-1u -2u"  # report
    "|1u! 2u! 3u -2u"  # event
    "|-6u"  # command
    "|-3u! -4u!"  # result
    "|1a"  # config-get
    "|1m!"  # config-set
    "|-3u! -4u! 1m"  # config
    "|1u 2i -3u"  # time
    "|1t! 2u! 3b! 4u! 5t 6B"  # ota-offer
    "|1u! 2b!"  # ota-chunk
    "|-3u -4u! 1u! 2u 3u"  # ota-status
)


def rules(mtype):
    """((key, kind, required), ...) of a type, or None for an unknown type."""
    if not isinstance(mtype, int) or mtype < 1:
        return None
    i = 0
    for _ in range(mtype - 1):  # to the type's own part, without splitting the others
        i = _RULES.find("|", i) + 1
        if i == 0:
            return None
    j = _RULES.find("|", i)
    out = []
    for tok in (_RULES[i:j] if j >= 0 else _RULES[i:]).split():
        req = tok[-1] == "!"
        if req:
            tok = tok[:-1]
        out.append((int(tok[:-1]), tok[-1], req))
    return out


STATE_TYPES = (REPORT, COMMAND, RESULT)

# Messages a receiver must acknowledge when they arrive confirmable, and what answers them.
ANSWERS = {
    CONFIRM: ACK,
    REPORT: ACK,
    EVENT: ACK,
    PING: PONG,
    COMMAND: RESULT,
    CONFIG_GET: CONFIG,
    CONFIG_SET: CONFIG,
    TIME: TIME,
    OTA_OFFER: OTA_STATUS,
    OTA_CHUNK: OTA_STATUS,
}


_rules = rules
if sys.implementation.name != "micropython":  # the gateway's hot path: parse each spec once
    NAMES = {i + 1: n for i, n in enumerate(_NAMES.split())}
    RULES = {i + 1: spec for i, spec in enumerate(_RULES.split("|"))}
    _cache = {}

    def _rules(mtype):
        r = _cache.get(mtype)
        if r is None:
            r = rules(mtype)
            if r is not None:
                _cache[mtype] = r
        return r


def _kind_ok(v, kind):
    if kind == "u":
        return isinstance(v, int) and v is not True and v is not False and v >= 0
    if kind == "i":
        return isinstance(v, int) and v is not True and v is not False
    if kind == "b":
        return isinstance(v, bytes)
    if kind == "t":
        return isinstance(v, str)
    if kind == "B":
        return v is True or v is False
    if kind == "m":
        return isinstance(v, dict)
    return isinstance(v, list)


def validate(mtype, body):
    """Check body against the rules of mtype; raise MALFORMED naming the field."""
    fields = _rules(mtype)
    if fields is None:
        raise ProtocolError(UNKNOWN_TYPE, "unknown message type %r" % (mtype,))
    if not isinstance(body, dict):
        raise ProtocolError(MALFORMED, "%s body must be a map" % name(mtype))
    for key, kind, required in fields:
        if key in body:
            if not _kind_ok(body[key], kind):
                raise ProtocolError(
                    MALFORMED, "%s field %d has the wrong type" % (name(mtype), key)
                )
        elif required:
            raise ProtocolError(MALFORMED, "%s lacks field %d" % (name(mtype), key))
    if mtype in STATE_TYPES:
        for key in body:
            if isinstance(key, int) and key >= 0:
                v = body[key]
                if not (v is True or v is False or isinstance(v, int)):
                    raise ProtocolError(
                        MALFORMED, "capability %d value must be a bool or int" % key
                    )
    if mtype == HELLO or mtype == CHALLENGE:
        if len(body[1]) != 8 or len(body[2]) != NONCE_LEN:
            raise ProtocolError(MALFORMED, "%s node id and nonce must be 8 bytes" % name(mtype))
    return body


def encode(mtype, body):
    """The bytes of a message: CBOR type then CBOR body."""
    validate(mtype, body)
    return (bytes((mtype,)) if mtype < 24 else cbor.dumps(mtype)) + cbor.dumps(body)


def decode(data):
    """(type, body) of a message, validated; ProtocolError for anything else."""
    if len(data) < 2:
        raise ProtocolError(MALFORMED, "message of %d bytes is too short" % len(data))
    mtype, body = cbor.decode_seq(data, 2)
    if mtype is True or mtype is False or not isinstance(mtype, int) or mtype < 0:
        raise ProtocolError(MALFORMED, "message type must be an unsigned integer")
    return mtype, validate(mtype, body)


def states(body):
    """The capability entries of a state message, as {capability id: value}."""
    out = {}
    for k in body:
        if isinstance(k, int) and k >= 0:
            out[k] = body[k]
    return out
