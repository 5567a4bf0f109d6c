# The protocol's one error type. Runs on MicroPython and CPython.
#
# Every rejection of bad input (malformed CBOR, a frame that does not open, a value
# out of range, a replay) raises ProtocolError with a reason code from the table
# below, so callers can count causes without parsing messages. The codes are the
# same numbers that travel in an ERROR message (SPEC.md, "Error codes").

import sys

MALFORMED = 1  # not well-formed CBOR / frame, or outside the subset
LIMIT = 2  # well-formed but beyond a limit (size, depth, length)
VERSION = 3  # unsupported protocol version
UNKNOWN_TYPE = 4  # unknown message type
AUTH = 5  # frame did not authenticate (wrong key, tampered, truncated)
REPLAY = 6  # sequence number already seen or older than the window
NO_SESSION = 7  # no security context for this sender id
UNKNOWN_CAPABILITY = 8  # capability id the node does not have
BAD_VALUE = 9  # value of the wrong type or out of range
NOT_WRITABLE = 10  # capability cannot be set
BUSY = 11  # receiver cannot take it now; retry later
UNSUPPORTED = 12  # understood but not supported by this receiver
UNKNOWN_NODE = 13  # node id unknown to the gateway (pending adoption)
INTERNAL = 14  # the receiver failed

# Names by code, as one string: on a node, a dict of 14 strings would cost heap for good.
_NAMES = (
    "malformed limit version unknown-type auth replay no-session unknown-capability"
    " bad-value not-writable busy unsupported unknown-node internal"
)


def nth_word(words, n, unknown):
    """Word n (from 1) of a space-separated string, or unknown % n past its end."""
    w = words.split()
    if isinstance(n, int) and 0 < n <= len(w):
        return w[n - 1]
    return unknown % (n,)


def name(code):
    """The name of a reason code ("code-N" for one this version does not know)."""
    return nth_word(_NAMES, code, "code-%s")


if sys.implementation.name != "micropython":
    NAMES = {i + 1: n for i, n in enumerate(_NAMES.split())}


class ProtocolError(ValueError):
    """Bad input, with a reason code (see name()) and a human-readable why."""

    def __init__(self, code, why):
        super().__init__(why)
        self.code = code
        self.why = why

    @property
    def reason(self):
        return name(self.code)

    def __str__(self):
        return "%s: %s" % (self.reason, self.why)
