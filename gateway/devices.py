"""What the gateway knows of each node: identity and key, capabilities, current state,
liveness; and the conversion between wire values and a person's values (21.5 °C, "cool").
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from kithnet.protocol import model
from kithnet.protocol.errors import BAD_VALUE, NOT_WRITABLE, ProtocolError
from kithnet.protocol.session import Session


@dataclass(eq=False, slots=True)
class Device:
    num: int  # the store's row number (history and state refer to it)
    node_id: bytes
    key: bytes
    name: str
    room: str | None = None
    type: str | None = None
    model: str | None = None
    firmware: str | None = None
    caps: dict[int, model.Capability] = field(default_factory=dict)
    raw_caps: dict | None = None  # the hello's caps map, kept to rebuild caps at start
    sleepy: bool = False
    added: float = 0.0
    # live state, not stored as such
    state: dict[int, tuple[Any, float]] = field(default_factory=dict)  # cid -> (wire, ts)
    online: bool = False
    reason: str = "not seen since the gateway started"
    last_seen: float | None = None
    due_at: float | None = None  # monotonic deadline of the next report
    addr: tuple | None = None
    session: Session | None = None
    reboot: int | None = None
    queued: dict[int, Any] = field(default_factory=dict)  # commands for a sleeping node
    settings: dict[str, Any] = field(default_factory=dict)  # config-set for a sleeping node
    unconfirmed: int = 0  # hellos answered since the last confirm (wrong key if it grows)
    hello: tuple | None = None  # (hello bytes, sid, challenge frame) awaiting its confirm
    by_name: dict[str, model.Capability] = field(default_factory=dict)
    shows: dict[int, tuple[str, Any]] = field(default_factory=dict)  # cid -> (name, to display)
    ota: dict[str, Any] | None = None  # the latest update job's status (gateway/ota.py)

    @property
    def hex(self) -> str:
        return self.node_id.hex()

    def set_caps(self, raw: dict | None) -> list[int]:
        """Capabilities from a hello's caps; returns the ids of kinds this version lacks."""
        skipped: list[int] = []
        self.raw_caps = raw
        self.caps = model.capabilities(raw, skipped) if raw else {}
        self.by_name = {}
        for _, cap in sorted(self.caps.items()):
            self.by_name.setdefault(cap.label, cap)
        self.shows = {cid: (c.label, shower(c)) for cid, c in self.caps.items()}
        return skipped

    def cap(self, ref: str | int) -> model.Capability:
        """A capability by its name (label) or id; KeyError if the node has none such."""
        c = self.by_name.get(ref) if isinstance(ref, str) else None
        if c is None:
            try:
                c = self.caps[int(ref)]
            except (ValueError, KeyError):
                raise KeyError(f"{self.name} has no capability {ref!r}") from None
        return c

    def to_json(self) -> dict[str, Any]:
        caps = []
        for cid in sorted(self.caps):
            c = self.caps[cid]
            caps.append(
                {
                    "id": cid,
                    "name": c.label,
                    "kind": c.name,
                    "unit": c.unit,
                    "writable": c.writable,
                    "min": display(c, c.min) if c.vtype == model.INT else c.min,
                    "max": display(c, c.max) if c.vtype == model.INT else c.max,
                    "options": list(c.choices.values()) if c.choices else None,
                }
            )
        return {
            "id": self.hex,
            "name": self.name,
            "room": self.room,
            "type": self.type,
            "model": self.model,
            "firmware": self.firmware,
            "sleepy": self.sleepy,
            "online": self.online,
            "reason": self.reason,
            "last_seen": self.last_seen,
            "address": f"{self.addr[0]}:{self.addr[1]}" if self.addr else None,
            "capabilities": caps,
            "state": self.state_json(),
            "ota": self.ota,
        }

    def state_json(self) -> dict[str, Any]:
        out = {}
        for cid, (v, ts) in self.state.items():
            c = self.caps.get(cid)
            if c is not None:
                out[c.label] = {"value": display(c, v), "ts": ts}
        return out

    def mark(self, online: bool, reason: str) -> bool:
        """Set availability; True if it changed."""
        changed = online != self.online
        self.online = online
        self.reason = reason
        return changed

    def seen(self, addr: tuple, due_s: int | None, now: float | None = None) -> None:
        self.last_seen = time.time() if now is None else now
        self.addr = addr
        if due_s is not None:
            # Late by more than half the promised interval (and 10 s) is late.
            self.due_at = time.monotonic() + due_s * 1.5 + 10


def shower(cap: model.Capability) -> Any:
    """display(cap, ·) as one cheap function, made once per capability for the hot path
    (numbers as model.to_number makes them, with the power of ten taken once)."""
    if cap.vtype == model.BOOL:
        return bool
    if cap.choices and cap.vtype in (model.ENUM, model.EVENT):
        choices = cap.choices
        return lambda v: choices.get(v, v)
    if cap.scale == 0:
        return _same
    if cap.scale < 0:
        div = 10 ** (-cap.scale)
        return lambda v: v / div
    mul = 10**cap.scale
    return lambda v: v * mul


def _same(v: Any) -> Any:
    return v


def display(cap: model.Capability, wire: Any) -> Any:
    """A wire value as a person reads it: a bool, a number in the kind's unit, or a label."""
    return shower(cap)(wire)


def parse(cap: model.Capability, value: Any) -> Any:
    """A person's value as the wire value; ProtocolError (BAD_VALUE, NOT_WRITABLE)."""
    if not cap.writable:
        raise ProtocolError(NOT_WRITABLE, f"{cap.label} cannot be set")
    if cap.vtype == model.BOOL:
        if isinstance(value, str) and value.lower() in ("on", "true", "1", "yes"):
            value = True
        elif isinstance(value, str) and value.lower() in ("off", "false", "0", "no"):
            value = False
        if not isinstance(value, bool):
            raise ProtocolError(BAD_VALUE, f"{cap.label} takes true or false, not {value!r}")
        return cap.check_set(value)
    if cap.choices and isinstance(value, str):
        for k, label in cap.choices.items():
            if label == value:
                return cap.check_set(k)
        raise ProtocolError(
            BAD_VALUE, f"{cap.label} takes one of {', '.join(cap.choices.values())}, not {value!r}"
        )
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError(BAD_VALUE, f"{cap.label} takes a number, not {value!r}")
    wire = model.from_number(cap, value)
    try:
        return cap.check_set(wire)
    except ProtocolError:
        lo, hi = display(cap, cap.min), display(cap, cap.max)
        raise ProtocolError(
            BAD_VALUE, f"{cap.label} takes {lo}..{hi} {cap.unit}".rstrip() + f", not {value!r}"
        ) from None
