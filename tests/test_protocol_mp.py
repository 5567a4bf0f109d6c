"""The protocol under the real MicroPython: tests/mp/check_units.py runs
the key behaviours there, and prints encodings that must equal CPython's byte for byte, on
the fast path (cbor2, AESCCM) and on the portable path alike."""

from __future__ import annotations

import hashlib
import importlib.util
import re

import cbor2
import pytest
from conftest import MP_DIR, run_micropython
from kithnet.protocol import cbor, cbor_fast, ccm, discovery, frame, kdf, keys, messages, session
from kithnet.protocol.errors import ProtocolError

SCRIPT = MP_DIR / "check_units.py"


def _load_inputs():
    """check_units.py as a CPython module: its top level only defines the shared inputs."""
    spec = importlib.util.spec_from_file_location("kithnet_mp_check_units", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


CU = _load_inputs()
CHECK_NAMES = [fn.__name__ for fn in CU._CHECKS]
CBOR_VALUES = dict(CU.CBOR_VALUES)
MODULES = (cbor, ccm, kdf, keys, frame, session, messages, discovery)
VECTOR_NAMES = [name for name, _ in CU.vectors(*MODULES)]

_FINAL = re.compile(r"^(\d+) passed, (\d+) failed$")


class MpRun:
    def __init__(self, proc):
        self.proc = proc
        self.lines = proc.stdout.splitlines()
        self.results = {}
        self.cbor = {}
        self.hex = {}
        self.final = None
        self.fuzz = None
        for line in self.lines:
            parts = line.split()
            if len(parts) == 2 and parts[0] in ("ok", "FAIL"):
                self.results[parts[1]] = parts[0]
            elif len(parts) == 3 and parts[0] == "CBOR":
                self.cbor[parts[1]] = bytes.fromhex(parts[2])
            elif len(parts) == 3 and parts[0] == "HEX":
                self.hex[parts[1]] = bytes.fromhex(parts[2])
            elif len(parts) == 3 and parts[0] == "FUZZ":
                self.fuzz = (bytes.fromhex(parts[1]), bytes.fromhex(parts[2]))
            m = _FINAL.match(line)
            if m:
                self.final = (int(m.group(1)), int(m.group(2)))

    def report(self):
        return f"stdout:\n{self.proc.stdout[-6000:]}\nstderr:\n{self.proc.stderr[-3000:]}"


SCRIPT_HEAP = "160k"


@pytest.fixture(scope="module")
def mp():
    # The check script (about 20 KB of source) is compiled inside the same heap as what it
    # checks, so it gets more than a node's 110k; the node's own budget is tests/test_node.py's.
    return MpRun(run_micropython(SCRIPT, heap=SCRIPT_HEAP))


def test_script_runs(mp):
    assert mp.proc.returncode == 0, mp.report()
    assert mp.final is not None, mp.report()
    assert mp.final[0] + mp.final[1] == len(CHECK_NAMES) > 0, mp.report()
    assert set(mp.results) == set(CHECK_NAMES), mp.report()
    assert set(mp.cbor) == set(CBOR_VALUES) and set(mp.hex) == set(VECTOR_NAMES), mp.report()
    assert mp.fuzz is not None, mp.report()


def test_all_checks_pass(mp):
    assert mp.final is not None, mp.report()
    passed, failed = mp.final
    assert failed == 0 and passed > 0, mp.report()


@pytest.mark.parametrize("name", CHECK_NAMES)
def test_check(mp, name):
    assert mp.results.get(name) == "ok", mp.report()


def test_protocol_error_on_micropython(tmp_path):
    """Regression: ProtocolError once called ValueError.__init__, absent on MicroPython."""
    script = tmp_path / "perr.py"
    script.write_text(
        "from protocol.errors import ProtocolError, AUTH\n"
        "try:\n"
        "    raise ProtocolError(AUTH, 'tag mismatch')\n"
        "except ValueError as e:\n"
        "    print(type(e).__name__, e.code, e.reason, e.why, str(e))\n"
    )
    proc = run_micropython(script)
    assert proc.stdout.strip() == "ProtocolError 5 auth tag mismatch auth: tag mismatch", (
        proc.stdout + proc.stderr
    )


@pytest.mark.parametrize("name", list(CBOR_VALUES))
def test_cbor_matches_cpython_fast(mp, name):
    v = CBOR_VALUES[name]
    assert mp.cbor[name] == cbor_fast.dumps(v) == cbor2.dumps(v, canonical=True)


@pytest.mark.parametrize("name", list(CBOR_VALUES))
def test_cbor_matches_cpython_portable(mp, name):
    assert mp.cbor[name] == cbor.portable_dumps(CBOR_VALUES[name])


def _fuzz(loads, dumps):
    return CU.fuzz(loads, dumps, hashlib.sha256, ProtocolError)


def test_fuzz_matches_cpython(mp):
    """2000 pseudo-random inputs: the same ones decode, to values that re-encode the same."""
    assert mp.fuzz is not None, mp.report()
    bits = mp.fuzz[0]
    accepted = sum(bin(b).count("1") for b in bits)
    assert 200 < accepted < 1800  # a meaningful mix of accepted and rejected inputs
    assert _fuzz(cbor_fast.loads, cbor_fast.dumps) == mp.fuzz
    assert _fuzz(cbor.portable_loads, cbor.portable_dumps) == mp.fuzz


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_vectors_match_cpython_fast(mp, name):
    assert cbor.FAST and ccm.FAST
    assert mp.hex[name] == dict(CU.vectors(*MODULES))[name]


@pytest.fixture
def portable(monkeypatch):
    """Pin CPython to the portable codec and CCM, the code a node runs."""
    monkeypatch.setattr(cbor, "dumps", cbor.portable_dumps)
    monkeypatch.setattr(cbor, "loads", cbor.portable_loads)
    monkeypatch.setattr(cbor, "decode_seq", cbor.portable_decode_seq)
    monkeypatch.setattr(ccm, "seal", ccm.portable_seal)
    monkeypatch.setattr(ccm, "open", ccm.portable_open)


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_vectors_match_cpython_portable(mp, portable, name):
    assert ccm.seal is ccm.portable_seal and cbor.dumps is cbor.portable_dumps
    assert mp.hex[name] == dict(CU.vectors(*MODULES))[name]


def test_pending_across_ticks_wrap():
    out = MpRun(run_micropython(SCRIPT, "wrap", heap=SCRIPT_HEAP))
    assert out.final == (1, 0), out.report()
