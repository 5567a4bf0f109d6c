"""Unit tests of the protocol on CPython: handshake, messages, model, timing, counters, frames."""

from __future__ import annotations

import pytest
from kithnet.protocol import (
    discovery,
    errors,
    frame,
    keys,
    messages,
    model,
    ota,
    replay,
    retransmit,
    session,
)
from kithnet.protocol.errors import ProtocolError

M = messages
NODE_KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
OTHER_KEY = bytes.fromhex("f0e0d0c0b0a090807060504030201000")
NODE_ID = bytes.fromhex("4b4e000000000001")
OTHER_ID = bytes.fromhex("4b4e000000000002")
NONCE_N = bytes.fromhex("1111111111111111")
NONCE_G = bytes.fromhex("2222222222222222")
SID = 0x0102


def raises(code, fn, *args, **kw):
    """Call fn and return its ProtocolError, which must carry code."""
    with pytest.raises(ProtocolError) as ei:
        fn(*args, **kw)
    assert ei.value.code == code, str(ei.value)
    return ei.value


def hello_body(node_id=NODE_ID, nonce=NONCE_N, caps=None):
    return {
        M.H_NODE: node_id,
        M.H_NONCE: nonce,
        M.H_PROTO: session.PROTOCOL_VERSION,
        M.H_MODEL: "kn-plug",
        M.H_FW: "1.2.3",
        M.H_CAPS: caps if caps is not None else {1: model.SWITCH, 2: model.POWER},
        M.H_REBOOT: M.REBOOT_POWER_ON,
        M.H_SLEEPY: False,
        M.H_NAME: "kitchen plug",
        M.DUE: 60,
    }


class Handshake:
    """Both sides of one handshake, run as far as the challenge."""

    def __init__(self, node_key=NODE_KEY, gw_key=NODE_KEY, gw_nonce=NONCE_G, sid=SID, hello=None):
        self.hello = hello or hello_body()
        self.hello_msg, self.hello_frame = session.hello_frame(self.hello)
        # Gateway: parse the plain frame and answer it.
        kind, gw, _, _, _, off = frame.parse(self.hello_frame)
        assert (kind, gw) == (frame.PLAIN, False)
        self.gw_hello_msg = self.hello_frame[off:]
        mtype, self.gw_hello = messages.decode(self.gw_hello_msg)
        assert mtype == M.HELLO
        self.chal_frame, self.gw = session.challenge(
            gw_key, self.gw_hello_msg, self.gw_hello, sid, gw_nonce, unix_time=1_700_000_000
        )
        kind, gw, _, _, _, off = frame.parse(self.chal_frame)
        assert (kind, gw) == (frame.PLAIN, True)
        mtype, self.chal = messages.decode(self.chal_frame[off:])
        assert mtype == M.CHALLENGE
        self.node_key = node_key

    def answer(self):
        return session.answer(self.node_key, self.hello_msg, self.hello, self.chal)


def established():
    hs = Handshake()
    node = hs.answer()
    _, confirm = node.seal(M.CONFIRM, {}, confirmable=True)
    assert hs.gw.open(confirm)[2] == M.CONFIRM
    return node, hs.gw


# --------------------------------------------------------------------------- handshake


def test_handshake_end_to_end():
    hs = Handshake()
    assert hs.chal[M.C_NODE] == NODE_ID
    assert hs.chal[M.C_NONCE] == NONCE_G
    assert hs.chal[M.C_SID] == SID
    assert hs.chal[M.C_TIME] == 1_700_000_000
    assert len(hs.chal[M.C_PROOF]) == 8
    gw = hs.gw
    assert (gw.is_gateway, gw.sid, gw.send_seq, gw.node_id) == (True, SID, 1, NODE_ID)
    node = hs.answer()
    assert (node.is_gateway, node.sid, node.send_seq) == (False, SID, 0)
    assert node.send_key == gw.recv_key and node.recv_key == gw.send_key
    assert node.send_key != node.recv_key
    # confirm: sealed, seq 0, CON, node -> gateway
    seq, confirm = node.seal(M.CONFIRM, {}, confirmable=True)
    assert seq == 0
    kind, from_gw, con, kid, pseq, _ = frame.parse(confirm)
    assert (kind, from_gw, con, kid, pseq) == (frame.SESSION, False, True, SID, 0)
    assert gw.open(confirm) == (0, True, M.CONFIRM, {}, True)
    # ack from the gateway starts at seq 1 (seq 0 was the proof's nonce)
    seq, ack = gw.seal(M.ACK, {M.REF: 0})
    assert seq == 1
    assert node.open(ack) == (1, False, M.ACK, {M.REF: 0}, True)
    # traffic both ways
    _, rep = node.seal(M.REPORT, {1: True, 2: 1234, M.DUE: 60})
    assert gw.open(rep) == (1, False, M.REPORT, {1: True, 2: 1234, M.DUE: 60}, True)
    _, cmd = gw.seal(M.COMMAND, {1: False}, confirmable=True)
    assert node.open(cmd) == (2, True, M.COMMAND, {1: False}, True)


def test_handshake_keys_match_key_schedule():
    hs = Handshake()
    n2g, g2n = keys.session_keys(NODE_KEY, NODE_ID, NONCE_N, NONCE_G, SID, hs.hello_msg)
    assert (hs.gw.recv_key, hs.gw.send_key) == (n2g, g2n)
    assert hs.chal[M.C_PROOF] == keys.challenge_proof(g2n, NODE_ID)
    keys.check_proof(g2n, NODE_ID, hs.chal[M.C_PROOF])
    raises(errors.AUTH, keys.check_proof, n2g, NODE_ID, hs.chal[M.C_PROOF])


def test_wrong_node_key():
    # The gateway holds another key for this node id.
    hs = Handshake(gw_key=OTHER_KEY)
    raises(errors.AUTH, hs.answer)  # node: the proof does not verify
    # Had the node gone on with its own keys, the gateway could not open its confirm.
    n2g, g2n = keys.session_keys(NODE_KEY, NODE_ID, NONCE_N, NONCE_G, SID, hs.hello_msg)
    node = session.Session(NODE_ID, SID, n2g, g2n, False)
    _, confirm = node.seal(M.CONFIRM, {}, confirmable=True)
    raises(errors.AUTH, hs.gw.open, confirm)
    assert hs.gw.window.highest == -1  # a forged frame never moves the window


def test_tampered_hello():
    hs = Handshake()
    tampered = dict(hs.hello)
    tampered[M.H_CAPS] = {1: model.SWITCH, 2: model.POWER, 3: model.ENERGY}
    msg, _ = session.hello_frame(tampered)
    chal_frame, gw = session.challenge(NODE_KEY, msg, tampered, SID, NONCE_G)
    _, chal = messages.decode(chal_frame[1:])
    # Keys depend on the hello bytes: the node already refuses the gateway's proof...
    raises(errors.AUTH, session.answer, NODE_KEY, hs.hello_msg, hs.hello, chal)
    # ...and a confirm under the node's keys would not open at the gateway.
    n2g, g2n = keys.session_keys(NODE_KEY, NODE_ID, NONCE_N, NONCE_G, SID, hs.hello_msg)
    assert n2g != gw.recv_key and g2n != gw.send_key
    node = session.Session(NODE_ID, SID, n2g, g2n, False)
    raises(errors.AUTH, gw.open, node.seal(M.CONFIRM, {}, True)[1])


def test_replayed_hello_gets_new_challenge_old_session_unaffected():
    hs = Handshake()
    node = hs.answer()
    _, confirm = node.seal(M.CONFIRM, {}, confirmable=True)
    old_gw = hs.gw
    assert old_gw.open(confirm)[4] is True
    # An attacker replays the hello: the gateway answers with a fresh nonce (same sid here).
    replayed = Handshake(gw_nonce=bytes.fromhex("3333333333333333"))
    assert replayed.hello_frame == hs.hello_frame
    assert replayed.chal_frame != hs.chal_frame
    new_gw = replayed.gw
    assert new_gw.recv_key != old_gw.recv_key
    # Nobody can answer the new challenge with old material.
    raises(errors.AUTH, new_gw.open, confirm)
    # The old session goes on working.
    _, rep = node.seal(M.REPORT, {2: 5})
    assert old_gw.open(rep) == (1, False, M.REPORT, {2: 5}, True)
    raises(errors.AUTH, new_gw.open, rep)
    _, ack = old_gw.seal(M.ACK, {M.REF: 1})
    assert node.open(ack)[2] == M.ACK


def test_challenge_for_another_node():
    hs = Handshake()
    chal = dict(hs.chal)
    chal[M.C_NODE] = OTHER_ID
    raises(errors.AUTH, session.answer, NODE_KEY, hs.hello_msg, hs.hello, chal)


def test_challenge_sid_beyond_16_bits():
    hs = Handshake()
    chal = dict(hs.chal)
    chal[M.C_SID] = 0x10000
    raises(errors.MALFORMED, session.answer, NODE_KEY, hs.hello_msg, hs.hello, chal)


def test_gateway_refuses_sid_beyond_16_bits():
    hs = Handshake()
    for sid in (-1, 0x10000):
        args = (NODE_KEY, hs.gw_hello_msg, hs.gw_hello, sid, NONCE_G)
        raises(errors.LIMIT, session.challenge, *args)


def test_challenge_with_bad_proof():
    hs = Handshake()
    chal = dict(hs.chal)
    chal[M.C_PROOF] = bytes(8)
    raises(errors.AUTH, session.answer, NODE_KEY, hs.hello_msg, hs.hello, chal)
    chal[M.C_PROOF] = hs.chal[M.C_PROOF][:7]
    raises(errors.AUTH, session.answer, NODE_KEY, hs.hello_msg, hs.hello, chal)


def test_frames_from_the_wrong_direction():
    node, gw = established()
    _, up = node.seal(M.REPORT, {1: True})
    _, down = gw.seal(M.ACK, {M.REF: 1})
    raises(errors.AUTH, node.open, up)  # reflected back to the node
    raises(errors.AUTH, gw.open, down)  # reflected back to the gateway
    # The direction bit flipped: passes the direction check, fails the tag.
    raises(errors.AUTH, node.open, bytes([up[0] | frame.F_GATEWAY]) + up[1:])
    raises(errors.AUTH, gw.open, bytes([down[0] & ~frame.F_GATEWAY]) + down[1:])
    # Neither side's window moved.
    assert node.window.highest == -1 and gw.window.highest == 0


def test_wrong_sid():
    node, gw = established()
    other = session.Session(NODE_ID, SID + 1, node.send_key, node.recv_key, False, 1)
    _, data = other.seal(M.REPORT, {1: True})
    raises(errors.NO_SESSION, gw.open, data)
    assert gw.window.highest == 0


def test_plain_and_broadcast_frames_are_not_session_frames():
    _, gw = established()
    raises(errors.MALFORMED, gw.open, frame.plain(M.encode(M.PING, {})))
    bkey = keys.broadcast_key(NODE_KEY, NODE_ID)
    raises(errors.MALFORMED, gw.open, session.seal_broadcast(bkey, NODE_ID, 5, M.REPORT, {}))


def test_session_sequence_exhausted():
    node, _ = established()
    node.send_seq = frame.MAX_SEQ
    seq, data = node.seal(M.PING, {}, True)
    assert seq == frame.MAX_SEQ and data[0] & 3 == 3
    raises(errors.NO_SESSION, node.seal, M.PING, {}, True)


def test_unknown_type_in_authenticated_frame():
    node, gw = established()
    seq = node.send_seq
    node.send_seq += 1
    data = frame.seal(frame.SESSION, node.send_key, NODE_ID, SID, seq, b"\x18\x63\xa0")  # 99, {}
    raises(errors.UNKNOWN_TYPE, gw.open, data)
    # The frame authenticated: its seq is in the window, so the REF of the error is known.
    assert frame.parse(data)[4] == seq and gw.window.check(seq) is False


def test_remember_answer_for_is_bounded_to_8():
    node, _ = established()
    for ref in range(9):
        node.remember(ref, b"answer %d" % ref)
    assert node.answer_for(0) is None
    assert [node.answer_for(r) for r in range(1, 9)] == [b"answer %d" % r for r in range(1, 9)]
    assert len(node._answers) == 8 and len(node._order) == 8
    node.remember(5, b"again")  # an existing ref is replaced, nothing evicted
    assert node.answer_for(5) == b"again" and node.answer_for(1) == b"answer 1"
    for ref in range(100, 120):
        node.remember(ref, b"x")
        assert len(node._answers) <= 8
    assert node.answer_for(5) is None and node.answer_for(119) == b"x"


def test_duplicate_answered_from_cache():
    node, gw = established()
    seq, cmd = gw.seal(M.COMMAND, {1: True}, confirmable=True)
    got = node.open(cmd)
    assert got[4] is True
    _, result = node.seal(M.RESULT, {M.REF: seq, M.CODE: 0, 1: True})
    node.remember(seq, result)
    again = node.open(cmd)  # retransmission: same bytes
    assert again[:4] == got[:4] and again[4] is False
    assert node.answer_for(again[0]) == result


# --------------------------------------------------------------------------- messages

VALID = {
    M.HELLO: hello_body(),
    M.CHALLENGE: {M.C_NODE: NODE_ID, M.C_NONCE: NONCE_G, M.C_SID: 1, M.C_PROOF: bytes(8)},
    M.CONFIRM: {},
    M.ACK: {M.REF: 3},
    M.ERROR: {M.CODE: errors.VERSION, M.REF: 1, M.TEXT: "v1 only", M.ERR_VERSIONS: [1]},
    M.PING: {},
    M.PONG: {M.REF: 7},
    M.REPORT: {1: True, 2: 1234, M.DUE: 60, M.AGE: 5},
    M.EVENT: {M.E_CAP: 4, M.E_CODE: 1, M.E_COUNT: 2, M.AGE: 0},
    M.COMMAND: {1: False, 14: 128, M.FADE: 500},
    M.RESULT: {M.REF: 2, M.CODE: 0, 1: False},
    M.CONFIG_GET: {M.CFG_KEYS: ["interval"]},
    M.CONFIG_SET: {M.CFG_VALUES: {"interval": 30}},
    M.CONFIG: {M.REF: 4, M.CODE: 0, M.CFG_VALUES: {"interval": 30}},
    M.TIME: {M.T_UNIX: 1_700_000_000, M.T_OFFSET: -3600, M.REF: 9},
    M.OTA_OFFER: {
        ota.VERSION: "1.3.0",
        ota.SIZE: 300_000,
        ota.SHA256: bytes(32),
        ota.CHUNK_SIZE: 512,
        ota.BUNDLE: "app",
    },
    M.OTA_CHUNK: {ota.OFFSET: 0, ota.DATA: b"\x00" * 512},
    M.OTA_STATUS: {M.REF: 1, M.CODE: 0, ota.STATE: ota.RECEIVING, ota.NEXT: 512},
}

WRONG = {
    "u": [-1, True, "1", 1.0, b"\x01", None],
    "i": [True, "1", 1.5, None, [1]],
    "b": ["ab", 1, [1], bytearray(b"x"), None],
    "t": [b"x", 1, None, ["x"]],
    "B": [0, 1, "true", None],
    "m": [[], 1, "m", None],
    "a": [{}, 1, "a", b"a", None],
}

FIELDS = [(t, key, kind, req) for t in M.RULES for key, kind, req in M.rules(t)]


def test_every_type_has_rules_and_a_valid_example():
    assert set(M.RULES) == set(M.NAMES) == set(VALID)
    for mtype, body in VALID.items():
        assert M.validate(mtype, body) is body
        data = M.encode(mtype, body)
        assert M.decode(data) == (mtype, body)


@pytest.mark.parametrize(
    ("mtype", "key"),
    [(t, k) for t, k, _, req in FIELDS if req],
    ids=lambda v: str(v),
)
def test_missing_required_field(mtype, key):
    body = dict(VALID[mtype])
    del body[key]
    e = raises(errors.MALFORMED, M.validate, mtype, body)
    assert str(key) in e.why
    raises(errors.MALFORMED, M.encode, mtype, body)


@pytest.mark.parametrize(
    ("mtype", "key", "kind"), [(t, k, kind) for t, k, kind, _ in FIELDS], ids=lambda v: str(v)
)
def test_wrong_typed_field(mtype, key, kind):
    for bad in WRONG[kind]:
        body = dict(VALID[mtype])
        body[key] = bad
        raises(errors.MALFORMED, M.validate, mtype, body)


def test_optional_fields_may_be_absent_and_unknown_keys_ignored():
    for mtype in M.RULES:
        rules = M.rules(mtype)
        body = {k: v for k, v in VALID[mtype].items() if all(k != r[0] or r[2] for r in rules)}
        if mtype not in M.STATE_TYPES:
            body[40] = "future field"
        body[-40] = [1, 2]
        assert M.decode(M.encode(mtype, body)) == (mtype, body)


@pytest.mark.parametrize("mtype", M.STATE_TYPES)
def test_state_values_are_bool_or_int(mtype):
    for bad in (1.5, "on", b"\x01", None, [1], {1: 1}):
        body = dict(VALID[mtype])
        body[20] = bad
        raises(errors.MALFORMED, M.validate, mtype, body)
    assert M.states(VALID[mtype]) == {k: v for k, v in VALID[mtype].items() if k >= 0}


@pytest.mark.parametrize("mtype", [M.HELLO, M.CHALLENGE])
@pytest.mark.parametrize("key", [1, 2])
@pytest.mark.parametrize("length", [0, 7, 9, 16])
def test_handshake_ids_and_nonces_are_8_bytes(mtype, key, length):
    body = dict(VALID[mtype])
    body[key] = bytes(length)
    raises(errors.MALFORMED, M.validate, mtype, body)


def test_unknown_message_type():
    for mtype in (0, 19, 99, 2**64 - 1):
        raises(errors.UNKNOWN_TYPE, M.validate, mtype, {})
        raises(errors.UNKNOWN_TYPE, M.encode, mtype, {})
        data = bytes.fromhex("1b") + mtype.to_bytes(8, "big") + b"\xa0"
        e = raises(errors.UNKNOWN_TYPE, M.decode, data)
        assert e.reason == "unknown-type"


@pytest.mark.parametrize(
    "hexdata",
    [
        "",  # empty
        "08",  # no body
        "08a0a0",  # three items
        "20a0",  # negative type
        "f5a0",  # true as the type
        "f93c00a0",  # 1.0 as the type
        "6161a0",  # text as the type
        "0880",  # body is an array
        "08f6",  # body is null
    ],
)
def test_decode_malformed_messages(hexdata):
    raises(errors.MALFORMED, M.decode, bytes.fromhex(hexdata))


def test_body_must_be_a_map():
    for mtype in M.RULES:
        raises(errors.MALFORMED, M.validate, mtype, [])


def test_answers_table():
    assert M.ANSWERS[M.CONFIRM] == M.ACK
    assert M.ANSWERS[M.COMMAND] == M.RESULT
    assert M.ANSWERS[M.PING] == M.PONG
    for req, ans in M.ANSWERS.items():
        assert req in M.RULES and ans in M.RULES
    # Every answer carries REF (a required or optional field).
    for ans in set(M.ANSWERS.values()):
        assert M.REF in [k for k, _, _ in M.rules(ans)]


# --------------------------------------------------------------------------- model


def test_registry_ids_and_names():
    assert len(model.KINDS) == len(model.BY_NAME)
    for kid, spec in model.KINDS.items():
        assert 1 <= kid < 1000 and model.BY_NAME[spec[0]] == kid
        assert spec[1] in (model.BOOL, model.INT, model.ENUM, model.EVENT)
        assert spec[4] <= spec[5]
        cap = model.Capability(1, kid)
        assert (cap.min, cap.max, cap.label) == (spec[4], spec[5], spec[0])


def test_ranges():
    t = model.Capability(3, model.TEMPERATURE)
    assert t.check(-27315) == -27315 and t.check(32767) == 32767
    raises(errors.BAD_VALUE, t.check, -27316)
    raises(errors.BAD_VALUE, t.check, 32768)
    raises(errors.BAD_VALUE, t.check, 21.5)
    raises(errors.BAD_VALUE, t.check, True)
    raises(errors.BAD_VALUE, t.check, "2150")
    e = model.Capability(4, model.ENERGY)
    assert e.check(0xFFFFFFFF) == 0xFFFFFFFF
    raises(errors.BAD_VALUE, e.check, 0x100000000)
    raises(errors.BAD_VALUE, e.check, -1)
    # Options narrow the range within the kind's.
    b = model.Capability(5, model.BRIGHTNESS, {model.OPT_MIN: 1, model.OPT_MAX: 100})
    assert (b.min, b.max) == (1, 100)
    raises(errors.BAD_VALUE, b.check, 0)
    raises(errors.BAD_VALUE, b.check, 101)
    assert b.check_set(100) == 100


def test_bool_capabilities():
    s = model.Capability(1, model.SWITCH)
    assert s.check(True) is True and s.check(False) is False
    for bad in (0, 1, None, "on"):
        raises(errors.BAD_VALUE, s.check, bad)
    assert s.check_set(True) is True


def test_writability():
    for kind in (model.POWER, model.TEMPERATURE, model.MOTION, model.RSSI, model.UPTIME):
        raises(errors.NOT_WRITABLE, model.Capability(1, kind).check_set, 0)
    raises(errors.NOT_WRITABLE, model.Capability(1, model.BUTTON).check_set, 1)
    for kind, v in ((model.SWITCH, True), (model.BRIGHTNESS, 7), (model.SETPOINT, 2150)):
        assert model.Capability(1, kind).check_set(v) == v
    raises(errors.BAD_VALUE, model.Capability(1, model.SETPOINT).check_set, 499)


def test_enums():
    h = model.Capability(9, model.HVAC_MODE)
    for v in model.HVAC_MODES:
        assert h.check_set(v) == v
    raises(errors.BAD_VALUE, h.check, 6)
    raises(errors.BAD_VALUE, h.check, -1)
    f = model.Capability(9, model.FAN_MODE, {model.OPT_MAX: 2})
    raises(errors.BAD_VALUE, f.check, 3)
    btn = model.Capability(2, model.BUTTON)
    assert btn.check(1) == 1
    raises(errors.BAD_VALUE, btn.check, 0)
    raises(errors.BAD_VALUE, btn.check, 4)


def test_vendor_kinds():
    v = model.Capability(
        7,
        0x8001,
        {
            model.OPT_TYPE: model.INT,
            model.OPT_UNIT: "ppm",
            model.OPT_SCALE: 0,
            model.OPT_MIN: 400,
            model.OPT_MAX: 5000,
            model.OPT_WRITABLE: True,
            model.OPT_LABEL: "co2",
        },
    )
    assert (v.name, v.unit, v.writable, v.label, v.min, v.max) == (
        "vendor_32769",
        "ppm",
        True,
        "co2",
        400,
        5000,
    )
    assert v.check_set(450) == 450
    raises(errors.BAD_VALUE, v.check, 5001)
    plain = model.Capability(8, model.VENDOR_MAX)
    assert (plain.vtype, plain.writable, plain.min, plain.max) == (
        model.INT,
        False,
        -(2**31),
        2**31 - 1,
    )
    raises(errors.NOT_WRITABLE, plain.check_set, 1)
    vb = model.Capability(9, model.VENDOR_MIN, {model.OPT_TYPE: model.BOOL, model.OPT_WRITABLE: 1})
    assert vb.writable is False  # only true makes it writable
    raises(errors.BAD_VALUE, vb.check, 1)
    assert v.describe() == [0x8001, v.opts] and plain.describe() == model.VENDOR_MAX


@pytest.mark.parametrize(
    ("cid", "kind", "opts", "code"),
    [
        (-1, model.SWITCH, None, errors.BAD_VALUE),
        (0x10000, model.SWITCH, None, errors.BAD_VALUE),
        ("1", model.SWITCH, None, errors.BAD_VALUE),
        (1, True, None, errors.BAD_VALUE),
        (1, "switch", None, errors.BAD_VALUE),
        (1, 0, None, errors.UNKNOWN_CAPABILITY),
        (1, 999, None, errors.UNKNOWN_CAPABILITY),
        (1, 1000, None, errors.UNKNOWN_CAPABILITY),
        (1, 0x7FFF, None, errors.UNKNOWN_CAPABILITY),
        (1, 0x10000, None, errors.UNKNOWN_CAPABILITY),
        (1, model.BRIGHTNESS, {model.OPT_MAX: 256}, errors.BAD_VALUE),
        (1, model.BRIGHTNESS, {model.OPT_MIN: -1}, errors.BAD_VALUE),
        (1, model.BRIGHTNESS, {model.OPT_MIN: 10, model.OPT_MAX: 9}, errors.BAD_VALUE),
        (1, model.BRIGHTNESS, {model.OPT_MIN: "0"}, errors.BAD_VALUE),
        (1, model.BRIGHTNESS, {model.OPT_MAX: 100.0}, errors.BAD_VALUE),
        (1, 0x8000, {model.OPT_TYPE: 4}, errors.BAD_VALUE),
        (1, 0x8000, {model.OPT_TYPE: "int"}, errors.BAD_VALUE),
        (1, 0x8000, {model.OPT_MIN: 5, model.OPT_MAX: 4}, errors.BAD_VALUE),
    ],
)
def test_bad_capabilities(cid, kind, opts, code):
    raises(code, model.Capability, cid, kind, opts)


@pytest.mark.parametrize(
    "opts",
    [
        pytest.param({model.OPT_SCALE: "2"}, id="scale-text"),
        pytest.param({model.OPT_SCALE: 1.5}, id="scale-float"),
        pytest.param({model.OPT_UNIT: 5}, id="unit-int"),
        pytest.param({model.OPT_LABEL: b"co2"}, id="label-bytes"),
        pytest.param({model.OPT_MIN: True}, id="min-bool"),
    ],
)
def test_bad_vendor_option_types(opts):
    raises(errors.BAD_VALUE, model.Capability, 1, 0x8000, opts)


def test_capabilities_from_hello():
    caps = model.capabilities({1: model.SWITCH, 2: [model.POWER, {model.OPT_MAX: 36000}]})
    assert caps[1].kind == model.SWITCH and caps[2].max == 36000
    raises(errors.BAD_VALUE, model.capabilities, [model.SWITCH])
    raises(errors.BAD_VALUE, model.capabilities, {1: [model.POWER]})
    raises(errors.BAD_VALUE, model.capabilities, {1: [model.POWER, {}, 3]})
    raises(errors.BAD_VALUE, model.capabilities, {1: [model.POWER, [1, 2]]})
    raises(errors.UNKNOWN_CAPABILITY, model.capabilities, {1: 4242})


def test_capabilities_skip_unknown_kinds_when_asked():
    skipped = []
    caps = model.capabilities({1: model.SWITCH, 2: 4242, 3: [999, {}]}, skipped)
    assert list(caps) == [1] and sorted(skipped) == [2, 3]
    # Other errors are never skipped.
    raises(errors.BAD_VALUE, model.capabilities, {1: [model.BRIGHTNESS, {2: 300}]}, [])


def test_to_number_from_number():
    cap = model.Capability
    t = cap(1, model.TEMPERATURE)
    assert model.to_number(t, 2150) == 21.5
    assert model.to_number(t, -27315) == -273.15
    assert model.from_number(t, 21.5) == 2150
    assert model.from_number(t, -273.15) == -27315
    assert model.from_number(t, 21.504) == 2150 and model.from_number(t, 21.506) == 2151
    p = cap(2, model.POWER)
    assert model.to_number(p, 1234) == 123.4 and model.from_number(p, 123.4) == 1234
    c = cap(3, model.CURRENT)
    assert model.to_number(c, 250) == 0.25 and model.from_number(c, 0.1) == 100
    e = cap(4, model.ENERGY)
    assert model.to_number(e, 123456) == 123456 and isinstance(model.to_number(e, 5), int)
    assert model.from_number(e, 2.6) == 3 and isinstance(model.from_number(e, 2.6), int)
    s = cap(5, model.SWITCH)
    assert model.to_number(s, True) is True
    assert model.from_number(s, 1) is True and model.from_number(s, 0) is False
    v = cap(6, 0x8000, {model.OPT_SCALE: 2})  # hundreds
    assert model.to_number(v, 5) == 500 and model.from_number(v, 549) == 5
    assert model.from_number(v, 551) == 6
    # Every temperature and humidity value survives the round trip.
    for kind in (model.TEMPERATURE, model.HUMIDITY, model.VOLTAGE):
        k = cap(1, kind)
        for w in range(k.min, k.max + 1, 7):
            assert model.from_number(k, model.to_number(k, w)) == w


# --------------------------------------------------------------------------- retransmit


def test_initial_timeout_range():
    assert retransmit.initial_timeout_ms(0) == 2000
    assert retransmit.initial_timeout_ms(0xFFFF) == 3000
    got = [retransmit.initial_timeout_ms(r) for r in range(0x10000)]
    assert min(got) == 2000 and max(got) == 3000
    assert got == sorted(got)
    assert retransmit.initial_timeout_ms(0x1FFFF) == 3000  # only 16 bits are used


def test_backoff_doubles_and_caps():
    assert retransmit.next_timeout_ms(2000) == 4000
    assert retransmit.next_timeout_ms(8000) == 16000
    assert retransmit.next_timeout_ms(9000) == 16000
    assert retransmit.next_timeout_ms(16000) == 16000
    assert retransmit.MAX_RETRANSMIT == 4
    assert retransmit.schedule_ms(0) == [2000, 6000, 14000, 30000, 46000]
    assert retransmit.schedule_ms(0xFFFF) == [3000, 9000, 21000, 37000, 53000]
    for r in (0, 1, 0x7FFF, 0xFFFF):
        s = retransmit.schedule_ms(r)
        assert len(s) == retransmit.MAX_RETRANSMIT + 1
        gaps = [b - a for a, b in zip([0, *s], s, strict=False)]
        assert all(g <= retransmit.MAX_TIMEOUT_MS for g in gaps)
        assert gaps[1] == 2 * gaps[0]


def drive(p, start, until, step=1, add=lambda a, b: a + b):
    """Step a clock through p.due(); return [(elapsed ms, resent frames, lost seqs)]."""
    out = []
    for t in range(0, until + 1, step):
        resend, lost = p.due(add(start, t))
        if resend or lost:
            out.append((t, resend, lost))
    return out


def test_pending_follows_the_schedule():
    p = retransmit.Pending()
    assert p.add(7, b"frame-7", 1000, 0)
    events = drive(p, 1000, 50_000, step=250)
    assert events == [
        (2000, [b"frame-7"], []),
        (6000, [b"frame-7"], []),
        (14000, [b"frame-7"], []),
        (30000, [b"frame-7"], []),
        (46000, [], [7]),
    ]
    assert retransmit.schedule_ms(0) == [t for t, _, _ in events]
    assert p.items == {} and not p.done(7)


def test_pending_done_and_limit():
    p = retransmit.Pending(limit=8)
    for s in range(8):
        assert p.add(s, b"f%d" % s, 0, 0xFFFF)
    assert not p.add(8, b"f8", 0, 0)
    assert p.due(2999) == ([], [])
    assert p.done(3) and not p.done(3)
    resend, lost = p.due(3000)
    assert sorted(resend) == [b"f%d" % s for s in range(8) if s != 3] and lost == []
    assert p.add(8, b"f8", 3000, 0)


PERIOD = 1 << 30  # the ESP32's ticks_ms period (MICROPY_PY_TIME_TICKS_PERIOD)


def ticks_add(t, d):
    return (t + d) % PERIOD


def ticks_diff(a, b):
    """time.ticks_diff of the ESP32 port: its arguments must be ticks, 0 <= t < period
    (MicroPython reads them as small ints; a larger int gives a meaningless answer)."""
    assert 0 <= a < PERIOD and 0 <= b < PERIOD, "ticks_diff given a value that is not a tick"
    return ((a - b + PERIOD // 2) & (PERIOD - 1)) - PERIOD // 2


def test_pending_with_wrapping_ticks_away_from_the_wrap():
    p = retransmit.Pending(diff=ticks_diff)
    p.add(1, b"f", 5000, 0)
    events = drive(p, 5000, 50_000, step=250, add=ticks_add)
    assert [t for t, _, _ in events] == retransmit.schedule_ms(0)


def test_pending_with_wrapping_ticks_across_the_wrap():
    start = PERIOD - 3000
    p = retransmit.Pending(diff=ticks_diff)
    p.add(1, b"f", start, 0)
    events = drive(p, start, 50_000, step=250, add=ticks_add)
    assert [t for t, _, _ in events] == retransmit.schedule_ms(0)


# --------------------------------------------------------------------------- broadcast counter


class Flash:
    """Persistent storage for the counter's mark, with a power cut on demand."""

    def __init__(self):
        self.mark = None
        self.writes = 0
        self.cut_at = None  # (write number, before or after persisting)

    def load(self):
        return self.mark

    def store(self, n):
        self.writes += 1
        if self.cut_at == (self.writes, "before"):
            raise PowerCut
        self.mark = n
        if self.cut_at == (self.writes, "after"):
            raise PowerCut


class PowerCut(Exception):
    pass


def test_counter_fresh_device():
    fl = Flash()
    c = keys.BroadcastCounter(fl.load, fl.store)
    assert fl.mark == 64 and fl.writes == 1
    got = [c.next() for _ in range(200)]
    assert got == list(range(200))
    # One write per block of 64: at boot, then before using 64, 128 and 192.
    assert fl.writes == 4 and fl.mark == 256


def test_counter_stored_mark_always_ahead():
    fl = Flash()
    c = keys.BroadcastCounter(fl.load, fl.store, block=16)
    for _ in range(100):
        v = c.next()
        assert fl.mark > v  # write-ahead: the stored mark is past every number used
        assert fl.mark - v <= 16


def test_counter_resumes_at_mark():
    fl = Flash()
    fl.mark = 1000
    c = keys.BroadcastCounter(fl.load, fl.store)
    assert c.next() == 1000 and fl.mark == 1064


@pytest.mark.parametrize("block", [1, 4, 64])
def test_counter_reboots_at_every_point(block):
    """Reboot after each count of uses, or cut power before or after any of the first
    stores: across three boots no number is ever handed out twice."""
    n = 3 * block + 2
    cuts = [None] + [(w, s) for w in (1, 2, 3, 4) for s in ("before", "after")]
    for uses in range(n + 1):
        for cut in cuts:
            fl = Flash()
            fl.cut_at = cut
            used = []
            for boot in range(3):
                try:
                    c = keys.BroadcastCounter(fl.load, fl.store, block=block)
                    for _ in range(uses if boot < 2 else n):
                        used.append(c.next())
                        assert fl.mark > used[-1]  # persisted before it was used
                except PowerCut:
                    pass
                fl.cut_at = None
            assert len(used) == len(set(used)), (uses, cut, used)
            assert used == sorted(used), (uses, cut, used)
            assert len(used) >= n


def test_counter_stores_once_per_block():
    for block in (1, 8, 64):
        for uses in range(0, 3 * block + 1):
            fl = Flash()
            c = keys.BroadcastCounter(fl.load, fl.store, block=block)
            for _ in range(uses):
                c.next()
            assert fl.writes == 1 + max(0, (uses - 1) // block), (block, uses)


def test_counter_exhausted():
    fl = Flash()
    fl.mark = frame.MAX_SEQ
    c = keys.BroadcastCounter(fl.load, fl.store)
    assert c.next() == frame.MAX_SEQ
    raises(errors.LIMIT, c.next)


# --------------------------------------------------------------------------- BLE advertisement

BKEY = keys.broadcast_key(NODE_KEY, NODE_ID)


def test_ble_advert_layout():
    f = session.seal_broadcast(BKEY, NODE_ID, 300, M.REPORT, {6: 2150, 7: 4520})
    assert len(f) <= discovery.BLE_FRAME_MAX
    adv = discovery.ble_advert(f)
    assert adv[:4] == bytes([len(f) + 3, 0xFF, 0xFF, 0xFF]) and adv[4:] == f
    assert discovery.ble_frame(adv) == f
    got = session.open_broadcast(f, frame.parse(f), BKEY, NODE_ID, replay.ReplayWindow())
    assert got == (300, M.REPORT, {6: 2150, 7: 4520}, True)


def test_ble_advert_31_byte_limit():
    assert discovery.BLE_FRAME_MAX == 27
    adv = discovery.ble_advert(bytes(27))
    assert len(adv) == 31
    assert discovery.ble_frame(adv) == bytes(27)
    raises(errors.LIMIT, discovery.ble_advert, bytes(28))


def test_ble_frame_among_other_structures():
    f = bytes(range(20))
    ours = discovery.ble_advert(f)
    flags = bytes([2, 0x01, 0x06])
    name = bytes([4, 0x09]) + b"kn1"
    apple = bytes([5, 0xFF, 0x4C, 0x00, 0x02, 0x15])
    other_company = bytes([4, 0xFF, 0xFE, 0xFF, 0x01])
    short_mfr = bytes([2, 0xFF, 0xFF])  # too short to hold a company id
    assert discovery.ble_frame(flags + name + ours) == f
    assert discovery.ble_frame(apple + other_company + short_mfr + ours) == f
    assert discovery.ble_frame(ours + flags) == f
    assert discovery.ble_frame(flags + name + apple) is None
    assert discovery.ble_frame(b"") is None
    assert discovery.ble_frame(flags + b"\x00" + ours) is None  # zero length ends the data
    assert discovery.ble_frame(bytes([3, 0xFF, 0xFF, 0xFF])) == b""


def test_ble_frame_truncated():
    ours = discovery.ble_advert(bytes(10))
    for n in range(1, len(ours)):
        raises(errors.MALFORMED, discovery.ble_frame, ours[:n])
    raises(errors.MALFORMED, discovery.ble_frame, bytes([2, 0x01, 0x06, 9, 0x09]) + b"abc")


# --------------------------------------------------------------------------- frames


def test_header_bits():
    assert frame.header(frame.PLAIN) == 0x40
    assert frame.header(frame.PLAIN, from_gateway=True) == 0x48
    assert frame.header(frame.PLAIN, piv_len=3) == 0x40  # plain frames carry no piv
    assert frame.header(frame.SESSION) == 0x50
    assert frame.header(frame.SESSION, True, True, 2) == 0x5D
    assert frame.header(frame.BROADCAST, piv_len=4) == 0x63
    assert frame.header(frame.BROADCAST, False, True, 1) == 0x64


def test_parse_header_fields():
    data = bytes([0x5D, 0xAB, 0xCD, 0x01, 0x02]) + bytes(9)
    assert frame.parse(data) == (frame.SESSION, True, True, 0xABCD, 0x0102, 5)
    data = bytes([0x63, 0x12, 0x34, 1, 2, 3, 4]) + bytes(9)
    assert frame.parse(data) == (frame.BROADCAST, False, False, 0x1234, 0x01020304, 7)
    assert frame.parse(b"\x4c\x06\xa0") == (frame.PLAIN, True, True, None, None, 1)


@pytest.mark.parametrize(
    ("hdr", "code"),
    [
        (0x00, errors.VERSION),
        (0x80, errors.VERSION),
        (0xC0, errors.VERSION),
        (0x50 & 0x3F, errors.VERSION),
        (0x70, errors.MALFORMED),  # reserved kind 3
        (0x41, errors.MALFORMED),  # plain with a piv length
        (0x43, errors.MALFORMED),
    ],
)
def test_parse_rejects_headers(hdr, code):
    raises(code, frame.parse, bytes([hdr]) + bytes(20))


def test_parse_rejects_short_frames():
    raises(errors.MALFORMED, frame.parse, b"")
    raises(errors.MALFORMED, frame.parse, b"\x40")
    for plen in (1, 2, 3, 4):
        hdr = frame.header(frame.SESSION, piv_len=plen)
        need = 1 + 2 + plen + 1 + frame.TAG_LEN
        frame.parse(bytes([hdr]) + bytes(need - 1))
        raises(errors.MALFORMED, frame.parse, bytes([hdr]) + bytes(need - 2))


@pytest.mark.parametrize(
    ("seq", "plen"),
    [
        (0, 1),
        (255, 1),
        (256, 2),
        (65535, 2),
        (65536, 3),
        (2**24 - 1, 3),
        (2**24, 4),
        (2**32 - 1, 4),
    ],
)
def test_piv_lengths(seq, plen):
    piv = frame.piv_bytes(seq)
    assert len(piv) == plen and int.from_bytes(piv, "big") == seq
    msg = M.encode(M.PING, {})
    data = frame.seal(frame.SESSION, NODE_KEY, NODE_ID, SID, seq, msg, False, True)
    assert data[0] & 3 == plen - 1 and data[3 : 3 + plen] == piv
    parsed = frame.parse(data)
    assert parsed == (frame.SESSION, False, True, SID, seq, 3 + plen)
    assert frame.open_sealed(data, parsed, NODE_KEY, NODE_ID) == msg
    assert frame.nonce(frame.SESSION, False, NODE_ID, seq)[-4:] == seq.to_bytes(4, "big")


def test_seq_beyond_32_bits_rejected():
    for seq in (2**32, 2**40, -1):
        raises(errors.LIMIT, frame.piv_bytes, seq)
        raises(errors.LIMIT, frame.seal, frame.SESSION, NODE_KEY, NODE_ID, SID, seq, b"\x06\xa0")
    bkey = keys.broadcast_key(NODE_KEY, NODE_ID)
    raises(errors.LIMIT, session.seal_broadcast, bkey, NODE_ID, 2**32, M.REPORT, {})


def test_nonce_layout():
    n = frame.nonce(frame.BROADCAST, False, NODE_ID, 0x01020304)
    assert n == bytes([4]) + NODE_ID + b"\x01\x02\x03\x04" and len(n) == 13
    assert frame.nonce(frame.SESSION, True, NODE_ID, 0)[0] == 3
    raises(errors.LIMIT, frame.nonce, frame.SESSION, True, NODE_ID[:7], 0)


def test_max_frame_size():
    assert frame.MAX_FRAME == 1232
    over = 1 + 2 + 1 + frame.TAG_LEN  # hdr, kid, 1-byte piv, tag
    data = frame.seal(frame.SESSION, NODE_KEY, NODE_ID, SID, 5, bytes(1232 - over))
    assert len(data) == 1232
    parsed = frame.parse(data)
    assert frame.open_sealed(data, parsed, NODE_KEY, NODE_ID) == bytes(1232 - over)
    raises(errors.LIMIT, frame.seal, frame.SESSION, NODE_KEY, NODE_ID, SID, 5, bytes(1233 - over))
    raises(errors.LIMIT, frame.parse, data + b"\x00")
    assert len(frame.plain(bytes(1231))) == 1232
    raises(errors.LIMIT, frame.plain, bytes(1232))


def test_replay_window_basics():
    w = replay.ReplayWindow()
    assert w.accept(0) is True and w.accept(0) is False
    assert w.accept(100) is True
    assert w.accept(37) is True  # 63 behind: still inside
    raises(errors.REPLAY, w.accept, 36)  # 64 behind: outside
    assert w.check(37) is False and w.check(38) is True and w.check(101) is True
    w2 = replay.ReplayWindow()
    assert w2.accept(2**32 - 1) is True
    raises(errors.REPLAY, w2.check, 2**32 - 65)
