"""Property tests of the protocol on CPython: codec, AEAD, frames, sessions, replay window.

Each property holds the portable path (the code a node runs) and the CPython fast path
(cbor2, cryptography's AESCCM) to the same answers, and checks that bad input of any
shape is rejected with ProtocolError and nothing else.
"""

from __future__ import annotations

import math
import os
import sys

import cbor2
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from kithnet.protocol import (
    cbor,
    cbor_fast,
    ccm,
    ccm_fast,
    errors,
    frame,
    keys,
    messages,
    model,
    replay,
    session,
)
from kithnet.protocol.errors import ProtocolError

# A few hundred examples each keep the file well under a minute; set KITHNET_EXAMPLES for a
# deeper run (e.g. KITHNET_EXAMPLES=5000 pytest tests/test_properties.py).
EXAMPLES = int(os.environ.get("KITHNET_EXAMPLES", "300"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEW = settings(SETTINGS, max_examples=max(1, EXAMPLES // 2))

U64 = 1 << 64
F32_MAX = 3.4028234663852886e38  # the largest float32
F32_OVERFLOW = F32_MAX + 2.0**103  # the smallest double that packs to float32 inf


# --------------------------------------------------------------------------- helpers


def same(a, b):
    """Structural equality that also tells types apart (1 vs True vs 1.0), -0.0 from 0.0,
    and takes NaN as equal to NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def depth(x):
    """Nesting of containers, counted as the codec counts it (a scalar is 0)."""
    if isinstance(x, list):
        return 1 + max((depth(v) for v in x), default=0)
    if isinstance(x, dict):
        return 1 + max((depth(v) for v in x.values()), default=0)
    return 0


def outcome(fn, *args):
    """('ok', value) or ('err', reason); any exception but ProtocolError propagates."""
    try:
        return ("ok", fn(*args))
    except ProtocolError as e:
        assert e.reason in errors.NAMES.values(), e.code
        return ("err", e.reason)


def agree(a, b):
    return a[0] == b[0] and (a[0] == "err" or same(a[1], b[1]))


# --------------------------------------------------------------------------- strategies


def _trim_utf8(s):
    return s.encode("utf-8")[: cbor.MAX_TEXT].decode("utf-8", "ignore")


ints = st.integers(min_value=-U64, max_value=U64 - 1)
floats_all = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True),
    st.floats(width=32, allow_subnormal=True),
    st.floats(width=16, allow_subnormal=True),
    st.sampled_from([0.0, -0.0, math.nan, math.inf, -math.inf, 5e-324, 2.0**-24, 2.0**-149]),
    # Around the top of single precision: FLT_MAX, the doubles next to it and to the point
    # where packing as float32 would overflow, the largest double.
    st.sampled_from(
        [
            F32_MAX,
            math.nextafter(F32_MAX, math.inf),
            math.nextafter(F32_OVERFLOW, 0.0),
            F32_OVERFLOW,
            1e300,
            sys.float_info.max,
        ]
    ).flatmap(lambda f: st.sampled_from([f, -f])),
)
texts = st.text(max_size=cbor.MAX_TEXT).map(_trim_utf8)
blobs = st.binary(max_size=cbor.MAX_BYTES)
keys_st = st.one_of(ints, texts)


def subset_values(floats):
    scalars = st.one_of(st.booleans(), st.none(), ints, floats, texts, blobs)

    def extend(children):
        return st.one_of(
            st.lists(children, max_size=cbor.MAX_ITEMS),
            st.dictionaries(keys_st, children, max_size=cbor.MAX_ITEMS),
        )

    return st.recursive(scalars, extend, max_leaves=40).filter(lambda x: depth(x) <= cbor.MAX_DEPTH)


values = subset_values(floats_all)

# Inputs at the limits, tried on every run.
EDGE = [
    U64 - 1,
    -U64,
    "é" * 127 + "a",  # 255 bytes
    b"\xff" * cbor.MAX_BYTES,
    list(range(cbor.MAX_ITEMS)),
    {i: -i for i in range(cbor.MAX_ITEMS)},
    [[[[[[[[1]]]]]]]],  # depth 8
    {"": {"a": {"b": {"c": {"d": {"e": {"f": {}}}}}}}},
    {1: 0, "a": 1, -1: 2, 256: 3, "bb": 4, 24: 5, -25: 6, "": 7, U64 - 1: 8, -U64: 9},
    2.0**-24,
    65504.0,
    1.0 + 2.0**-10,
    5e-324,
    -0.0,
    1e300,
    3.4028235677973366e38,
]


def with_edges(fn):
    for v in EDGE:
        fn = example(v)(fn)
    return fn


# --------------------------------------------------------------------------- (a) codec vs cbor2


def check_against_cbor2(x):
    ref = cbor2.dumps(x, canonical=True)
    assert cbor.portable_dumps(x) == ref
    assert cbor_fast.dumps(x) == ref
    # Decoding: cbor2's default (non-canonical, insertion-ordered) bytes and canonical bytes.
    for data in (ref, cbor2.dumps(x)):
        assert same(cbor.portable_loads(data), x)
        assert same(cbor_fast.loads(data), x)


def test_fast_path_is_active():
    assert cbor.FAST and cbor.dumps is cbor_fast.dumps and cbor.loads is cbor_fast.loads
    assert ccm.FAST and ccm.seal is ccm_fast.seal and ccm.open is ccm_fast.open


@SETTINGS
@with_edges
@given(values)
def test_codec_matches_cbor2(x):
    check_against_cbor2(x)


@SETTINGS
@given(st.lists(values, min_size=1, max_size=3))
def test_decode_seq_paths_agree(items):
    data = b"".join(cbor2.dumps(x) for x in items)
    for fn in (cbor.portable_decode_seq, cbor_fast.decode_seq):
        got = fn(data, len(items))
        assert same(got, items)
    for fn in (cbor.portable_decode_seq, cbor_fast.decode_seq):
        with pytest.raises(ProtocolError):
            fn(data, len(items) + 1)
        with pytest.raises(ProtocolError):
            fn(data + b"\x00", len(items))


BYTES_LIKE = [bytes, bytearray, memoryview]


@pytest.mark.parametrize("conv", BYTES_LIKE)
def test_bytes_like_encode_as_byte_strings(conv):
    for b in (b"", b"ab", bytes(range(256)) * 4):
        want = cbor2.dumps(b)
        assert cbor.portable_dumps(conv(b)) == want
        assert cbor_fast.dumps(conv(b)) == want
        assert cbor_fast.dumps({"k": [conv(b)]}) == cbor2.dumps({"k": [b]})


@pytest.mark.parametrize("conv", [bytearray, memoryview])
def test_loads_takes_bytes_like(conv):
    data = cbor2.dumps({1: [b"ab", "c", 1.5, -(2**64)]})
    for fn in (cbor.portable_loads, cbor_fast.loads):
        assert fn(conv(data)) == {1: [b"ab", "c", 1.5, -(2**64)]}
    for fn in (cbor.portable_decode_seq, cbor_fast.decode_seq):
        assert fn(conv(data + data), 2) == [fn(data, 1)[0]] * 2


def test_encoder_rejects_outside_subset():
    bad = [
        U64,
        -U64 - 1,
        "é" * 128,
        b"\x00" * (cbor.MAX_BYTES + 1),
        list(range(cbor.MAX_ITEMS + 1)),
        [[[[[[[[[]]]]]]]]],
        {b"k": 1},
        {True: 1},
        {1.5: 1},
        {None: 1},
        set(),
        object(),
    ]
    for x in bad:
        for fn in (cbor.portable_dumps, cbor_fast.dumps):
            with pytest.raises(ProtocolError):
                fn(x)


# --------------------------------------------------------------------------- (b) bad CBOR


def check_loads_agree(data):
    p = outcome(cbor.portable_loads, data)
    f = outcome(cbor_fast.loads, data)
    assert agree(p, f), (data.hex(), p, f)
    if p[0] == "ok":
        # Anything accepted re-encodes within the subset, identically on both paths.
        assert cbor.portable_dumps(p[1]) == cbor_fast.dumps(p[1])
    ps = outcome(cbor.portable_decode_seq, data, 2)
    fs = outcome(cbor_fast.decode_seq, data, 2)
    assert agree(ps, fs), (data.hex(), ps, fs)


BAD_CBOR = [
    "",
    "ff",
    "f7",
    "f820",
    "f0",
    "c0",
    "c101",
    "1c",
    "5f41ff",
    "7f6161ff",
    "9f01ff",
    "bf0101ff",
    "9bffffffffffffffff",
    "5bffffffffffffffff",
    "7bffffffffffffffff",
    "bbffffffffffffffff",
    "81818181818181818101",
    "a1a0a0",
    "a18000",
    "a1f93c0000",
    "a1f500",
    "a201010102",
    "62ffff",
    "63eda080",
    "c249010000000000000000",
    "0000",
    "18",
    "1900",
    "fb0000",
]


@SETTINGS
@example(b"")
@given(st.binary(max_size=48))
def test_random_bytes_rejected_alike(data):
    check_loads_agree(data)


@pytest.mark.parametrize("hexdata", BAD_CBOR)
def test_known_bad_cbor(hexdata):
    data = bytes.fromhex(hexdata)
    for fn in (cbor.portable_loads, cbor_fast.loads):
        with pytest.raises(ProtocolError):
            fn(data)


def mutate(data, draw):
    data = bytearray(data)
    op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "append"]))
    if op == "append" or not data:
        return bytes(data + draw(st.binary(min_size=1, max_size=8)))
    i = draw(st.integers(0, len(data) - 1))
    if op == "flip":
        data[i] ^= 1 << draw(st.integers(0, 7))
    elif op == "set":
        data[i] = draw(st.integers(0, 255))
    elif op == "insert":
        data[i:i] = draw(st.binary(min_size=1, max_size=4))
    elif op == "delete":
        del data[i : i + draw(st.integers(1, 4))]
    else:
        del data[i:]
    return bytes(data)


@SETTINGS
@given(values, st.data())
def test_mutated_encodings_rejected_alike(x, data):
    enc = cbor2.dumps(x, canonical=data.draw(st.booleans()))
    for _ in range(data.draw(st.integers(1, 3))):
        enc = mutate(enc, data.draw)
    check_loads_agree(enc)


# --------------------------------------------------------------------------- (c) AES-CCM

key16 = st.binary(min_size=16, max_size=16)
nonce13 = st.binary(min_size=13, max_size=13)


@SETTINGS
@given(key16, nonce13, st.binary(max_size=300), st.binary(max_size=64))
def test_ccm_paths_identical(key, nonce, pt, aad):
    sealed = ccm.portable_seal(key, nonce, pt, aad)
    assert len(sealed) == len(pt) + ccm.TAG_LEN
    assert sealed == ccm_fast.seal(key, nonce, pt, aad)
    assert sealed == AESCCM(key, tag_length=8).encrypt(nonce, pt, aad)
    assert ccm.portable_open(key, nonce, sealed, aad) == pt
    assert ccm_fast.open(key, nonce, sealed, aad) == pt


@SETTINGS
@given(key16, nonce13, st.binary(max_size=64), st.binary(max_size=32), st.data())
def test_ccm_tamper_rejected_by_both(key, nonce, pt, aad, data):
    sealed = ccm_fast.seal(key, nonce, pt, aad)
    what = data.draw(st.sampled_from(["sealed", "aad", "nonce", "key"]))
    args = {"key": key, "nonce": nonce, "sealed": sealed, "aad": aad}
    if what in ("nonce", "key"):
        b = bytearray(args[what])
        b[data.draw(st.integers(0, len(b) - 1))] ^= 1 << data.draw(st.integers(0, 7))
        args[what] = bytes(b)
    else:
        args[what] = mutate(args[what], data.draw)
        assume(args[what] != (sealed if what == "sealed" else aad))
    for fn in (ccm.portable_open, ccm_fast.open):
        with pytest.raises(ProtocolError) as ei:
            fn(args["key"], args["nonce"], args["sealed"], args["aad"])
        assert ei.value.code == errors.AUTH


CCM_ARGS = ["key", "nonce", "plaintext", "aad"]


@pytest.mark.parametrize("conv", [bytearray, memoryview])
@pytest.mark.parametrize("arg", CCM_ARGS)
def test_ccm_takes_bytes_like(arg, conv):
    args = {"key": bytes(range(16)), "nonce": bytes(13), "plaintext": b"hi", "aad": b"a"}
    want = ccm_fast.seal(*args.values())
    args[arg] = conv(args[arg])
    assert ccm.portable_seal(*args.values()) == want
    assert ccm_fast.seal(*args.values()) == want
    args["plaintext"] = want if arg != "plaintext" else conv(want)
    assert ccm.portable_open(*args.values()) == b"hi"
    assert ccm_fast.open(*args.values()) == b"hi"


# --------------------------------------------------------------------------- sessions

NODE_KEY = bytes(range(16))
NODE_ID = bytes.fromhex("a1b2c3d4e5f60718")
SID = 0x2A17


def handshake(node_key=NODE_KEY, node_id=NODE_ID, sid=SID):
    hello = {
        messages.H_NODE: node_id,
        messages.H_NONCE: bytes.fromhex("0011223344556677"),
        messages.H_PROTO: 1,
        messages.H_MODEL: "kn-test",
        messages.H_FW: "1.0.0",
        messages.H_CAPS: {1: model.SWITCH, 2: model.POWER},
    }
    hello_msg, _ = session.hello_frame(hello)
    chal, gw = session.challenge(node_key, hello_msg, hello, sid, bytes(range(8, 16)))
    _, cbody = messages.decode(chal[1:])
    node = session.answer(node_key, hello_msg, hello, cbody)
    return node, gw


NODE, GW = handshake()
BKEY = keys.broadcast_key(NODE_KEY, NODE_ID)


def fresh(s):
    """A copy of a session's security context with an empty replay window."""
    return session.Session(s.node_id, s.sid, s.send_key, s.recv_key, s.is_gateway, s.send_seq)


def sealer(s, seq):
    s = fresh(s)
    s.send_seq = seq
    return s


seqs = st.one_of(
    st.integers(0, 300),
    st.sampled_from([255, 256, 65535, 65536, 2**24 - 1, 2**24, 2**32 - 1]),
    st.integers(0, frame.MAX_SEQ),
)
cap_values = st.dictionaries(
    st.integers(0, 40), st.one_of(st.booleans(), st.integers(-(2**31), 2**31)), max_size=6
)


@st.composite
def sealed_frames(draw):
    """(sender, receiver, seq, body, con, frame) for a report either way."""
    to_gateway = draw(st.booleans())
    sender, receiver = (NODE, GW) if to_gateway else (GW, NODE)
    seq = draw(seqs)
    body = draw(cap_values)
    con = draw(st.booleans())
    s, data = sealer(sender, seq).seal(messages.REPORT, body, confirmable=con)
    assert s == seq
    return sender, receiver, seq, body, con, data


# Reasons a damaged session or broadcast frame may be refused for (never success, never
# another exception): the header no longer says v1 (version), no longer parses or says
# another kind (malformed), names another session (no-session), fails the tag or claims
# the other direction (auth); an extension beyond 1232 bytes is over the limit.
DAMAGE_REASONS = {"auth", "malformed", "no-session", "version"}


def damaged(data, draw):
    how = draw(st.sampled_from(["flip", "truncate", "extend"]))
    if how == "flip":
        i = draw(st.integers(0, 8 * len(data) - 1))
        b = bytearray(data)
        b[i // 8] ^= 1 << (i % 8)
        return bytes(b)
    if how == "truncate":
        return data[: draw(st.integers(0, len(data) - 1))]
    return data + draw(st.binary(min_size=1, max_size=16))


def assert_refused(fn, data):
    with pytest.raises(ProtocolError) as ei:
        fn(data)
    allowed = DAMAGE_REASONS | ({"limit"} if len(data) > frame.MAX_FRAME else set())
    assert ei.value.reason in allowed, (data.hex(), str(ei.value))


@SETTINGS
@given(sealed_frames())
def test_session_round_trip(sf):
    _, receiver, seq, body, con, data = sf
    assert fresh(receiver).open(data) == (seq, con, messages.REPORT, body, True)


@SETTINGS
@given(sealed_frames(), st.data())
def test_session_damage_rejected(sf, data):
    _, receiver, _, _, _, fr = sf
    bad = damaged(fr, data.draw)
    assert_refused(fresh(receiver).open, bad)


@SETTINGS
@given(sealed_frames())
def test_session_every_bit_flip_rejected(sf):
    _, receiver, _, _, _, fr = sf
    for i in range(8 * len(fr)):
        b = bytearray(fr)
        b[i // 8] ^= 1 << (i % 8)
        assert_refused(fresh(receiver).open, bytes(b))
    for n in range(len(fr)):
        assert_refused(fresh(receiver).open, fr[:n])


@st.composite
def broadcast_frames(draw):
    seq = draw(seqs)
    body = draw(cap_values)
    return seq, body, session.seal_broadcast(BKEY, NODE_ID, seq, messages.REPORT, body)


def open_bcast(data, window=None):
    return session.open_broadcast(
        data, frame.parse(data), BKEY, NODE_ID, window or replay.ReplayWindow()
    )


@SETTINGS
@given(broadcast_frames(), st.data())
def test_broadcast_round_trip_and_damage(bf, data):
    seq, body, fr = bf
    assert open_bcast(fr) == (seq, messages.REPORT, body, True)
    assert_refused(open_bcast, damaged(fr, data.draw))


@FEW
@given(broadcast_frames())
def test_broadcast_every_bit_flip_rejected(bf):
    _, _, fr = bf
    for i in range(8 * len(fr)):
        b = bytearray(fr)
        b[i // 8] ^= 1 << (i % 8)
        assert_refused(open_bcast, bytes(b))
    for n in range(len(fr)):
        assert_refused(open_bcast, fr[:n])


# --------------------------------------------------------------------------- (e) replay


class RefWindow:
    """The replay window's contract over a plain set: the reference for the model test."""

    def __init__(self, size=replay.WINDOW):
        self.size = size
        self.seen = set()

    def accept(self, seq):
        top = max(self.seen, default=-1)
        if seq <= top - self.size:
            return "replay"
        if seq in self.seen:
            return False
        self.seen.add(seq)
        return True


def run_window(w, seq, op="accept"):
    try:
        return getattr(w, op)(seq)
    except ProtocolError as e:
        assert e.code == errors.REPLAY
        return "replay"


window_ops = st.lists(
    st.tuples(
        st.sampled_from(["check", "accept", "accept"]),
        st.one_of(st.integers(0, 200), st.integers(0, frame.MAX_SEQ)),
    ),
    max_size=120,
)


@SETTINGS
@given(window_ops, st.integers(0, 2**32 - 300))
def test_replay_window_matches_model(ops, base):
    w = replay.ReplayWindow()
    ref = RefWindow()
    for op, off in ops:
        seq = base + off if off <= 200 else off
        before = (w.highest, w.bits)
        got = run_window(w, seq, op)
        if op == "check":
            assert (w.highest, w.bits) == before  # check never moves the window
            want = RefWindow.accept(_copy(ref), seq)
        else:
            want = ref.accept(seq)
        assert got == want, (op, seq)
        assert w.highest == max(ref.seen, default=-1)


def _copy(ref):
    r = RefWindow(ref.size)
    r.seen = set(ref.seen)
    return r


_SENDER = sealer(NODE, 0)
NODE_FRAMES = [_SENDER.seal(messages.REPORT, {1: i})[1] for i in range(151)]


@SETTINGS
@given(st.lists(st.integers(0, 150), min_size=1, max_size=80))
def test_session_replay_delivery_matches_model(order):
    """The node sends 151 frames; the gateway receives some, in any order, repeated."""
    frames = NODE_FRAMES
    gw = fresh(GW)
    ref = RefWindow()
    for i in order:
        want = ref.accept(i)
        if want == "replay":
            with pytest.raises(ProtocolError) as ei:
                gw.open(frames[i])
            assert ei.value.reason == "replay"
        else:
            seq, _, mtype, body, new = gw.open(frames[i])
            assert (seq, mtype, body, new) == (i, messages.REPORT, {1: i}, want)


@SETTINGS
@given(sealed_frames(), st.integers(1, replay.WINDOW - 1), st.integers(replay.WINDOW, 500))
def test_resend_inside_window_is_duplicate_older_is_replay(sf, later, far):
    sender, receiver, seq, body, con, fr = sf
    assume(seq + far <= frame.MAX_SEQ)
    r = fresh(receiver)
    assert r.open(fr)[4] is True
    assert r.open(fr) == (seq, con, messages.REPORT, body, False)  # exact resend: duplicate
    s = sealer(sender, seq + later)
    r.open(s.seal(messages.REPORT, {})[1])
    assert r.open(fr)[4] is False  # still inside the window
    s = sealer(sender, seq + far)
    r.open(s.seal(messages.REPORT, {})[1])
    with pytest.raises(ProtocolError) as ei:
        r.open(fr)
    assert ei.value.reason == "replay"


@SETTINGS
@given(broadcast_frames())
def test_broadcast_resend_is_duplicate(bf):
    seq, body, fr = bf
    w = replay.ReplayWindow()
    assert open_bcast(fr, w)[3] is True
    assert open_bcast(fr, w) == (seq, messages.REPORT, body, False)
    if seq + replay.WINDOW <= frame.MAX_SEQ:
        open_bcast(session.seal_broadcast(BKEY, NODE_ID, seq + replay.WINDOW, 8, {}), w)
        with pytest.raises(ProtocolError) as ei:
            open_bcast(fr, w)
        assert ei.value.reason == "replay"


@SETTINGS
@given(sealed_frames(), st.data())
def test_forged_frame_never_moves_window(sf, data):
    _, receiver, _, _, _, fr = sf
    r = fresh(receiver)
    bad = damaged(fr, data.draw)
    with pytest.raises(ProtocolError):
        r.open(bad)
    assert (r.window.highest, r.window.bits) == (-1, 0)
    assert r.open(fr)[4] is True


# --------------------------------------------------------------------------- (f) random input

headers = st.sampled_from(
    [frame.header(k, g, c, p) for k in (0, 1, 2) for g in (0, 1) for c in (0, 1) for p in (1, 2, 4)]
)
kids = st.sampled_from([SID.to_bytes(2, "big"), NODE_ID[:2], b"\x00\x00"])


@st.composite
def frame_like(draw):
    """Random bytes, or random bytes behind a plausible header and kid."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=64))
    return bytes([draw(headers)]) + draw(kids) + draw(st.binary(max_size=48))


@SETTINGS
@given(frame_like())
def test_random_frames_only_protocol_errors(data):
    outcome(frame.parse, data)
    for s in (NODE, GW):
        r = outcome(fresh(s).open, data)
        assert r[0] == "err"  # nothing forged opens
    try:
        parsed = frame.parse(data)
    except ProtocolError:
        return
    r = outcome(session.open_broadcast, data, parsed, BKEY, NODE_ID, replay.ReplayWindow())
    assert r[0] == "err"


@SETTINGS
@given(st.binary(max_size=64))
def test_random_messages_only_protocol_errors(data):
    r = outcome(messages.decode, data)
    if r[0] == "ok":
        mtype, body = r[1]
        assert messages.validate(mtype, body) is body


@SETTINGS
@given(
    st.one_of(st.integers(-3, 25), values),
    st.one_of(
        st.dictionaries(
            st.integers(-8, 12),
            st.one_of(st.booleans(), st.integers(-3, 2**33), st.binary(max_size=10), texts, values),
            max_size=8,
        ),
        values,
    ),
)
def test_message_shaped_input_only_protocol_errors(mtype, body):
    data = cbor2.dumps(mtype) + cbor2.dumps(body, canonical=True)
    r = outcome(messages.decode, data)
    if r[0] == "ok":
        assert r[1][0] == mtype and same(r[1][1], body)
        # Whatever decodes also encodes back to the same bytes.
        assert messages.encode(mtype, body) == data
