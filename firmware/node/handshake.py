# The node's side of the handshake: the hello (retransmitted by Link.tick) and the answer
# to the gateway's challenge. Loaded while a handshake runs and dropped, with the key
# schedule, once the session is made: a node that stays online for months should not
# keep code it ran once on its heap.

import gc
import os
import time

from protocol import messages as M
from protocol import session
from protocol.errors import ProtocolError

from . import unload


def hello_body(link):
    n = link.node
    body = {
        M.H_NODE: link.node_id,
        M.H_NONCE: os.urandom(M.NONCE_LEN),
        M.H_PROTO: session.PROTOCOL_VERSION,
        M.H_MODEL: n.model,
        M.H_FW: n.firmware,
        M.H_CAPS: n.hello_caps,
        M.H_REBOOT: n.reboot,
        M.H_NAME: n.cfg["node"]["name"],
        M.DUE: n.due(),
    }
    if link.sleepy:
        body[M.H_SLEEPY] = True
    return body


def send_hello(link, now):
    """Send the hello, made once per handshake so that retransmissions repeat its nonce."""
    if link.hello is None:
        body = hello_body(link)
        msg, data = session.hello_frame(body)
        link.hello = [msg, body, data, 0, now]  # message bytes, body, frame, sends, first
    link.hello[3] += 1
    link._out(link.hello[2])


def on_challenge(link, body):
    """Check the gateway's proof, make the session, send the confirm."""
    h = link.hello
    gc.collect()  # the key schedule is loaded now: give it the longest free runs there are
    try:
        link.sess = session.answer(link.key, h[0], h[1], body)
    except ProtocolError as e:
        link.drop(e)
        link.node.log("challenge rejected (%s): does the gateway hold this node's key?" % e)
        return
    link.hello = None
    unload("protocol.keys", "protocol.kdf", "node.handshake")
    if M.C_TIME in body:
        link.clock = (body[M.C_TIME], time.ticks_ms())
    link.seq_mark = 0
    link.confirm_seq = link.send(M.CONFIRM, {}, True)
