# The protocol's one error type. Runs on MicroPython and CPython.
#
# Every rejection of bad input (malformed CBOR, a frame that does not open, a value
# out of range, a replay) raises ProtocolError with a reason code from the table
# below, so callers can count causes without parsing messages. The codes are the
# same numbers that travel in an ERROR message (SPEC.md, "Error codes").

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

NAMES = {
    MALFORMED: "malformed",
    LIMIT: "limit",
    VERSION: "version",
    UNKNOWN_TYPE: "unknown-type",
    AUTH: "auth",
    REPLAY: "replay",
    NO_SESSION: "no-session",
    UNKNOWN_CAPABILITY: "unknown-capability",
    BAD_VALUE: "bad-value",
    NOT_WRITABLE: "not-writable",
    BUSY: "busy",
    UNSUPPORTED: "unsupported",
    UNKNOWN_NODE: "unknown-node",
    INTERNAL: "internal",
}


class ProtocolError(ValueError):
    """Bad input, with a reason code (see NAMES) and a human-readable why."""

    def __init__(self, code, why):
        super().__init__(why)
        self.code = code
        self.why = why

    @property
    def reason(self):
        return NAMES.get(self.code, "code-%d" % self.code)

    def __str__(self):
        return "%s: %s" % (self.reason, self.why)
