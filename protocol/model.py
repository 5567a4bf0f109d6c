# The device model: capability kinds, their value types, units, scales and ranges.
# MicroPython and CPython.
#
# A node is a list of capabilities, each addressed by a small id of the node's own
# (like a MiOT property id) and typed by a kind from this registry (like a Matter
# cluster attribute). Values travel as integers with a fixed decimal scale (Matter's
# approach): the ESP32 has only single-precision floats, and integers encode the same
# on every interpreter. temperature 2150 with scale -2 is 21.50 degC.

from . import values
from .errors import BAD_VALUE, UNKNOWN_CAPABILITY, ProtocolError
from .values import BOOL, ENUM, EVENT, INT

TYPE_NAMES = ("bool", "int", "enum", "event")

# Kind ids 1..999 are this registry; 1000..0x7FFF are reserved for later versions;
# 0x8000..0xFFFF are vendor kinds, described by the options a node sends in hello.
VENDOR_MIN = 0x8000
VENDOR_MAX = 0xFFFF

SWITCH = 1
POWER = 2
VOLTAGE = 3
CURRENT = 4
ENERGY = 5
TEMPERATURE = 6
HUMIDITY = 7
ILLUMINANCE = 8
MOTION = 9
OCCUPANCY = 10
CONTACT = 11
BATTERY = 12
BUTTON = 13
BRIGHTNESS = 14
COLOUR_TEMP = 15
SETPOINT = 16
HVAC_MODE = 17
FAN_MODE = 18
RSSI = 19
UPTIME = 20

BUTTON_EVENTS = {1: "single", 2: "double", 3: "long"}
HVAC_MODES = {0: "off", 1: "heat", 2: "cool", 3: "auto", 4: "dry", 5: "fan_only"}
FAN_MODES = {0: "auto", 1: "low", 2: "medium", 3: "high"}

_I32 = 0x7FFFFFFF

# id: (name, type, unit, scale, min, max, writable, choices)
KINDS = {
    SWITCH: ("switch", BOOL, "", 0, 0, 1, True, None),
    POWER: ("power", INT, "W", -1, 0, 1000000, False, None),
    VOLTAGE: ("voltage", INT, "V", -1, 0, 10000, False, None),
    CURRENT: ("current", INT, "A", -3, 0, 1000000, False, None),
    ENERGY: ("energy", INT, "Wh", 0, 0, 0xFFFFFFFF, False, None),
    TEMPERATURE: ("temperature", INT, "°C", -2, -27315, 32767, False, None),
    HUMIDITY: ("humidity", INT, "%", -2, 0, 10000, False, None),
    ILLUMINANCE: ("illuminance", INT, "lx", 0, 0, 200000, False, None),
    MOTION: ("motion", BOOL, "", 0, 0, 1, False, None),
    OCCUPANCY: ("occupancy", BOOL, "", 0, 0, 1, False, None),
    CONTACT: ("contact", BOOL, "", 0, 0, 1, False, None),
    BATTERY: ("battery", INT, "%", 0, 0, 100, False, None),
    BUTTON: ("button", EVENT, "", 0, 1, 3, False, BUTTON_EVENTS),
    BRIGHTNESS: ("brightness", INT, "", 0, 0, 255, True, None),
    COLOUR_TEMP: ("colour_temp", INT, "K", 0, 1000, 10000, True, None),
    SETPOINT: ("setpoint", INT, "°C", -2, 500, 3500, True, None),
    HVAC_MODE: ("hvac_mode", ENUM, "", 0, 0, 5, True, HVAC_MODES),
    FAN_MODE: ("fan_mode", ENUM, "", 0, 0, 3, True, FAN_MODES),
    RSSI: ("rssi", INT, "dBm", 0, -127, 20, False, None),
    UPTIME: ("uptime", INT, "s", 0, 0, _I32, False, None),
}

BY_NAME = {}
for _k in KINDS:
    BY_NAME[KINDS[_k][0]] = _k

# Keys of the options map a capability may carry in hello (see messages.HELLO).
OPT_MIN = 1
OPT_MAX = 2
OPT_LABEL = 3
OPT_TYPE = 4  # vendor kinds: value type
OPT_UNIT = 5  # vendor kinds: unit text
OPT_SCALE = 6  # vendor kinds: decimal scale
OPT_WRITABLE = 7  # vendor kinds: settable


# A vendor kind's decimal scale: 10^-9 (nano) to 10^9 (giga) covers every SI prefix in use.
MIN_SCALE = -9
MAX_SCALE = 9


def _is_int(x):
    return isinstance(x, int) and x is not True and x is not False


class Capability:
    """One capability of one node: its id on the node, its kind, and the range in force."""

    def __init__(self, cid, kind, opts=None):
        if not isinstance(cid, int) or cid < 0 or cid > 0xFFFF:
            raise ProtocolError(BAD_VALUE, "capability id must be 0..65535")
        if not isinstance(kind, int) or isinstance(kind, bool):
            raise ProtocolError(BAD_VALUE, "capability kind must be an integer")
        opts = opts or {}
        self.cid = cid
        self.kind = kind
        self.opts = opts
        base = KINDS.get(kind)
        if base is not None:
            self.name, self.vtype, self.unit, self.scale, lo, hi, self.writable, self.choices = base
        elif VENDOR_MIN <= kind <= VENDOR_MAX:
            self.name = "vendor_%d" % kind
            self.vtype = opts.get(OPT_TYPE, INT)
            self.unit = opts.get(OPT_UNIT, "")
            self.scale = opts.get(OPT_SCALE, 0)
            self.writable = opts.get(OPT_WRITABLE, False) is True
            self.choices = None
            lo, hi = -_I32 - 1, _I32
            if (
                not _is_int(self.vtype)
                or self.vtype not in (BOOL, INT, ENUM, EVENT)
                or not isinstance(self.unit, str)
                or not _is_int(self.scale)
                or not MIN_SCALE <= self.scale <= MAX_SCALE
            ):
                raise ProtocolError(BAD_VALUE, "vendor kind %d has bad options" % kind)
        else:
            raise ProtocolError(UNKNOWN_CAPABILITY, "unknown capability kind %d" % kind)
        lo = opts.get(OPT_MIN, lo)
        hi = opts.get(OPT_MAX, hi)
        if not _is_int(lo) or not _is_int(hi) or lo > hi:
            raise ProtocolError(BAD_VALUE, "capability %d has a bad range" % cid)
        if base is not None and (lo < base[4] or hi > base[5]):
            raise ProtocolError(BAD_VALUE, "capability %d range is outside its kind's" % cid)
        self.min = lo
        self.max = hi
        self.label = opts.get(OPT_LABEL, self.name)
        if not isinstance(self.label, str):
            raise ProtocolError(BAD_VALUE, "capability %d label must be text" % cid)

    @property
    def rule(self):
        """The tuple values.check takes: what a node keeps to check commands."""
        return (self.label, self.vtype, self.min, self.max, self.choices, self.writable)

    def check(self, value):
        """Raise BAD_VALUE unless value is valid for this capability; return it."""
        return values.check(self.rule, value)

    def check_set(self, value):
        return values.check_set(self.rule, value)

    def describe(self):
        """What hello carries for this capability: the kind, or [kind, options]."""
        return [self.kind, self.opts] if self.opts else self.kind


def capabilities(caps, skipped=None):
    """Capabilities from a hello's caps map {id: kind or [kind, options]}.

    A kind this registry does not know (a newer node) raises UNKNOWN_CAPABILITY, unless
    `skipped` is a list: then its id is appended there and the rest of the node still
    works, which is what a gateway does (SPEC.md, "Versioning").
    """
    if not isinstance(caps, dict):
        raise ProtocolError(BAD_VALUE, "caps must be a map")
    out = {}
    for cid in caps:
        d = caps[cid]
        opts = None
        if isinstance(d, list):
            if len(d) != 2 or not isinstance(d[1], dict):
                raise ProtocolError(BAD_VALUE, "capability %r: expected [kind, options]" % (cid,))
            d, opts = d
        try:
            out[cid] = Capability(cid, d, opts)
        except ProtocolError as e:
            if skipped is None or e.code != UNKNOWN_CAPABILITY:
                raise e
            skipped.append(cid)
    return out


def to_number(cap, value):
    """A wire value as the number a person reads (int for scale 0, else float)."""
    if cap.vtype == BOOL or cap.scale == 0:
        return value
    return value * (10**cap.scale) if cap.scale > 0 else value / (10 ** (-cap.scale))


def from_number(cap, number):
    """A person's number (21.5) as the wire value (2150), rounded to the kind's scale."""
    if cap.vtype == BOOL:
        return bool(number)
    if cap.scale == 0:
        return int(round(number))
    return (
        int(round(number * (10 ** (-cap.scale))))
        if cap.scale < 0
        else int(round(number / 10**cap.scale))
    )
