"""Updates over the air, the gateway's side (SPEC.md 9.4).

One job per node sends a bundle in chunks over the node's session, one confirmable chunk
at a time: every answer names the offset the node wants next (and the largest chunk it
takes), so a transfer cut by a reboot of the node, or a new job after a gateway restart,
goes on where the node's file ends. The node restarts for an update (its first offer goes
unanswered), and again after the last chunk to install it and to boot it on trial. The job
waits for the node's next session: the new version in its hello and an ota-status saying
confirmed end the job; otherwise it asks again (the same offer), and the node says
confirmed, or failed and why (refused at install, or rolled back). Progress goes on the
bus (events of type "ota") and into the device's JSON ("ota").

A rollout updates several nodes one at a time: the first alone, each next one only after
the one before confirmed, and none after a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kithnet.protocol import errors
from kithnet.protocol import messages as M
from kithnet.protocol import ota as O

from .bus import Event
from .errors import CommandError
from .ota_bundle import Bundle

if TYPE_CHECKING:
    from .devices import Device
    from .service import Gateway

log = logging.getLogger("kithnet.ota")

CHUNK = 1024  # bytes per chunk at most (the subset's byte-string limit), or what the node takes
REQUEST_TIMEOUT_S = 60.0  # a request's retransmissions give up before this (SPEC 8.3)
WAIT_S = 120.0  # how long a job waits for its node to come (back) online
TRIAL_POLL_S = 3.0  # a node back on trial that has not said confirmed yet is asked then
MAX_LOST = 6  # sessions lost in a row without progress before a job gives up
DONE = frozenset({"confirmed", "failed", "cancelled"})
_STEP = 5  # percent between progress events


class OtaError(Exception):
    """Why a job failed, for a person."""


class _Lost(Exception):
    """The node's session ended (or never answered): offer again in the next one."""


@dataclass(eq=False)
class Job:
    node: str
    name: str
    version: str
    size: int
    sha256: bytes
    from_version: str | None
    force: bool = False
    image: bool = False
    state: str = "waiting"  # waiting receiving installing trial confirmed failed cancelled
    offset: int = 0
    resumed_from: int | None = None  # the offset the node asked for first, when not 0
    error: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    switched: bool = False  # the node has every byte and restarted to install them
    confirmed: bool = False  # the node said so, unprompted, after switching
    shown: int = -1  # the progress step last published
    trials: int = 0  # answers "on trial" in a row
    woke: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "version": self.version,
            "from_version": self.from_version,
            "offset": self.offset,
            "size": self.size,
            "percent": int(100 * self.offset / self.size) if self.size else 0,
            "resumed_from": self.resumed_from,
            "error": self.error,
            "started": self.started,
            "finished": self.finished,
        }


@dataclass(eq=False)
class Rollout:
    version: str
    nodes: list[str]  # ids, in the order they are updated
    skipped: dict[str, str]  # id -> why it is not updated
    state: str = "running"  # running confirmed failed cancelled
    current: str | None = None
    results: dict[str, str] = field(default_factory=dict)  # id -> the job's final state
    error: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    task: asyncio.Task | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "version": self.version,
            "nodes": self.nodes,
            "current": self.current,
            "results": self.results,
            "skipped": self.skipped,
            "error": self.error,
            "started": self.started,
            "finished": self.finished,
        }


class Updates:
    """The gateway's update jobs (one per node) and its one rollout."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.jobs: dict[bytes, Job] = {}
        self.rollout: Rollout | None = None

    # -- starting and following ------------------------------------------------------

    def start(self, dev: Device, bundle: Bundle, force: bool = False) -> Job:
        """Start updating one node; CommandError when it cannot be updated now."""
        if dev.sleepy:
            raise CommandError(
                409, f"{dev.name} sleeps between reports: updates need a node that stays awake"
            )
        old = self.jobs.get(dev.node_id)
        if old is not None and old.state not in DONE:
            raise CommandError(409, f"{dev.name} is being updated already ({old.state})")
        data = bundle.for_node(dev.node_id, dev.key)
        job = Job(dev.hex, dev.name, bundle.version, len(data), hashlib.sha256(data).digest(),
                  dev.firmware, force, bundle.image)  # fmt: skip
        self.jobs[dev.node_id] = job
        self._publish(dev, job)
        job.task = asyncio.create_task(self._run(dev, job, data))
        log.info("updating %s (%s) from %s to %s: %d bytes", dev.name, dev.hex, dev.firmware,
                 bundle.version, len(data))  # fmt: skip
        return job

    def status(self, dev: Device) -> Job | None:
        return self.jobs.get(dev.node_id)

    async def cancel(self, dev: Device) -> Job | None:
        job = self.jobs.get(dev.node_id)
        if job is not None and job.task is not None and not job.task.done():
            job.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job.task
        return job

    def on_session(self, dev: Device) -> None:
        job = self.jobs.get(dev.node_id)
        if job is not None:
            job.woke.set()

    def on_status(self, dev: Device, body: dict) -> None:
        """An unprompted ota-status (no REF): the node confirmed, or says how it goes."""
        state = body.get(O.STATE)
        log.info("%s (%s) says its update is %s", dev.name, dev.hex, _STATES.get(state, state))
        job = self.jobs.get(dev.node_id)
        if job is not None:
            if state == O.CONFIRMED and job.switched:
                job.confirmed = True
            job.woke.set()
        else:
            data = {"state": _STATES.get(state, "unknown"), "version": dev.firmware}
            self.gw.bus.publish(Event("ota", dev.hex, data, time.time()))

    async def stop(self) -> None:
        tasks = [j.task for j in self.jobs.values() if j.task is not None]
        if self.rollout is not None and self.rollout.task is not None:
            tasks.append(self.rollout.task)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- one node ---------------------------------------------------------------------

    async def _run(self, dev: Device, job: Job, data: bytes) -> None:
        lost = 0
        try:
            while True:
                s = await self._session(dev, job)
                if job.switched and not job.confirmed and dev.firmware == job.version:
                    self._set(dev, job, "trial")  # it confirms once online: it says so
                    await self._woken(job, TRIAL_POLL_S)
                if job.confirmed:
                    self._end(dev, job, "confirmed", None)
                    log.info("%s runs %s (confirmed)", dev.name, job.version)
                    return
                offer = {
                    O.VERSION: job.version,
                    O.SIZE: len(data),
                    O.SHA256: job.sha256,
                    O.CHUNK_SIZE: CHUNK,
                }
                if not job.image:  # (an ESP32 application image goes without the kind)
                    offer[O.BUNDLE] = O.FILES
                if job.force and not job.switched:
                    offer[O.FORCE] = True
                before = (job.offset, job.state)
                try:
                    st = await self._ask(dev, job, s, M.OTA_OFFER, offer)
                    if st.get(O.STATE) == O.RECEIVING and st.get(O.NEXT):
                        job.resumed_from = st[O.NEXT]  # the node kept what it had
                    if await self._follow(dev, job, s, st, data):
                        return
                except _Lost as e:
                    lost = 0 if (job.offset, job.state) != before else lost + 1
                    if lost >= MAX_LOST:
                        raise OtaError(f"{dev.name} stopped answering ({e})") from None
                    log.info("update of %s: %s; offering again", dev.name, e)
        except OtaError as e:
            self._end(dev, job, "failed", str(e))
        except asyncio.CancelledError:
            self._end(dev, job, "cancelled", "cancelled")
            raise
        except Exception as e:  # a bug must not leave a job "running" for ever
            log.exception("update of %s failed", dev.name)
            self._end(dev, job, "failed", f"internal error: {e}")

    async def _follow(self, dev: Device, job: Job, s: Any, st: dict, data: bytes) -> bool:
        """Act on the node's status; True once the job has ended, False to offer again."""
        while True:
            code, state, text = st.get(M.CODE, 0), st.get(O.STATE), st.get(M.TEXT)
            if state == O.CONFIRMED and not code:
                how = "confirmed" if job.switched else "already running this bundle"
                self._end(dev, job, "confirmed", None)
                log.info("%s runs %s (%s)", dev.name, job.version, how)
                return True
            if state == O.FAILED:
                why = text or errors.name(code)
                raise OtaError(
                    f"{dev.name} did not take the update: {why} (it runs {dev.firmware})"
                )
            if state == O.TRIAL:  # this update on trial, or (busy) one before it: it ends
                job.trials += 1  # with a restart, a confirmation or a rollback
                if job.trials * TRIAL_POLL_S > WAIT_S:
                    raise OtaError(f"{dev.name} stays on trial: {text or 'no confirmation'}")
                if job.switched:
                    self._set(dev, job, "trial")
                await self._woken(job, TRIAL_POLL_S)
                return False
            if code:
                raise OtaError(f"{dev.name} refused the update: {text or errors.name(code)}")
            if state in (O.VERIFYING, O.STAGED):  # restarting to install, then on trial
                job.switched = True
                job.offset = job.size
                self._set(dev, job, "installing")
                await self._new_session(dev, job, s)
                return False
            if state != O.RECEIVING:
                raise OtaError(f"{dev.name} answered with an unknown update state {state!r}")
            off = st.get(O.NEXT, 0)
            if not 0 <= off < len(data):
                raise OtaError(f"{dev.name} asked for offset {off} of a {len(data)}-byte bundle")
            if job.state != "receiving":
                job.offset = off
                self._set(dev, job, "receiving")
            self._progress(dev, job, off)
            size = min(CHUNK, st.get(O.MAX_CHUNK) or CHUNK)
            body = {O.OFFSET: off, O.DATA: data[off : off + size]}
            st = await self._ask(dev, job, s, M.OTA_CHUNK, body)

    async def _ask(self, dev: Device, job: Job, s: Any, mtype: int, body: dict) -> dict:
        """A request in session s; _Lost when the node starts another session first."""
        if dev.session is not s:
            raise _Lost("the node started a new session")
        req = asyncio.ensure_future(self.gw.sessions.request(dev, mtype, body, REQUEST_TIMEOUT_S))
        try:
            while True:
                woke = asyncio.ensure_future(job.woke.wait())
                done, _ = await asyncio.wait({req, woke}, return_when=asyncio.FIRST_COMPLETED)
                woke.cancel()
                if req in done:
                    break
                job.woke.clear()
                if dev.session is not s:
                    raise _Lost("the node started a new session")
        finally:
            if not req.done():
                req.cancel()
        try:
            atype, ans = req.result()
        except (TimeoutError, ConnectionError) as e:
            raise _Lost(str(e) or type(e).__name__) from None
        if atype == M.ERROR:
            code = ans.get(M.CODE, 0)
            if code == errors.UNKNOWN_TYPE or code == errors.UNSUPPORTED:
                raise OtaError(f"{dev.name} does not take updates over the air")
            raise OtaError(f"{dev.name} answered error {errors.name(code)}")
        return ans

    async def _session(self, dev: Device, job: Job) -> Any:
        """The node's session once it is online; OtaError after WAIT_S without one."""
        end = time.monotonic() + WAIT_S
        while dev.session is None or not dev.online:
            if job.state != "waiting" and not job.switched:
                self._set(dev, job, "waiting")
            left = end - time.monotonic()
            if left <= 0:
                raise OtaError(f"{dev.name} is offline ({dev.reason})")
            await self._woken(job, left)
        return dev.session

    async def _new_session(self, dev: Device, job: Job, s: Any) -> None:
        end = time.monotonic() + WAIT_S
        while dev.session is s:
            left = end - time.monotonic()
            if left <= 0:
                raise OtaError(f"{dev.name} did not come back after restarting into the update")
            await self._woken(job, left)

    async def _woken(self, job: Job, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(job.woke.wait(), timeout)
        job.woke.clear()

    # -- reporting --------------------------------------------------------------------

    def _set(self, dev: Device, job: Job, state: str) -> None:
        if job.state != state:
            job.state = state
            self._publish(dev, job)

    def _progress(self, dev: Device, job: Job, off: int) -> None:
        job.offset = off
        step = 100 * off // job.size // _STEP
        if step != job.shown:
            job.shown = step
            self._publish(dev, job)

    def _end(self, dev: Device, job: Job, state: str, error: str | None) -> None:
        job.error = error
        job.finished = time.time()
        if state == "failed":
            log.warning("update of %s to %s failed: %s", dev.name, job.version, error)
        job.state = state
        self._publish(dev, job)

    def _publish(self, dev: Device, job: Job) -> None:
        data = job.to_json()
        dev.ota = data
        self.gw.bus.publish(Event("ota", dev.hex, data, time.time()))

    # -- a fleet ------------------------------------------------------------------------

    def start_rollout(self, devs: list[Device], bundle: Bundle, force: bool = False) -> Rollout:
        """Update devs in order, one at a time; skip the offline and sleepy ones."""
        if self.rollout is not None and self.rollout.state == "running":
            raise CommandError(409, "a rollout is running already")
        go, skipped = [], {}
        for d in devs:
            if d.sleepy:
                skipped[d.hex] = "sleeps between reports"
            elif not d.online or d.session is None:
                skipped[d.hex] = f"offline ({d.reason})"
            else:
                go.append(d)
        if not go:
            raise CommandError(409, "no node to update: none of them is online and awake")
        r = Rollout(bundle.version, [d.hex for d in go], skipped)
        self.rollout = r
        r.task = asyncio.create_task(self._roll(r, go, bundle, force))
        return r

    async def _roll(self, r: Rollout, devs: list[Device], bundle: Bundle, force: bool) -> None:
        try:
            for dev in devs:
                r.current = dev.hex
                self.gw.bus.publish(Event("ota", "", {"rollout": r.to_json()}, time.time()))
                try:
                    job = self.start(dev, bundle, force)
                    assert job.task is not None
                    await job.task
                    state, error = job.state, job.error
                except CommandError as e:
                    state, error = "failed", e.reason
                r.results[dev.hex] = state
                if state != "confirmed":
                    r.state, r.error = "failed", f"{dev.name}: {error}; the rest were not updated"
                    return
            r.state = "confirmed"
        except asyncio.CancelledError:
            r.state = "cancelled"
            raise
        finally:
            r.current = None
            r.finished = time.time()
            self.gw.bus.publish(Event("ota", "", {"rollout": r.to_json()}, time.time()))


_STATES = {
    O.IDLE: "idle",
    O.RECEIVING: "receiving",
    O.VERIFYING: "verifying",
    O.STAGED: "staged",
    O.TRIAL: "trial",
    O.CONFIRMED: "confirmed",
    O.FAILED: "failed",
}
