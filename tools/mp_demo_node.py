# A minimal node for the protocol demo. Runs under the real `micropython`, not CPython.
#
# Usage: micropython tools/mp_demo_node.py PORT KEY_HEX NODE_ID_HEX
# It runs the handshake against the peer on 127.0.0.1:PORT, reports a simulated
# temperature and humidity every second, and obeys switch commands. The real node
# runtime (firmware/) replaces this once it exists.

import random
import select
import socket
import sys
import time
from binascii import hexlify, unhexlify

from protocol import errors, frame, messages, model, session

CAPS = {1: model.TEMPERATURE, 2: model.HUMIDITY, 3: model.SWITCH}
CAPABILITIES = model.capabilities(CAPS)


def main():
    port = int(sys.argv[1])
    key = unhexlify(sys.argv[2])
    node_id = unhexlify(sys.argv[3])
    peer = socket.getaddrinfo("127.0.0.1", port)[0][-1]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(socket.getaddrinfo("127.0.0.1", 0)[0][-1])
    poll = select.poll()
    poll.register(sock, select.POLLIN)

    temp = 2150
    hum = 4800
    switch = False
    sess = None
    hello_msg = hello_body = None
    last_hello = last_report = time.ticks_ms() - 5000
    print("node %s: up, gateway at 127.0.0.1:%d" % (hexlify(node_id).decode(), port))
    while True:
        now = time.ticks_ms()
        if sess is None and time.ticks_diff(now, last_hello) >= 2000:
            hello_body = {
                messages.H_NODE: node_id,
                messages.H_NONCE: random_bytes(8),
                messages.H_PROTO: session.PROTOCOL_VERSION,
                messages.H_MODEL: "kithnet-demo",
                messages.H_FW: "0.1.0",
                messages.H_CAPS: CAPS,
                messages.H_NAME: "Demo sensor",
                messages.DUE: 2,
            }
            hello_msg, data = session.hello_frame(hello_body)
            sock.sendto(data, peer)
            last_hello = now
        if sess is not None and time.ticks_diff(now, last_report) >= 1000:
            temp += random.getrandbits(6) - 31
            hum += random.getrandbits(6) - 31
            _, data = sess.seal(messages.REPORT, {1: temp, 2: hum, 3: switch, messages.DUE: 2})
            sock.sendto(data, peer)
            last_report = now
        if not poll.poll(100):
            continue
        data = sock.recv(1500)
        try:
            parsed = frame.parse(data)
            if parsed[0] == frame.PLAIN:
                mtype, body = messages.decode(data[1:])
                if mtype == messages.CHALLENGE and hello_body is not None:
                    sess = session.answer(key, hello_msg, hello_body, body)
                    _, out = sess.seal(messages.CONFIRM, {}, True)
                    sock.sendto(out, peer)
                    print("node: session %d established" % sess.sid)
                elif mtype == messages.ERROR and body[messages.CODE] == errors.NO_SESSION:
                    sess = None
                continue
            if sess is None:
                continue
            seq, con, mtype, body, new = sess.open(data, parsed)
            if mtype == messages.COMMAND:
                answer = sess.answer_for(seq)
                if answer is None:
                    code = 0
                    try:
                        for cid, value in messages.states(body).items():
                            if cid not in CAPABILITIES:
                                raise errors.ProtocolError(errors.UNKNOWN_CAPABILITY, "no %d" % cid)
                            CAPABILITIES[cid].check_set(value)
                        if 3 in body:
                            switch = body[3]
                            print("node: switch -> %s" % switch)
                    except errors.ProtocolError as e:
                        code = e.code
                    _, answer = sess.seal(
                        messages.RESULT, {messages.REF: seq, messages.CODE: code, 3: switch}
                    )
                    sess.remember(seq, answer)
                sock.sendto(answer, peer)
        except errors.ProtocolError as e:
            print("node: dropped a frame: %s" % e)


def random_bytes(n):
    try:
        import os

        return os.urandom(n)
    except (ImportError, AttributeError):
        return bytes(random.getrandbits(8) for _ in range(n))


main()
