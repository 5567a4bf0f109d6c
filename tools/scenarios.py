"""Scenarios: what happens around a fleet of virtual boards, driven through their worlds
(tools/world.py) the way people and appliances would, never through the gateway.

A scenario gets the nodes (anything with .kind, .name, .room and .board, a running
tools/board.Board) and is ticked a few times a second. It keeps a clock of its own for
the household (hour of the day, at `speed` simulated seconds per second, the same speed
as the worlds' physics) and acts when the clock passes the times of its programme:

  idle       nothing: every world follows its config.json "sim" section
  household  a day of a household, compressed (60x: a day in 24 minutes) from 06:30:
             people get up and move from room to room (motion), leave through the
             hallway door at 08:30 and come back at 17:30 (contact), the kettle boils at
             breakfast and at 18:00, the fridge runs all day, the television is on from
             19:00 and left in standby (0.5 W) all night from 22:30

A person's act on a plug (switching the kettle on) is a press of the plug's button, which
toggles its relay in the firmware as it would on the device.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

SCENARIOS = ("idle", "household")


class Emulated(Protocol):
    kind: str
    name: str
    room: str | None
    board: Any  # tools.board.Board, or None before it runs


class Scenario:
    """Does nothing (the "idle" scenario); the base of the others."""

    name = "idle"
    default_speed = 1.0
    default_hour = 12.0

    def __init__(
        self,
        speed: float | None = None,
        hour: float | None = None,
        say: Callable[[str], None] = print,
        seed: int | None = None,
    ) -> None:
        self.speed = float(speed if speed is not None else self.default_speed)
        self.start_hour = float(hour if hour is not None else self.default_hour) % 24
        self.say = say
        self.rng = random.Random(seed)
        self.nodes: list[Emulated] = []
        self.t0 = time.monotonic()  # attach() starts the clock again
        self._later: list[tuple[float, Callable[[], None]]] = []  # (monotonic time, act)

    # -- names for a new fleet --------------------------------------------------------------

    def names(self, kinds: list[str]) -> list[tuple[str, str | None]]:
        """(name, room) for nodes of these kinds, in order, unique."""
        counts: dict[str, int] = {}
        out = []
        for kind in kinds:
            counts[kind] = counts.get(kind, 0) + 1
            out.append((f"Emulated {kind} {counts[kind]}", None))
        return out

    # -- running ----------------------------------------------------------------------------

    def attach(self, nodes: list[Emulated]) -> None:
        """Before the boards start: set every world's clock and what it runs."""
        self.nodes = list(nodes)
        self.t0 = time.monotonic()
        for n in self.nodes:
            if n.board is not None and self.name != "idle":
                n.board.world.set(speed=self.speed, hour=self.start_hour)

    @property
    def hours(self) -> float:
        """Simulated hours since midnight of the first day."""
        return self.start_hour + (time.monotonic() - self.t0) * self.speed / 3600

    def clock(self) -> str:
        h = self.hours % 24
        return f"{int(h):02d}:{int(h * 60) % 60:02d}"

    def later(self, seconds: float, act: Callable[[], None]) -> None:
        """act() after `seconds` of wall time (a person's few seconds at a door)."""
        self._later.append((time.monotonic() + seconds, act))

    def tick(self) -> None:
        now = time.monotonic()
        due = [a for t, a in self._later if t <= now]
        self._later = [(t, a) for t, a in self._later if t > now]
        for act in due:
            act()

    def run(self, stop: threading.Event, period: float = 0.25) -> threading.Thread:
        """tick() in a thread of its own until stop is set."""

        def loop() -> None:
            while not stop.wait(period):
                self.tick()

        t = threading.Thread(target=loop, name=f"scenario-{self.name}", daemon=True)
        t.start()
        return t

    def tell(self, text: str) -> None:
        self.say(f"[{self.clock()} in the house] {text}")


_PLUG_ROLES = (("kettle", "Kettle plug", "kitchen"), ("tv", "TV plug", "living room"),
               ("fridge", "Fridge plug", "kitchen"))  # fmt: skip
_ROOMS = {  # by type: where the first, second, ... node of that type is
    "sensor": ("hallway", "living room", "kitchen", "bedroom"),
    "light": ("living room", "bedroom", "kitchen", "hallway"),
    "climate": ("bedroom", "living room"),
}


class Household(Scenario):
    """A day of a household (see the module's docstring)."""

    name = "household"
    default_speed = 60.0
    default_hour = 6.5
    MOTION_GAP_S = 6.0  # wall seconds between movements in an occupied room, on average
    MOTION_S = 3.0  # a movement keeps the PIR on this long (wall seconds)
    DOOR_S = 4.0  # the hallway door stays open this long

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.role: dict[int, str] = {}  # id(node) -> role (kettle, tv, fridge, a room)
        self._done: set[tuple[int, str]] = set()  # (day, event) already acted on
        self._last = 0.0

    def names(self, kinds: list[str]) -> list[tuple[str, str | None]]:
        seen: dict[str, int] = {}
        counts: dict[str, int] = {}
        out = []
        for kind in kinds:
            i = counts.get(kind, 0)
            counts[kind] = i + 1
            if kind == "plug":
                _, name, room = _PLUG_ROLES[i % len(_PLUG_ROLES)]
            else:
                rooms = _ROOMS.get(kind, _ROOMS["sensor"])
                room = rooms[i % len(rooms)]
                what = {"sensor": "sensor", "light": "lamp", "climate": "AC"}.get(kind, kind)
                name = f"{room.capitalize()} {what}"
            seen[name] = seen.get(name, 0) + 1
            out.append((name if seen[name] == 1 else f"{name} {seen[name]}", room))
        return out

    def attach(self, nodes: list[Emulated]) -> None:
        super().attach(nodes)
        counts: dict[str, int] = {}
        for n in self.nodes:
            i = counts.get(n.kind, 0)
            counts[n.kind] = i + 1
            w = n.board.world
            if n.kind == "plug":
                role = _PLUG_ROLES[i % len(_PLUG_ROLES)][0]
                w.set(load=role, load_on=role == "fridge")  # the TV starts in standby
            else:
                rooms = _ROOMS.get(n.kind, _ROOMS["sensor"])
                role = n.room or rooms[i % len(rooms)]
                if n.kind == "sensor":  # only what the people below do moves the sensors
                    w.set(motion=False, motion_rate=0, contact_rate=0)
            self.role[id(n)] = role
        self._last = self.hours
        self.tell(
            f"a household wakes up ({self.speed:g}x: a day in {24 * 60 / self.speed:.0f} min)"
        )
        # The fridge and the TV are plugged in and switched on at the socket.
        self.later(3.0, lambda: self._switch_on(("fridge", "tv")))

    # -- the programme ----------------------------------------------------------------------

    def _occupied(self, room: str, hour: float) -> bool:
        if 8.5 <= hour < 17.5:
            return False  # everyone is out
        if hour >= 23 or hour < 6.5:
            return room == "bedroom"  # asleep: a turn now and then
        if hour < 8.5:
            return room in ("bedroom", "kitchen", "hallway")
        return room in ("living room", "kitchen", "hallway")

    PROGRAMME: tuple[tuple[float, str], ...] = (
        (7.0, "kettle"),
        (8.5, "leave"),
        (17.5, "home"),
        (18.0, "kettle"),
        (19.0, "tv on"),
        (22.5, "tv standby"),
    )

    def tick(self) -> None:
        super().tick()
        now = self.hours
        for day in range(int(self._last // 24), int(now // 24) + 1):
            for at, what in self.PROGRAMME:
                t = day * 24 + at
                if self._last < t <= now and (day, what + str(at)) not in self._done:
                    self._done.add((day, what + str(at)))
                    self._act(what)
        dt = max(0.0, (now - self._last) * 3600 / self.speed)  # wall seconds since last tick
        self._last = now
        hour = now % 24
        for n in self._of("sensor"):
            if self._occupied(self.role[id(n)], hour):
                if self.rng.random() < dt / self.MOTION_GAP_S:
                    self._move(n)

    def _of(self, kind: str, role: str | None = None) -> list[Emulated]:
        return [n for n in self.nodes if n.kind == kind and n.board is not None
                and (role is None or self.role.get(id(n)) == role)]  # fmt: skip

    def _act(self, what: str) -> None:
        if what == "kettle":
            for n in self._of("plug", "kettle"):
                self.tell(f"someone switches the kettle on ({n.name})")
                self._switch_on(("kettle",))
                n.board.world.set(load_on=True)  # its programme: boil ~3 min, then off

                def done(n: Emulated = n) -> None:
                    if n.board is not None:
                        n.board.world.set(load_on=False)

                self.later(600 / self.speed + 1, done)
        elif what in ("leave", "home"):
            doors = self._of("sensor", "hallway") or self._of("sensor")[:1]
            self.tell("everyone leaves for the day" if what == "leave" else "people come home")
            for n in doors:
                self._door(n)
        elif what == "tv on":
            for n in self._of("plug", "tv"):
                self.tell(f"the television goes on ({n.name})")
                n.board.world.set(load_on=True)
        elif what == "tv standby":
            for n in self._of("plug", "tv"):
                self.tell(f"the television is left in standby for the night ({n.name})")
                n.board.world.set(load_on=False)

    def _switch_on(self, roles: tuple[str, ...]) -> None:
        for role in roles:
            for n in self._of("plug", role):
                self._press_until_on(n)

    def _press_until_on(self, n: Emulated, tries: int = 3) -> None:
        """Press the plug's button if its relay is open (the firmware toggles it); look
        again in a few seconds, as a person would who sees no light come on."""
        if n.board is None or n.board.world.relay_commanded:
            return
        n.board.world.press()
        if tries > 1:
            self.later(3.0, lambda: self._press_until_on(n, tries - 1))

    def _move(self, n: Emulated) -> None:
        n.board.world.set(motion=True)
        self.later(self.MOTION_S, lambda: n.board is not None and n.board.world.set(motion=False))

    def _door(self, n: Emulated) -> None:
        n.board.world.set(contact=False, motion=True)
        self.later(
            self.DOOR_S,
            lambda: n.board is not None and n.board.world.set(contact=None, motion=False),
        )


def make(
    name: str,
    speed: float | None = None,
    hour: float | None = None,
    say: Callable[[str], None] = print,
    seed: int | None = None,
) -> Scenario:
    if name == "idle":
        return Scenario(speed, hour, say, seed)
    if name == "household":
        return Household(speed, hour, say, seed)
    raise ValueError(f"unknown scenario {name!r}: one of {', '.join(SCENARIOS)}")
