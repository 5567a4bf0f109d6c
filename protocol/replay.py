# Sliding replay window (RFC 4303 / RFC 6479 style). MicroPython and CPython.
#
# One window per sender and key. Only authenticated frames may update it, so a forged
# frame can never move the window. A sequence number seen before inside the window is a
# duplicate: the caller acknowledges it again but does not apply it twice.

from .errors import REPLAY, ProtocolError

WINDOW = 64


class ReplayWindow:
    def __init__(self, size=WINDOW, highest=-1):
        self.size = size
        self.highest = highest  # highest sequence number accepted, -1 for none yet
        self.bits = 0  # bit i set: highest - i was accepted

    def check(self, seq):
        """True if new, False if a duplicate within the window; REPLAY error if too old."""
        if seq > self.highest:
            return True
        back = self.highest - seq
        if back >= self.size:
            raise ProtocolError(REPLAY, "sequence %d is older than the window" % seq)
        return not (self.bits >> back) & 1

    def accept(self, seq):
        """Record an authenticated frame; returns check(seq) as it was before."""
        new = self.check(seq)
        if seq > self.highest:
            shift = seq - self.highest
            self.bits = (
                1 if shift >= self.size else ((self.bits << shift) | 1) & ((1 << self.size) - 1)
            )
            self.highest = seq
        elif new:
            self.bits |= 1 << (self.highest - seq)
        return new
