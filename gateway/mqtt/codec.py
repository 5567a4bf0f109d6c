"""Payloads: values out as JSON, commands in as JSON or bare text.

A state topic carries the JSON of the value a person reads (`21.5`, `true`, `"cool"`), so
Node-RED's JSON parsing and Home Assistant's `value_json` both take it as it is. A command
is a JSON value or bare text: Home Assistant sends `ON`, `21.5`, `cool` or a light's JSON
object; a script may send `true` or `"cool"`. Anything else is a BadPayload whose text is
the one log line the hub writes about it.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_COMMAND = 4096  # bytes; a command payload is a value or a small object


class BadPayload(ValueError):
    pass


_TRUE, _FALSE = b"true", b"false"


def encode(value: Any) -> bytes:
    """The JSON bytes of a value (hot path: bools and numbers without json.dumps)."""
    t = type(value)
    if t is bool:
        return _TRUE if value else _FALSE
    if t is int or t is float:
        return repr(value).encode()
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def encode_json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _finite(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise BadPayload(f"the number {text} is out of range")
    return v


def _constant(name: str) -> Any:
    raise BadPayload(f"{name} is not a value")


def _text(payload: bytes) -> str:
    if len(payload) > MAX_COMMAND:
        raise BadPayload(f"{len(payload)} bytes is too long for a command")
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise BadPayload("not UTF-8 text") from None
    if not text:
        raise BadPayload("empty")
    return text


def _json(text: str) -> Any:
    return json.loads(text, parse_float=_finite, parse_constant=_constant)


def decode_value(payload: bytes) -> bool | int | float | str:
    """One value: JSON (true, 21.5, "cool") or bare text (ON, off, cool)."""
    text = _text(payload)
    try:
        v = _json(text)
    except json.JSONDecodeError:
        return text  # bare text: a label or on/off; the gateway checks it against the kind
    if isinstance(v, dict | list) or v is None:
        raise BadPayload("a value (number, true/false or text), not " + type(v).__name__)
    return v


def decode_object(payload: bytes) -> dict[str, Any]:
    text = _text(payload)
    try:
        v = _json(text)
    except json.JSONDecodeError as e:
        raise BadPayload(f"not JSON ({e.msg})") from None
    if not isinstance(v, dict) or not v:
        raise BadPayload("a non-empty JSON object")
    return v


def fade_ms(seconds: Any) -> int:
    """A Home Assistant transition (seconds) as the gateway's fade_ms."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise BadPayload(f"transition must be seconds >= 0, not {seconds!r}")
    return min(600_000, round(seconds * 1000))
