# MicroPython half of bench/wire_size.py: a real handshake, then the sealed two-reading
# report, then seal+open timed with time.ticks_us. Runs on the `micropython` Unix port
# with MICROPYPATH = repository root : tests/mp : .frozen (the same as tests/conftest.py).
#
#   micropython -X heapsize=110k bench/mp_seal_open.py KEY HELLO GW_NONCE SID UNIX SEQ ITERS REPS
#
# KEY, HELLO (the hello message bytes) and GW_NONCE are hex. The gateway half of the
# handshake runs here too, from the same inputs as on CPython, so the report frame must
# come out byte for byte the same; wire_size.py compares them. Prints one JSON line.
# MicroPython subset on purpose: no f-strings beyond its support, no typing.

import gc
import json
import sys
import time
from binascii import hexlify, unhexlify

from protocol import frame, messages, session

REPORT_BODY = {1: 2150, 2: 4800, -1: 60}  # 21.50 degC, 48.00 %, next report within 60 s


def main(argv):
    key = unhexlify(argv[0])
    hello_msg = unhexlify(argv[1])
    gw_nonce = unhexlify(argv[2])
    sid = int(argv[3])
    unix_time = int(argv[4])
    seq = int(argv[5])
    iters = int(argv[6])
    reps = int(argv[7])

    # The handshake, both halves, from the exact hello bytes.
    _, hello_body = messages.decode(hello_msg)
    chal, gw = session.challenge(key, hello_msg, hello_body, sid, gw_nonce, unix_time)
    off = frame.parse(chal)[5]
    _, chal_body = messages.decode(chal[off:])
    node = session.answer(key, hello_msg, hello_body, chal_body)
    _, confirm = node.seal(messages.CONFIRM, {}, True)
    if gw.open(confirm)[2] != messages.CONFIRM:
        raise ValueError("confirm did not open as a confirm")

    # The report at the requested sequence number, opened by the gateway.
    node.send_seq = seq
    _, report = node.seal(messages.REPORT, REPORT_BODY)
    got = gw.open(report)
    if got[2] != messages.REPORT or got[3] != REPORT_BODY:
        raise ValueError("report did not round-trip")

    # Timing: fresh sessions per repetition (same keys), starting at a 2-byte PIV so that
    # every timed frame is the full-size one and the replay window always moves forward.
    per_op = []
    for _ in range(reps):
        n = session.Session(node.node_id, sid, node.send_key, node.recv_key, False, 256)
        g = session.Session(gw.node_id, sid, gw.send_key, gw.recv_key, True)
        n.seal(messages.REPORT, REPORT_BODY)  # warm-up outside the clock
        gc.collect()
        t0 = time.ticks_us()
        for _ in range(iters):
            g.open(n.seal(messages.REPORT, REPORT_BODY)[1])
        dt = time.ticks_diff(time.ticks_us(), t0)
        per_op.append(dt / iters)
    per_op.sort()
    gc.collect()
    print(
        json.dumps(
            {
                "impl": sys.implementation.name,
                "version": ".".join(str(v) for v in sys.implementation.version[:3]),
                "report_hex": hexlify(report).decode(),
                "confirm_hex": hexlify(confirm).decode(),
                "iters": iters,
                "reps": reps,
                "us_per_op": per_op,
                "median_us": per_op[len(per_op) // 2],
                "mem_free": gc.mem_free(),
            }
        )
    )


main(sys.argv[1:])
