"""The OTA file bundle (SPEC.md 9.4.1): its format, its manifest against the CDDL, its
tag, the builder (`kithnet bundle`), and the node-side modules that only an ESP32 runs
(compiled by mpy-cross, which catches what a compiler can)."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
from pathlib import Path

import pycddl
import pytest
from kithnet.gateway.ota_bundle import (
    UNTAGGED,
    BundleError,
    check_path,
    pack,
    parse,
    parse_image,
    tag,
)
from kithnet.protocol import cbor
from kithnet.protocol import ota as O
from kithnet.tools import ota_bundle

ROOT = Path(__file__).resolve().parent.parent
CDDL = (ROOT / "protocol" / "kithnet.cddl").read_text()
NODE, KEY = bytes.fromhex("0102030405060708"), bytes(range(16))
FILES = {
    "node/runtime.mpy": b"runtime" * 50,
    "node/drivers/relay.mpy": b"relay" * 30,
    "node/__init__.mpy": b"init",
    "protocol/cbor.mpy": b"cbor" * 40,
    "node/hal/host.mpy": b"",
}


def _manifest(raw: bytes) -> bytes:
    return raw[O.HEAD_LEN : O.HEAD_LEN + int.from_bytes(raw[4:6], "big")]


def _hkdf(key: bytes, info: bytes) -> bytes:
    """RFC 5869 by hand, to hold the gateway's (cryptography's) derivation to the text."""
    prk = hmac.new(bytes(32), key, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def test_pack_and_parse_round_trip_in_the_spec_data_order():
    raw = pack("1.2.3", FILES)
    b = parse(raw)
    assert b.version == "1.2.3" and not b.tagged and b.tag == UNTAGGED
    # Directories in bytewise order, files in array order (sorted by the builder).
    assert [p for p, _, _ in b.files] == [
        "node/__init__.mpy", "node/runtime.mpy", "node/drivers/relay.mpy",
        "node/hal/host.mpy", "protocol/cbor.mpy",
    ]  # fmt: skip
    assert raw.endswith(b"".join(FILES[p] for p, _, _ in b.files))
    assert all(hashlib.sha256(FILES[p]).digest() == sha for p, _, sha in b.files)
    m = cbor.loads(_manifest(raw))
    assert m[O.MF_FILES]["node/drivers"] == [
        ["relay.mpy", 150, hashlib.sha256(FILES["node/drivers/relay.mpy"]).digest()]
    ]
    assert cbor.dumps(m) == _manifest(raw)  # deterministic (SPEC 3.1)


def test_the_manifest_matches_the_cddl():
    schema = pycddl.Schema(f"root = ota-manifest\n{CDDL}")
    schema.validate_cbor(_manifest(pack("0.2.0+abc", FILES)))
    schema.validate_cbor(cbor.dumps({1: "v", 2: {"node": [["a.mpy", 0, bytes(32)]]}, 9: "later"}))
    for bad in (
        {2: {"node": [["a.mpy", 0, bytes(32)]]}},  # no version
        {1: "v", 2: {"node": [["a.mpy", 0, bytes(31)]]}},  # a short hash
        {1: "v", 2: {"node": [["a.mpy", -1, bytes(32)]]}},  # a negative size
        {1: "v", 2: {"node": []}},  # an empty directory
    ):
        with pytest.raises(pycddl.ValidationError):
            schema.validate_cbor(cbor.dumps(bad))


def test_the_tag_is_hmac_under_a_key_derived_from_the_node_key():
    raw = pack("1.0.0", FILES)
    b = parse(raw)
    sent = b.for_node(NODE, KEY)
    head = sent[: O.HEAD_LEN + len(_manifest(raw))]
    key = _hkdf(KEY, b"kithnet/1 ota" + NODE)
    assert sent[len(head) : len(head) + 32] == hmac.new(key, head, hashlib.sha256).digest()
    assert sent[len(head) + 32 :] == raw[len(head) + 32 :]  # only the tag differs
    assert parse(sent).tagged_for(NODE, KEY)
    assert not parse(sent).tagged_for(NODE, bytes(16))
    assert not parse(sent).tagged_for(bytes(8), KEY)  # the node id is in the derivation
    # Tagged by its builder for one node: sent as it is, to any node.
    pre = pack("1.0.0", FILES, (NODE, bytes(16)))
    assert parse(pre).for_node(NODE, KEY) == pre
    assert tag(head, NODE, KEY) == sent[len(head) : len(head) + 32]


@pytest.mark.parametrize(
    "raw, why",
    [
        (b"PK\x03\x04" + bytes(100), "not a kithnet bundle"),
        (pack("1", FILES)[:-1], "runs past the end"),
        (pack("1", FILES) + b"x", "after the last file"),
        (pack("1", FILES)[:8], "not a kithnet bundle"),
        (b"KNB1\xff\xff" + bytes(40), "truncated"),
        (b"KNB1\x00\x02\xa0\x00" + bytes(32), "cannot be read"),
    ],
    ids=["zip", "short", "long", "head", "truncated", "manifest"],
)
def test_parse_refuses_what_is_not_a_bundle(raw, why):
    with pytest.raises(BundleError, match=why):
        parse(raw)


def test_a_file_that_does_not_match_its_hash_is_refused_unless_asked_not_to_check():
    raw = bytearray(pack("1", FILES))
    raw[-1] ^= 1
    with pytest.raises(BundleError, match=r"protocol/cbor\.mpy does not match its SHA-256"):
        parse(bytes(raw))
    assert parse(bytes(raw), check_files=False).version == "1"  # the node checks it


@pytest.mark.parametrize(
    "path", ["runtime.mpy", "../x.mpy", "node/../x", ".hidden/x", "node/.x", "node//x", "a b/c"]
)
def test_paths_stay_inside_lib(path):
    with pytest.raises(BundleError):
        check_path(path)
    with pytest.raises(BundleError):
        pack("1", {path: b"x"})


def test_limits_and_versions():
    with pytest.raises(BundleError, match="at most 64"):
        pack("1", {f"node/m{i}.mpy": b"" for i in range(65)})
    for version in ("", "1 2", "x" * 256):
        with pytest.raises(BundleError, match="version"):
            pack(version, FILES)


def test_an_esp32_application_image_is_recognised():
    head = bytearray(256)
    head[0] = 0xE9
    head[32:36] = (0xABCD5432).to_bytes(4, "little")
    head[48:55] = b"v1.29.0"
    img = parse(bytes(head) + bytes(1000))
    assert img.image and img.version == "v1.29.0" and img.files == []
    assert img.for_node(NODE, KEY) == bytes(head) + bytes(1000)  # no tag: sent as it is
    assert parse_image(b"\xe9" + bytes(300)) is None  # no application descriptor


def test_the_builder_writes_a_bundle_of_a_board_lib(tmp_path, capsys):
    lib = tmp_path / "lib"
    for p, data in FILES.items():
        (lib / p).parent.mkdir(parents=True, exist_ok=True)
        (lib / p).write_bytes(data)
    out = tmp_path / "b.knb"
    assert ota_bundle.main([str(out), "--lib", str(lib)]) == 0
    b = parse(out.read_bytes())
    assert b.version.startswith(ota_bundle.firmware_version() + "+") and not b.tagged
    assert {p for p, _, _ in b.files} == set(FILES)
    assert "untagged" in capsys.readouterr().out
    # The same files make the same version; another file, another one.
    again = parse(ota_bundle.build(files=ota_bundle.read_lib(lib)))
    assert again.version == b.version
    (lib / "node" / "new.mpy").write_bytes(b"new")
    assert parse(ota_bundle.build(files=ota_bundle.read_lib(lib))).version != b.version
    # Tagged for one node.
    assert ota_bundle.main([str(out), "--lib", str(lib), "--version", "9", "--node",
                            NODE.hex(), "--key", KEY.hex()]) == 0  # fmt: skip
    assert parse(out.read_bytes()).tagged_for(NODE, KEY)
    # Clear errors, nothing written.
    assert ota_bundle.main([str(tmp_path / "x"), "--lib", str(lib), "--node", NODE.hex()]) == 1
    assert ota_bundle.main([str(tmp_path / "x"), "--lib", str(tmp_path / "none")]) == 1
    assert ota_bundle.main([str(tmp_path / "x"), "--firmware", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "--node takes 16 hex digits and --key 32" in err and "holds no files" in err
    assert "is not the node firmware" in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "module", ["ota.py", "ota_boot.py", "ota_trial.py", "ota_image.py", "hal/esp32.py"]
)
def test_the_node_modules_compile(module, tmp_path):
    """ota_image.py and the esp32 HAL's ota_* run only on an ESP32 with OTA partitions."""
    src = ROOT / "firmware" / "node" / module
    out = subprocess.run(["mpy-cross", "-O3", "-o", str(tmp_path / "m.mpy"), str(src)],
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stderr
