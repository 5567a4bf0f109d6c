# Retransmission timing for confirmable messages (CoAP, RFC 7252 section 4.8). Portable.
#
# Integer milliseconds only: no floats on the node's hot path, and the same numbers on
# every interpreter. The random part comes in as an integer 0..65535 so the caller picks
# the source (os.urandom on the node, random on the gateway, a constant in tests).

ACK_TIMEOUT_MS = 2000
ACK_RANDOM_FACTOR_PCT = 150  # 1.5
MAX_RETRANSMIT = 4
MAX_TIMEOUT_MS = 16000  # cap on one interval
EXCHANGE_LIFETIME_MS = 247000  # RFC 7252's default: how long a message id stays unique


def initial_timeout_ms(rand16):
    """ACK_TIMEOUT to ACK_TIMEOUT * 1.5, spread by rand16 in 0..65535."""
    span = ACK_TIMEOUT_MS * (ACK_RANDOM_FACTOR_PCT - 100) // 100
    return ACK_TIMEOUT_MS + span * (rand16 & 0xFFFF) // 0xFFFF


def next_timeout_ms(timeout):
    """The interval after a retransmission: doubled, capped."""
    t = timeout * 2
    return MAX_TIMEOUT_MS if t > MAX_TIMEOUT_MS else t


def schedule_ms(rand16):
    """Offsets from the first send at which to retransmit, then give up (last entry)."""
    t = initial_timeout_ms(rand16)
    at = 0
    out = []
    for _ in range(MAX_RETRANSMIT + 1):
        at += t
        out.append(at)
        t = next_timeout_ms(t)
    return out


class Pending:
    """Confirmable messages awaiting their answer, keyed by sequence number.

    now is in ms from any monotonic clock; diff(a, b) is a - b, or time.ticks_diff on a
    node whose tick counter wraps. Only differences of tick values are ever taken, so a
    wrap between two sends is harmless.
    """

    def __init__(self, limit=8, diff=None):
        self.limit = limit
        self.diff = diff or (lambda a, b: a - b)
        self.items = {}  # seq -> [frame, last sent at, timeout, retransmissions]

    def add(self, seq, data, now, rand16):
        if len(self.items) >= self.limit:
            return False
        self.items[seq] = [data, now, initial_timeout_ms(rand16), 0]
        return True

    def done(self, seq):
        return self.items.pop(seq, None) is not None

    def due(self, now):
        """(frames to send again, sequence numbers given up) at time now."""
        resend = []
        lost = []
        for seq in list(self.items):
            it = self.items[seq]
            if self.diff(now, it[1]) >= it[2]:
                if it[3] >= MAX_RETRANSMIT:
                    del self.items[seq]
                    lost.append(seq)
                else:
                    it[3] += 1
                    it[2] = next_timeout_ms(it[2])
                    it[1] = now
                    resend.append(it[0])
        return resend, lost
