"""protocol/vectors/*.json against both CPython paths and the real MicroPython.

Every vector runs twice on CPython: on the portable path (the code a node runs:
cbor.portable_*, ccm.portable_*) and on the fast path (cbor2, cryptography's AESCCM), byte
for byte. tests/mp/check_vectors.py then runs every vector under `micropython` with a
node-sized heap. tools/make_vectors.py writes the files; a test holds them current.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kithnet.protocol import cbor, ccm, frame, kdf, keys, messages, model, session
from kithnet.protocol.errors import LIMIT, MALFORMED, NAMES, ProtocolError
from kithnet.protocol.replay import ReplayWindow
from kithnet.tools import make_vectors
from kithnet.tools.make_vectors import same, untag

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "protocol" / "vectors"


def _load(name):
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


CBOR = _load("cbor.json")
CCM = _load("ccm.json")
HKDF = _load("hkdf.json")
FRAMES = _load("frames.json")
HS = FRAMES["handshake"]
CASES = FRAMES["cases"]
SEALED = [c for c in CASES if c["kind"] != "plain"]
KINDS = {"plain": frame.PLAIN, "session": frame.SESSION, "broadcast": frame.BROADCAST}


def _ids(vectors):
    return [v["name"] for v in vectors]


@pytest.fixture(params=["portable", "fast"])
def path(request, monkeypatch):
    """Pin one implementation behind cbor.dumps/loads/decode_seq and ccm.seal/open.

    frame, keys, messages and session call those names through their modules, so the
    whole stack runs on the pinned path.
    """
    if request.param == "portable":
        monkeypatch.setattr(cbor, "dumps", cbor.portable_dumps)
        monkeypatch.setattr(cbor, "loads", cbor.portable_loads)
        monkeypatch.setattr(cbor, "decode_seq", cbor.portable_decode_seq)
        monkeypatch.setattr(ccm, "seal", ccm.portable_seal)
        monkeypatch.setattr(ccm, "open", ccm.portable_open)
    else:
        assert cbor.FAST, "cbor2 is a dependency: the fast CBOR path must be active"
        assert ccm.FAST, "cryptography is a dependency: the fast CCM path must be active"
        assert cbor.dumps is not cbor.portable_dumps and ccm.seal is not ccm.portable_seal
    return request.param


def _raises(path, fn, reason):
    """fn() raises ProtocolError; on the portable path with exactly `reason`."""
    with pytest.raises(ProtocolError) as info:
        fn()
    if path == "portable":
        got = info.value
        assert got.reason == reason, f"expected {reason}, got {got.reason} ({got.why})"


# --- cbor -------------------------------------------------------------------------------


@pytest.mark.parametrize("v", CBOR["vectors"], ids=_ids(CBOR["vectors"]))
def test_cbor(path, v):
    data = bytes.fromhex(v["hex"])
    if "reject" in v:
        _raises(path, lambda: cbor.loads(data), v["reject"])
        _raises(path, lambda: cbor.decode_seq(data, 1), v["reject"])
        return
    want = untag(v["value"])
    got = cbor.loads(data)
    assert same(got, want), f"decoded {got!r}, expected {want!r}"
    assert same(cbor.decode_seq(data, 1), [want])
    if v["roundtrip"]:
        assert cbor.dumps(want).hex() == v["hex"]
    else:
        # a non-preferred form: what we encode instead must decode to the same value
        again = cbor.dumps(want)
        assert again != data and same(cbor.loads(again), want)


@pytest.mark.parametrize("v", CBOR["encode_reject"], ids=_ids(CBOR["encode_reject"]))
def test_cbor_encode_reject(path, v):
    value = untag(v["value"])
    _raises(path, lambda: cbor.dumps(value), v["reject"])


def test_cbor_vectors_cover_the_brief():
    """The cases the protocol brief names are present, with the right expectation."""
    by_hex = {}
    for v in CBOR["vectors"]:
        by_hex.setdefault(v["hex"], []).append(v)

    def one(hex_):
        assert hex_ in by_hex, f"no vector with hex {hex_}"
        return by_hex[hex_][0]

    for hex_ in ("1bffffffffffffffff", "3bffffffffffffffff", "f90001", "f98000"):
        assert one(hex_)["roundtrip"] is True
    for hex_ in ("62c3bc", "63e6b0b4", "64f0908591", "a26161016162820203"):
        assert one(hex_)["roundtrip"] is True
    for hex_ in ("f97c00", "f97e00", "f9fc00"):
        assert one(hex_)["roundtrip"] is True
    for hex_ in ("fa7f800000", "fa7fc00000", "fb7ff0000000000000", "fb7ff8000000000000"):
        assert one(hex_)["roundtrip"] is False  # non-preferred, must still decode
    malformed = NAMES[MALFORMED]
    for hex_ in ("c249010000000000000000", "c11a514b67b0", "d818456449455446", "f7", "f0", "f8ff"):
        assert one(hex_)["reject"] == malformed
    for hex_ in (
        "5f42010243030405ff",
        "7f657374726561646d696e67ff",
        "9fff",
        "bf6346756ef563416d7421ff",
    ):
        assert one(hex_)["reject"] == malformed
    for hex_ in ("1c", "3d", "5e", "a201000100", "a1f93c0001", "a1410101", "a1f501", "62c328"):
        assert one(hex_)["reject"] == malformed
    limit = NAMES[LIMIT]
    assert one("81" * 8 + "80")["reject"] == limit
    assert one("9841" + "00" * 65)["reject"] == limit
    assert one("790100" + "61" * 256)["reject"] == limit
    assert any(v["hex"].startswith("590401") and v.get("reject") == limit for v in CBOR["vectors"])
    reasons = {v["reject"] for v in CBOR["vectors"] if "reject" in v}
    reasons |= {v["reject"] for v in CBOR["encode_reject"]}
    assert reasons <= set(NAMES.values())


# --- ccm, hkdf --------------------------------------------------------------------------


@pytest.mark.parametrize("v", CCM["vectors"], ids=_ids(CCM["vectors"]))
def test_ccm(path, v):
    key, nonce, aad, pt, sealed = (
        bytes.fromhex(v[k]) for k in ("key", "nonce", "aad", "plaintext", "sealed")
    )
    assert ccm.seal(key, nonce, pt, aad).hex() == v["sealed"]
    assert ccm.open(key, nonce, sealed, aad) == pt
    bad = bytearray(sealed)
    bad[-1] ^= 1
    _raises(path, lambda: ccm.open(key, nonce, bytes(bad), aad), "auth")
    _raises(path, lambda: ccm.open(key, nonce, sealed, aad + b"\x00"), "auth")
    _raises(path, lambda: ccm.open(key, nonce, sealed[: ccm.TAG_LEN - 1], aad), "auth")


@pytest.mark.parametrize("v", HKDF["vectors"], ids=_ids(HKDF["vectors"]))
def test_hkdf(v):
    ikm, salt, info = (bytes.fromhex(v[k]) for k in ("ikm", "salt", "info"))
    assert kdf.hkdf(ikm, salt, info, v["length"]).hex() == v["okm"]
    assert kdf.hmac_sha256(salt or bytes(32), ikm).hex() == v["prk"]


# --- frames -----------------------------------------------------------------------------


def _case(name):
    return next(c for c in CASES if c["name"] == name)


def _hello():
    return untag(_case("hello")["body"])


def test_handshake(path):
    node_key, node_id = bytes.fromhex(HS["node_key"]), bytes.fromhex(HS["node_id"])
    hello_body = _hello()
    hello_msg, hello_frame = session.hello_frame(hello_body)
    assert hello_frame.hex() == _case("hello")["frame_hex"]
    gw_nonce = bytes.fromhex(HS["gateway_nonce"])
    chal_frame, gw = session.challenge(
        node_key, hello_msg, hello_body, HS["sid"], gw_nonce, HS["unix_time"]
    )
    assert chal_frame.hex() == _case("challenge")["frame_hex"]
    mtype, chal_body = messages.decode(chal_frame[1:])
    assert mtype == messages.CHALLENGE and chal_body[messages.C_PROOF].hex() == HS["proof"]
    node = session.answer(node_key, hello_msg, hello_body, chal_body)
    k = {name: bytes.fromhex(v) for name, v in HS["keys"].items()}
    assert (node.send_key, node.recv_key) == (k["node_to_gateway"], k["gateway_to_node"])
    assert (gw.send_key, gw.recv_key) == (k["gateway_to_node"], k["node_to_gateway"])
    assert (node.sid, gw.sid, node.send_seq, gw.send_seq) == (HS["sid"], HS["sid"], 0, 1)
    n2g, g2n = keys.session_keys(
        node_key, node_id, bytes.fromhex(HS["node_nonce"]), gw_nonce, HS["sid"], hello_msg
    )
    assert (n2g, g2n) == (k["node_to_gateway"], k["gateway_to_node"])
    assert keys.broadcast_key(node_key, node_id) == k["broadcast"]
    assert kdf.sha256(hello_msg).hex() == HS["hello_sha256"]
    # a hello changed in transit gives other keys: the node cannot verify the proof
    tampered = dict(hello_body)
    tampered[messages.H_CAPS] = {1: model.TEMPERATURE}
    msg2, _ = session.hello_frame(tampered)
    _raises(path, lambda: session.answer(node_key, msg2, tampered, chal_body), "auth")
    # a wrong node key cannot verify the proof either
    _raises(path, lambda: session.answer(bytes(16), hello_msg, hello_body, chal_body), "auth")


@pytest.mark.parametrize("c", CASES, ids=_ids(CASES))
def test_frame(path, c):
    node_id = bytes.fromhex(HS["node_id"])
    body = untag(c["body"])
    msg, data = bytes.fromhex(c["message_hex"]), bytes.fromhex(c["frame_hex"])
    assert messages.encode(c["type"], body) == msg
    mtype, got = messages.decode(msg)
    assert mtype == c["type"] and same(got, body)
    assert messages.NAMES[mtype] == c["type_name"]
    kind = KINDS[c["kind"]]
    gw = c["direction"] == "gateway-to-node"
    parsed = frame.parse(data)
    if kind == frame.PLAIN:
        assert parsed == (kind, gw, False, None, None, 1)
        assert frame.plain(msg, gw) == data
        return
    seq, con, kid = c["seq"], c["confirmable"], c["kid"]
    assert parsed == (kind, gw, con, kid, seq, 3 + len(frame.piv_bytes(seq)))
    key = bytes.fromhex(c["key"])
    assert key.hex() == HS["keys"][c["key_name"]]
    assert frame.seal(kind, key, node_id, kid, seq, msg, gw, con) == data
    assert frame.open_sealed(data, parsed, key, node_id) == msg
    for i in (0, 3, len(data) - 1):  # header (AAD), ciphertext, tag
        bad = bytearray(data)
        bad[i] ^= 0x01
        bad = bytes(bad)
        _raises(path, lambda b=bad: frame.open_sealed(b, frame.parse(b), key, node_id), "auth")
    if kind == frame.BROADCAST:
        assert session.seal_broadcast(key, node_id, seq, c["type"], body) == data
        r = session.open_broadcast(data, parsed, key, node_id, ReplayWindow())
        assert r[:2] == (seq, c["type"]) and same(r[2], body) and r[3] is True
        return
    other = HS["keys"]["node_to_gateway" if gw else "gateway_to_node"]
    receiver = session.Session(node_id, HS["sid"], bytes.fromhex(other), key, not gw)
    r = receiver.open(data)
    assert r[:3] == (seq, con, c["type"]) and same(r[3], body) and r[4] is True


def test_conversation_replays_in_order(path):
    """The handshake's own Sessions reproduce every sealed frame in file order and open them."""
    node_key = bytes.fromhex(HS["node_key"])
    hello_body = _hello()
    hello_msg, _ = session.hello_frame(hello_body)
    _, gw = session.challenge(
        node_key,
        hello_msg,
        hello_body,
        HS["sid"],
        bytes.fromhex(HS["gateway_nonce"]),
        HS["unix_time"],
    )
    chal_body = untag(_case("challenge")["body"])
    node = session.answer(node_key, hello_msg, hello_body, chal_body)
    for c in CASES:
        if c["kind"] != "session":
            continue
        sender, receiver = (gw, node) if c["direction"] == "gateway-to-node" else (node, gw)
        assert c["seq"] >= sender.send_seq, c["name"]
        sender.send_seq = c["seq"]  # a no-op except where a case jumps ahead
        seq, data = sender.seal(c["type"], untag(c["body"]), c["confirmable"])
        assert (seq, data.hex()) == (c["seq"], c["frame_hex"]), c["name"]
        r = receiver.open(data)
        assert r[0] == seq and r[4] is True, c["name"]
    confirm = bytes.fromhex(_case("confirm")["frame_hex"])
    _raises(path, lambda: gw.open(confirm), "replay")  # seq 0 is far behind the window now


def test_frames_cover_every_message_type():
    assert {c["type"] for c in CASES} == set(messages.NAMES)
    errors_ = [c for c in CASES if c["type"] == messages.ERROR]
    assert {c["kind"] for c in errors_} == {"plain", "session"}
    times = [c for c in CASES if c["type"] == messages.TIME]
    assert {c["direction"] for c in times} == {"node-to-gateway", "gateway-to-node"}
    assert any(c["kind"] == "broadcast" and c["type"] == messages.REPORT for c in CASES)
    assert {len(frame.piv_bytes(c["seq"])) for c in SEALED} == {1, 2, 3, 4}
    assert len({c["name"] for c in CASES}) == len(CASES)


def test_report_temp_humidity():
    c = _case("report-temp-humidity")
    body = untag(c["body"])
    assert body == {1: 2150, 2: 4800, messages.DUE: 60}
    caps = model.capabilities(_hello()[messages.H_CAPS])
    assert (caps[1].kind, caps[2].kind) == (model.TEMPERATURE, model.HUMIDITY)
    assert model.to_number(caps[1], body[1]) == 21.5
    assert model.to_number(caps[2], body[2]) == 48.0
    assert model.from_number(caps[1], 21.5) == 2150
    assert (c["kind"], c["direction"], c["confirmable"]) == ("session", "node-to-gateway", False)
    assert len(bytes.fromhex(c["frame_hex"])) <= 26  # the brief's two-reading budget
    for b in (c for c in CASES if c["kind"] == "broadcast"):
        assert len(bytes.fromhex(b["frame_hex"])) <= 27  # BLE: 31 bytes less the AD header


# --- the files themselves, and MicroPython ----------------------------------------------


def test_vector_files_are_current(capsys):
    """make_vectors --check: the files are what the generator writes from fixed inputs."""
    assert make_vectors.main(["--check"]) == 0, capsys.readouterr().out


def expected_micropython_count():
    """One per vector, as tests/mp/check_vectors.py counts, plus the handshake."""
    return (
        len(CBOR["vectors"])
        + len(CBOR["encode_reject"])
        + len(CCM["vectors"])
        + len(HKDF["vectors"])
        + len(CASES)
        + 1
    )


def test_micropython_checks_every_vector(micropython):
    proc = micropython(ROOT / "tests" / "mp" / "check_vectors.py", heap="110k")
    lines = proc.stdout.strip().splitlines()
    shown = lines[:30] + (["..."] if len(lines) > 31 else []) + lines[-1:]
    report = "\n".join(shown) + "\n" + proc.stderr
    assert lines, "no output from micropython:\n" + proc.stderr
    expected = expected_micropython_count()
    assert lines[-1] == f"{expected} passed, 0 failed", report
    assert proc.returncode == 0, report
