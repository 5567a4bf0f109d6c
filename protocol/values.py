# Checking a value against a capability's rule. MicroPython and CPython.
#
# Apart from the registry (model.py) so that a node can keep this loaded to check the
# gateway's commands while it drops the registry after boot. A rule is the tuple
# (label, value type, min, max, choices or None, writable).

from .errors import BAD_VALUE, NOT_WRITABLE, ProtocolError

BOOL = 0
INT = 1
ENUM = 2
EVENT = 3  # no state: occurrences travel as EVENT messages


def check(rule, value):
    """Raise BAD_VALUE unless value is valid under rule; return it."""
    label, t, lo, hi, choices, _ = rule
    if t == BOOL:
        if value is not True and value is not False:
            raise ProtocolError(BAD_VALUE, "%s takes true or false" % label)
        return value
    if value is True or value is False or not isinstance(value, int):
        raise ProtocolError(BAD_VALUE, "%s takes an integer" % label)
    if value < lo or value > hi:
        raise ProtocolError(BAD_VALUE, "%s value %d is outside %d..%d" % (label, value, lo, hi))
    if choices is not None and value not in choices:
        raise ProtocolError(BAD_VALUE, "%s has no choice %d" % (label, value))
    return value


def check_set(rule, value):
    """check(), for a command: the capability must also be settable."""
    if not rule[5]:
        raise ProtocolError(NOT_WRITABLE, "%s cannot be set" % rule[0])
    if rule[1] == EVENT:
        raise ProtocolError(NOT_WRITABLE, "%s is an event" % rule[0])
    return check(rule, value)
