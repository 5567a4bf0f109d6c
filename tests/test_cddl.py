"""The CDDL schema (protocol/kithnet.cddl) against real messages of the reference code.

Every body is built by the protocol's own helpers (a real handshake, real sealed
frames opened by the peer), encoded with kithnet.protocol.cbor and validated with
pycddl against the rule of its type. Invalid bodies must be rejected by the CDDL
and by messages.validate alike. Vectors in protocol/vectors/frames.json, when
present, are checked against the schema too.
"""

import hashlib
import json
from pathlib import Path

import pycddl
import pytest
from kithnet.protocol import cbor, errors, frame, keys, messages, model, ota, session
from kithnet.protocol.errors import ProtocolError
from kithnet.protocol.replay import ReplayWindow

PROTOCOL = Path(__file__).resolve().parent.parent / "protocol"
CDDL_TEXT = (PROTOCOL / "kithnet.cddl").read_text(encoding="utf-8")
VECTORS = PROTOCOL / "vectors" / "frames.json"

NODE_KEY = bytes(range(16))
NODE_ID = bytes.fromhex("0102030405060708")
NODE_NONCE = bytes.fromhex("a0a1a2a3a4a5a6a7")
GW_NONCE = bytes.fromhex("b0b1b2b3b4b5b6b7")
SID = 0x1234
UNIX = 1767225600  # 2026-01-01T00:00:00Z

_SCHEMAS = {}


def schema(rule):
    """A pycddl schema whose root is `rule` of kithnet.cddl (pycddl checks the first rule)."""
    s = _SCHEMAS.get(rule)
    if s is None:
        s = _SCHEMAS[rule] = pycddl.Schema(f"kithnet-root = {rule}\n{CDDL_TEXT}")
    return s


def body_rule(mtype):
    return messages.NAMES[mtype] + "-body"


def message_rule(mtype):
    return messages.NAMES[mtype] + "-message"


def cddl_accepts(rule, data):
    try:
        schema(rule).validate_cbor(data)
    except pycddl.ValidationError:
        return False
    return True


def assert_valid(mtype, body, message=None):
    """body, as both encoders write it, matches its type's rules, and so does the message."""
    for dumps in (cbor.dumps, cbor.portable_dumps):
        data = dumps(body)
        schema(body_rule(mtype)).validate_cbor(data)
        schema("body").validate_cbor(data)
    messages.validate(mtype, body)
    if message is None:
        message = messages.encode(mtype, body)
    # A message is a CBOR sequence (type, body); as an array of 2 it is one item.
    schema(message_rule(mtype)).validate_cbor(b"\x82" + message)
    schema("message").validate_cbor(b"\x82" + message)


def hello_body(extra=None):
    caps = {
        1: model.TEMPERATURE,
        2: model.HUMIDITY,
        3: [model.BATTERY, {model.OPT_LABEL: "cell"}],
        4: model.BUTTON,
        5: [
            0x8001,
            {
                model.OPT_TYPE: model.INT,
                model.OPT_UNIT: "ppm",
                model.OPT_SCALE: 0,
                model.OPT_MIN: 400,
                model.OPT_MAX: 5000,
                model.OPT_WRITABLE: False,
            },
        ],
    }
    model.capabilities(caps)  # the model accepts what hello carries
    body = {
        messages.H_NODE: NODE_ID,
        messages.H_NONCE: NODE_NONCE,
        messages.H_PROTO: session.PROTOCOL_VERSION,
        messages.H_MODEL: "kn-th1",
        messages.H_FW: "0.1.0",
        messages.H_CAPS: caps,
        messages.H_REBOOT: messages.REBOOT_POWER_ON,
        messages.H_SLEEPY: False,
        messages.H_NAME: "porch",
        messages.DUE: 300,
    }
    body.update(extra or {})
    return body


class Pair:
    """A node and a gateway after a real handshake, each with its Session."""

    def __init__(self):
        self.hello = hello_body()
        self.hello_msg, self.hello_frame = session.hello_frame(self.hello)
        self.challenge_frame, self.gw = session.challenge(
            NODE_KEY, self.hello_msg, self.hello, SID, GW_NONCE, UNIX
        )
        parsed = frame.parse(self.challenge_frame)
        self.challenge_msg = self.challenge_frame[parsed[5] :]
        _, self.challenge = messages.decode(self.challenge_msg)
        self.node = session.answer(NODE_KEY, self.hello_msg, self.hello, self.challenge)

    def send(self, sender, receiver, mtype, body, confirmable=False):
        """(body, message bytes) as the receiver opens them from a real sealed frame."""
        _, data = sender.seal(mtype, body, confirmable)
        parsed = frame.parse(data)
        assert parsed[2] == confirmable
        _, con, got_type, got_body, new = receiver.open(data, parsed)
        assert (con, got_type, new) == (confirmable, mtype, True)
        msg = frame.open_sealed(data, parsed, receiver.recv_key, receiver.node_id)
        return got_body, msg


@pytest.fixture
def pair():
    return Pair()


# ---- the schema itself ---------------------------------------------------------


def test_schema_parses_and_names_every_type():
    pycddl.Schema(CDDL_TEXT)
    for mtype, name in messages.NAMES.items():
        assert f"\n{name}-body = " in CDDL_TEXT
        assert f"\n{name}-message = [t-{name}, {name}-body]" in CDDL_TEXT
        assert f"\nt-{name} = {mtype}\n" in CDDL_TEXT
        schema(body_rule(mtype))
        schema(message_rule(mtype))


def test_schema_names_every_error_code_and_metadata_key():
    for code, name in errors.NAMES.items():
        assert f"{name}: {code}," in CDDL_TEXT
    for key, name in (
        (messages.DUE, "due"),
        (messages.AGE, "age"),
        (messages.REF, "ref"),
        (messages.CODE, "code"),
        (messages.TEXT, "text"),
        (messages.FADE, "fade"),
    ):
        assert f"\nmeta-{name} = {key} " in CDDL_TEXT


# ---- valid messages, from the real code paths -------------------------------------


def test_handshake_messages(pair):
    assert_valid(messages.HELLO, pair.hello, pair.hello_msg)
    assert_valid(messages.CHALLENGE, pair.challenge, pair.challenge_msg)
    assert len(pair.challenge[messages.C_PROOF]) == 8
    body, msg = pair.send(pair.node, pair.gw, messages.CONFIRM, {}, confirmable=True)
    assert_valid(messages.CONFIRM, body, msg)
    body, msg = pair.send(pair.gw, pair.node, messages.ACK, {messages.REF: 0})
    assert_valid(messages.ACK, body, msg)


def test_minimal_hello_and_challenge_without_time():
    hello = {
        messages.H_NODE: NODE_ID,
        messages.H_NONCE: NODE_NONCE,
        messages.H_PROTO: 1,
        messages.H_MODEL: "m",
        messages.H_FW: "1",
        messages.H_CAPS: {},
    }
    msg, _ = session.hello_frame(hello)
    assert_valid(messages.HELLO, hello, msg)
    data, _ = session.challenge(NODE_KEY, msg, hello, 0xFFFF, GW_NONCE)
    _, chal = messages.decode(data[1:])
    assert messages.C_TIME not in chal
    assert_valid(messages.CHALLENGE, chal, data[1:])


@pytest.mark.parametrize(
    "mtype, body, confirmable",
    [
        (messages.REPORT, {1: 2150, 2: 4800, messages.DUE: 60}, False),
        (messages.REPORT, {1: 2100, messages.AGE: 120}, True),
        (messages.REPORT, {3: 87, 6: True, 7: -27315, 9: 0xFFFFFFFF}, True),
        (messages.EVENT, {messages.E_CAP: 4, messages.E_CODE: 2, messages.E_COUNT: 2}, True),
        (messages.EVENT, {messages.E_CAP: 4, messages.E_CODE: 1, messages.AGE: 30}, True),
        (messages.PING, {}, True),
        (messages.PONG, {messages.REF: 7}, False),
        (messages.RESULT, {messages.REF: 3, messages.CODE: 0, 1: True}, False),
        (messages.RESULT, {messages.REF: 4, messages.CODE: errors.NOT_WRITABLE}, False),
        (messages.CONFIG, {messages.REF: 5, messages.CODE: 0, 1: {"interval": 60}}, False),
        (messages.CONFIG, {messages.REF: 6, messages.CODE: errors.BAD_VALUE}, False),
        (messages.TIME, {}, True),
        (messages.OTA_STATUS, {messages.REF: 9, messages.CODE: 0, 1: 1, 2: 1024}, False),
        (messages.OTA_STATUS, {messages.CODE: 0, ota.STATE: 5}, False),
        (messages.ERROR, {messages.CODE: errors.UNKNOWN_TYPE, messages.REF: 8}, False),
    ],
    ids=lambda v: messages.NAMES.get(v, "") if isinstance(v, int) else None,
)
def test_node_to_gateway(pair, mtype, body, confirmable):
    got, msg = pair.send(pair.node, pair.gw, mtype, body, confirmable)
    assert got == body
    assert_valid(mtype, got, msg)


@pytest.mark.parametrize(
    "mtype, body, confirmable",
    [
        (messages.ACK, {messages.REF: 1}, False),
        (messages.COMMAND, {1: True}, True),
        (messages.COMMAND, {14: 128, 15: 2700, messages.FADE: 500}, True),
        (messages.COMMAND, {17: 1}, True),
        (messages.CONFIG_GET, {}, True),
        (messages.CONFIG_GET, {messages.CFG_KEYS: ["interval", "name"]}, True),
        (messages.CONFIG_SET, {messages.CFG_VALUES: {"interval": 60, "name": "porch"}}, True),
        (messages.TIME, {messages.T_UNIX: UNIX, messages.T_OFFSET: 3600, messages.REF: 2}, False),
        (messages.TIME, {messages.T_UNIX: UNIX, messages.T_OFFSET: -18000}, False),
        (
            messages.OTA_OFFER,
            {
                ota.VERSION: "0.2.0",
                ota.SIZE: 1500000,
                ota.SHA256: hashlib.sha256(b"image").digest(),
                ota.CHUNK_SIZE: 1024,
                ota.BUNDLE: "app",
            },
            True,
        ),
        (messages.OTA_CHUNK, {ota.OFFSET: 0, ota.DATA: bytes(1024)}, True),
        (messages.PING, {}, True),
        (messages.PONG, {messages.REF: 12}, False),
        (
            messages.ERROR,
            {messages.CODE: errors.UNKNOWN_CAPABILITY, messages.REF: 3, messages.TEXT: "no 9"},
            False,
        ),
    ],
    ids=lambda v: messages.NAMES.get(v, "") if isinstance(v, int) else None,
)
def test_gateway_to_node(pair, mtype, body, confirmable):
    got, msg = pair.send(pair.gw, pair.node, mtype, body, confirmable)
    assert got == body
    assert_valid(mtype, got, msg)


def test_answers_name_real_types():
    for request, answer in messages.ANSWERS.items():
        assert request in messages.NAMES and answer in messages.NAMES


def test_plain_errors():
    # NO_SESSION after a gateway restart, VERSION with the versions supported.
    for body in (
        {messages.CODE: errors.NO_SESSION, messages.REF: 5},
        {messages.CODE: errors.VERSION, messages.ERR_VERSIONS: [1]},
        {messages.CODE: errors.UNKNOWN_NODE, messages.TEXT: "pending adoption"},
    ):
        data = frame.plain(messages.encode(messages.ERROR, body), True)
        parsed = frame.parse(data)
        mtype, got = messages.decode(data[parsed[5] :])
        assert (mtype, got) == (messages.ERROR, body)
        assert_valid(messages.ERROR, got, data[parsed[5] :])


def test_broadcast_report_and_event():
    bkey = keys.broadcast_key(NODE_KEY, NODE_ID)
    window = ReplayWindow()
    for seq, mtype, body in (
        (0, messages.REPORT, {1: 2150, 2: 4800}),
        (300, messages.REPORT, {1: 2150, 2: 4800, 3: 87}),
        (301, messages.EVENT, {messages.E_CAP: 4, messages.E_CODE: 3}),
    ):
        data = session.seal_broadcast(bkey, NODE_ID, seq, mtype, body)
        parsed = frame.parse(data)
        _, got_type, got, new = session.open_broadcast(data, parsed, bkey, NODE_ID, window)
        assert (got_type, got, new) == (mtype, body, True)
        assert_valid(mtype, got, frame.open_sealed(data, parsed, bkey, NODE_ID))


def test_unknown_keys_are_allowed():
    # Receivers ignore keys they do not know (forward compatibility): so does the schema.
    assert_valid(messages.HELLO, hello_body({99: "later", -20: [1, 2]}))
    assert_valid(messages.ACK, {messages.REF: 1, 42: {"x": 1}})
    assert_valid(messages.PING, {7: b"pad"})
    assert_valid(messages.REPORT, {1: 5, -20: 7})


# ---- invalid bodies: rejected by the CDDL and by messages.validate -------------


def _without(body, key):
    out = dict(body)
    del out[key]
    return out


def _with(body, key, value):
    out = dict(body)
    out[key] = value
    return out


_OFFER = {
    ota.VERSION: "0.2.0",
    ota.SIZE: 4096,
    ota.SHA256: bytes(32),
    ota.CHUNK_SIZE: 512,
}
_CHAL = {
    messages.C_NODE: NODE_ID,
    messages.C_NONCE: GW_NONCE,
    messages.C_SID: SID,
    messages.C_PROOF: bytes(8),
}
_EVENT = {messages.E_CAP: 4, messages.E_CODE: 1}
_STATUS = {messages.CODE: 0, ota.STATE: 1}

INVALID = [
    # missing required keys
    ("hello lacks caps", messages.HELLO, _without(hello_body(), messages.H_CAPS)),
    ("hello lacks node id", messages.HELLO, _without(hello_body(), messages.H_NODE)),
    ("hello lacks firmware", messages.HELLO, _without(hello_body(), messages.H_FW)),
    ("challenge lacks proof", messages.CHALLENGE, _without(_CHAL, messages.C_PROOF)),
    ("challenge lacks sid", messages.CHALLENGE, _without(_CHAL, messages.C_SID)),
    ("ack lacks ref", messages.ACK, {}),
    ("error lacks code", messages.ERROR, {messages.REF: 1}),
    ("pong lacks ref", messages.PONG, {messages.TEXT: "x"}),
    ("event lacks code", messages.EVENT, _without(_EVENT, messages.E_CODE)),
    ("event lacks capability", messages.EVENT, _without(_EVENT, messages.E_CAP)),
    ("result lacks code", messages.RESULT, {messages.REF: 1, 1: True}),
    ("result lacks ref", messages.RESULT, {messages.CODE: 0}),
    ("config-set lacks values", messages.CONFIG_SET, {}),
    ("config lacks ref", messages.CONFIG, {messages.CODE: 0}),
    ("ota-offer lacks sha256", messages.OTA_OFFER, _without(_OFFER, ota.SHA256)),
    ("ota-chunk lacks offset", messages.OTA_CHUNK, {ota.DATA: b"x"}),
    ("ota-status lacks state", messages.OTA_STATUS, {messages.CODE: 0}),
    # wrong types
    ("hello node id is text", messages.HELLO, hello_body({messages.H_NODE: "01020304"})),
    ("hello node id of 7 bytes", messages.HELLO, hello_body({messages.H_NODE: NODE_ID[:7]})),
    ("hello nonce of 9 bytes", messages.HELLO, hello_body({messages.H_NONCE: bytes(9)})),
    ("hello version is text", messages.HELLO, hello_body({messages.H_PROTO: "1"})),
    ("hello caps is an array", messages.HELLO, hello_body({messages.H_CAPS: [6, 7]})),
    ("hello sleepy is an int", messages.HELLO, hello_body({messages.H_SLEEPY: 1})),
    ("hello due is negative", messages.HELLO, hello_body({messages.DUE: -5})),
    ("challenge sid is text", messages.CHALLENGE, _with(_CHAL, messages.C_SID, "1")),
    ("challenge proof is an int", messages.CHALLENGE, _with(_CHAL, messages.C_PROOF, 7)),
    ("ack ref is text", messages.ACK, {messages.REF: "1"}),
    ("ack ref is negative", messages.ACK, {messages.REF: -1}),
    ("error code is text", messages.ERROR, {messages.CODE: "auth"}),
    ("error versions not array", messages.ERROR, {messages.CODE: 3, messages.ERR_VERSIONS: 1}),
    ("error text is bytes", messages.ERROR, {messages.CODE: 1, messages.TEXT: b"x"}),
    ("report value is text", messages.REPORT, {1: "21.5"}),
    ("report value is a float", messages.REPORT, {1: 21.5}),
    ("report value is null", messages.REPORT, {1: None}),
    ("report due is text", messages.REPORT, {1: 1, messages.DUE: "60"}),
    ("report age is negative", messages.REPORT, {1: 1, messages.AGE: -1}),
    ("command value is a map", messages.COMMAND, {1: {"on": True}}),
    ("command fade is text", messages.COMMAND, {1: True, messages.FADE: "1s"}),
    ("result value is bytes", messages.RESULT, {messages.REF: 1, messages.CODE: 0, 1: b"\x01"}),
    ("event capability is text", messages.EVENT, _with(_EVENT, messages.E_CAP, "button")),
    ("config-get keys is a map", messages.CONFIG_GET, {messages.CFG_KEYS: {"a": 1}}),
    ("config-set values is array", messages.CONFIG_SET, {messages.CFG_VALUES: [1]}),
    ("config values is text", messages.CONFIG, {messages.REF: 1, messages.CODE: 0, 1: "x"}),
    ("time unix is text", messages.TIME, {messages.T_UNIX: "2026-01-01"}),
    ("time offset is a float", messages.TIME, {messages.T_UNIX: UNIX, messages.T_OFFSET: 1.5}),
    ("ota-offer size is text", messages.OTA_OFFER, _with(_OFFER, ota.SIZE, "4k")),
    ("ota-offer version is int", messages.OTA_OFFER, _with(_OFFER, ota.VERSION, 2)),
    ("ota-chunk data is text", messages.OTA_CHUNK, {ota.OFFSET: 0, 2: "x"}),
    ("ota-status state is text", messages.OTA_STATUS, _with(_STATUS, ota.STATE, "ok")),
    ("ota-status ref is bool", messages.OTA_STATUS, _with(_STATUS, messages.REF, True)),
]


@pytest.mark.parametrize("mtype, body", [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_body_rejected_by_cddl_and_validate(mtype, body):
    assert not cddl_accepts(body_rule(mtype), cbor.dumps(body))
    with pytest.raises(ProtocolError) as exc:
        messages.validate(mtype, body)
    assert exc.value.code == errors.MALFORMED
    # Nor does the message form accept it under its own type.
    assert not cddl_accepts(message_rule(mtype), b"\x82" + cbor.dumps(mtype) + cbor.dumps(body))


def test_message_type_must_match_body():
    # A report body is not a hello message, and an unknown type is no message at all.
    data = cbor.dumps(messages.REPORT) + cbor.dumps({1: 2150})
    assert cddl_accepts("message", b"\x82" + data)
    hello_as_report = cbor.dumps(messages.HELLO) + cbor.dumps({1: 2150})
    assert not cddl_accepts("message", b"\x82" + hello_as_report)
    unknown = cbor.dumps(99) + cbor.dumps({})
    assert not cddl_accepts("message", b"\x82" + unknown)
    with pytest.raises(ProtocolError) as exc:
        messages.decode(unknown)
    assert exc.value.code == errors.UNKNOWN_TYPE


def test_capability_descriptions():
    caps_rule = "caps"
    good = {1: model.SWITCH, 2: [model.POWER, {model.OPT_MAX: 36000}], 3: 0xFFFF}
    assert cddl_accepts(caps_rule, cbor.dumps(good))
    model.capabilities(good)
    # A reserved kind id (1000..0x7FFF), descriptions that are not [kind, options], and
    # an option of the wrong type. (Not [kind, kind]: pycddl 0.6 lets an array whose items
    # all match a scalar alternative through a type choice; see kithnet.cddl's header.)
    bad_caps = (
        {1: 1000},
        {1: [model.SWITCH]},
        {1: [model.SWITCH, "x"]},
        {1: "switch"},
        {1: [model.POWER, {model.OPT_MIN: "low"}]},
    )
    for bad in bad_caps:
        assert not cddl_accepts(caps_rule, cbor.dumps(bad)), bad
        with pytest.raises(ProtocolError):
            model.capabilities(bad)


# ---- vectors written by the reference implementation ---------------------------------

_HEX_FIELDS = ("message_hex", "message", "plaintext_hex", "plaintext", "msg_hex")


def _vector_cases(doc):
    if isinstance(doc, dict):
        for key in ("cases", "vectors", "frames"):
            if isinstance(doc.get(key), list):
                return doc[key]
        return [dict(v, name=k) for k, v in doc.items() if isinstance(v, dict)]
    return doc


def _vector_message(case):
    for field in _HEX_FIELDS:
        v = case.get(field)
        if isinstance(v, str):
            try:
                return bytes.fromhex(v)
            except ValueError:
                continue
    return None


def _expects_failure(case):
    for field in ("error", "expect_error", "reject", "invalid"):
        if case.get(field):
            return True
    expect = case.get("expect", case.get("valid", True))
    return expect is False or expect in ("error", "reject", "invalid")


def test_vectors_match_cddl():
    if not VECTORS.exists():
        pytest.skip("protocol/vectors/frames.json does not exist yet (another helper writes it)")
    cases = _vector_cases(json.loads(VECTORS.read_text(encoding="utf-8")))
    checked = 0
    for case in cases:
        if not isinstance(case, dict) or _expects_failure(case):
            continue
        msg = _vector_message(case)
        if msg is None:
            continue
        mtype, body = messages.decode(msg)
        name = case.get("name", "?")
        want = case.get("type")
        if isinstance(want, int):
            assert want == mtype, name
        elif isinstance(want, str) and want in messages.NAMES.values():
            assert want == messages.NAMES[mtype], name
        schema(message_rule(mtype)).validate_cbor(b"\x82" + msg)
        schema(body_rule(mtype)).validate_cbor(cbor.dumps(body))
        checked += 1
    assert checked, "frames.json has no case with a message to check"


def test_spec_worked_example_is_what_the_code_seals():
    """SPEC.md section 17 shows the report frame Session.seal makes after a real handshake."""
    spec = (PROTOCOL / "SPEC.md").read_text(encoding="utf-8")
    hello = {
        messages.H_NODE: NODE_ID,
        messages.H_NONCE: NODE_NONCE,
        messages.H_PROTO: 1,
        messages.H_MODEL: "kithnet-demo",
        messages.H_FW: "0.1.0",
        messages.H_CAPS: {
            1: model.TEMPERATURE,
            2: model.HUMIDITY,
            3: model.BUTTON,
            4: model.SWITCH,
            5: [model.BRIGHTNESS, {model.OPT_MAX: 100, model.OPT_LABEL: "led"}],
        },
        messages.H_REBOOT: messages.REBOOT_POWER_ON,
        messages.H_SLEEPY: False,
        messages.H_NAME: "kitchen",
        messages.DUE: 60,
    }
    hello_msg, _ = session.hello_frame(hello)
    data, _ = session.challenge(NODE_KEY, hello_msg, hello, SID, GW_NONCE, UNIX)
    _, chal = messages.decode(data[1:])
    node = session.answer(NODE_KEY, hello_msg, hello, chal)
    assert node.send_key.hex() in spec and node.recv_key.hex() in spec
    assert node.seal(messages.CONFIRM, {}, True)[0] == 0
    seq, report = node.seal(messages.REPORT, {1: 2150, 2: 4800, messages.DUE: 60})
    assert seq == 1
    assert report.hex() in spec
    assert_valid(messages.REPORT, {1: 2150, 2: 4800, messages.DUE: 60})
