# Messages: a small integer type followed by a body map, as a CBOR sequence.
# MicroPython and CPython.
#
# Body keys are small integers. Negative keys are metadata with one meaning in every
# message (DUE, AGE, REF, CODE, TEXT, FADE); non-negative keys are either the type's
# own fields or, in the state messages REPORT, COMMAND and RESULT, capability ids
# mapped to values. Unknown keys are ignored; unknown types are an UNKNOWN_TYPE error.

from . import cbor
from .errors import MALFORMED, UNKNOWN_TYPE, ProtocolError

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

NAMES = {
    HELLO: "hello",
    CHALLENGE: "challenge",
    CONFIRM: "confirm",
    ACK: "ack",
    ERROR: "error",
    PING: "ping",
    PONG: "pong",
    REPORT: "report",
    EVENT: "event",
    COMMAND: "command",
    RESULT: "result",
    CONFIG_GET: "config-get",
    CONFIG_SET: "config-set",
    CONFIG: "config",
    TIME: "time",
    OTA_OFFER: "ota-offer",
    OTA_CHUNK: "ota-chunk",
    OTA_STATUS: "ota-status",
}

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

OTA_VERSION = 1
OTA_SIZE = 2
OTA_SHA256 = 3
OTA_CHUNK_SIZE = 4
OTA_BUNDLE = 5
OTA_OFFSET = 1
OTA_DATA = 2
OTA_STATE = 1
OTA_NEXT = 2

# Reboot reasons carried in hello (machine.reset_cause() mapped to these).
REBOOT_POWER_ON = 0
REBOOT_HARD = 1
REBOOT_WATCHDOG = 2
REBOOT_DEEP_SLEEP = 3
REBOOT_SOFT = 4
REBOOT_BROWNOUT = 5
REBOOT_OTA = 6
REBOOT_UNKNOWN = 7

# OTA states carried in ota-status.
OTA_IDLE = 0
OTA_RECEIVING = 1
OTA_VERIFYING = 2
OTA_STAGED = 3
OTA_TRIAL = 4
OTA_CONFIRMED = 5
OTA_FAILED = 6

NONCE_LEN = 8

# Field rules: type -> ((key, kind, required), ...). kinds: u uint, i int, b bytes,
# t text, B bool, m map, a array. State messages also take capability entries.
_U, _I, _B, _T, _BOOL, _M, _A = "u", "i", "b", "t", "B", "m", "a"
RULES = {
    HELLO: (
        (H_NODE, _B, True),
        (H_NONCE, _B, True),
        (H_PROTO, _U, True),
        (H_MODEL, _T, True),
        (H_FW, _T, True),
        (H_CAPS, _M, True),
        (H_REBOOT, _U, False),
        (H_SLEEPY, _BOOL, False),
        (H_NAME, _T, False),
        (DUE, _U, False),
    ),
    CHALLENGE: (
        (C_NODE, _B, True),
        (C_NONCE, _B, True),
        (C_SID, _U, True),
        (C_PROOF, _B, True),
        (C_TIME, _U, False),
    ),
    CONFIRM: (),
    ACK: ((REF, _U, True),),
    ERROR: ((CODE, _U, True), (REF, _U, False), (TEXT, _T, False), (ERR_VERSIONS, _A, False)),
    PING: (),
    PONG: ((REF, _U, True),),
    REPORT: ((DUE, _U, False), (AGE, _U, False)),
    EVENT: ((E_CAP, _U, True), (E_CODE, _U, True), (E_COUNT, _U, False), (AGE, _U, False)),
    COMMAND: ((FADE, _U, False),),
    RESULT: ((REF, _U, True), (CODE, _U, True)),
    CONFIG_GET: ((CFG_KEYS, _A, False),),
    CONFIG_SET: ((CFG_VALUES, _M, True),),
    CONFIG: ((REF, _U, True), (CODE, _U, True), (CFG_VALUES, _M, False)),
    TIME: ((T_UNIX, _U, False), (T_OFFSET, _I, False), (REF, _U, False)),
    OTA_OFFER: (
        (OTA_VERSION, _T, True),
        (OTA_SIZE, _U, True),
        (OTA_SHA256, _B, True),
        (OTA_CHUNK_SIZE, _U, True),
        (OTA_BUNDLE, _T, False),
    ),
    OTA_CHUNK: ((OTA_OFFSET, _U, True), (OTA_DATA, _B, True)),
    OTA_STATUS: ((REF, _U, False), (CODE, _U, True), (OTA_STATE, _U, True), (OTA_NEXT, _U, False)),
}

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


def _kind_ok(v, kind):
    if kind == _U:
        return isinstance(v, int) and v is not True and v is not False and v >= 0
    if kind == _I:
        return isinstance(v, int) and v is not True and v is not False
    if kind == _B:
        return isinstance(v, bytes)
    if kind == _T:
        return isinstance(v, str)
    if kind == _BOOL:
        return v is True or v is False
    if kind == _M:
        return isinstance(v, dict)
    return isinstance(v, list)


def validate(mtype, body):
    """Check body against the rules of mtype; raise MALFORMED naming the field."""
    rules = RULES.get(mtype)
    if rules is None:
        raise ProtocolError(UNKNOWN_TYPE, "unknown message type %r" % (mtype,))
    if not isinstance(body, dict):
        raise ProtocolError(MALFORMED, "%s body must be a map" % NAMES[mtype])
    for key, kind, required in rules:
        if key in body:
            if not _kind_ok(body[key], kind):
                raise ProtocolError(
                    MALFORMED, "%s field %d has the wrong type" % (NAMES[mtype], key)
                )
        elif required:
            raise ProtocolError(MALFORMED, "%s lacks field %d" % (NAMES[mtype], key))
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
            raise ProtocolError(MALFORMED, "%s node id and nonce must be 8 bytes" % NAMES[mtype])
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
