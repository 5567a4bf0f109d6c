"""A real Gateway on its own event loop in a thread of the test process, optionally inside
a network namespace (every socket it opens, zeroconf's too, stays there). Tests call its
facade through call() and read its events from a subscription made at start.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from kithnet.gateway import config, service
from kithnet.gateway.bus import Event
from netns import enter


class GatewayThread:
    def __init__(self, ns: str | None = None, **settings: Any) -> None:
        settings.setdefault("http_host", "127.0.0.1")
        settings.setdefault("http_port", 0)
        settings.setdefault("udp_host", "127.0.0.1")
        settings.setdefault("udp_port", 0)
        settings.setdefault("token", "test-token")
        if ns is None:
            settings.setdefault("discovery", False)
        else:
            settings.setdefault("interfaces", ["127.0.0.1"])
        self.cfg = config.load(None, settings)
        self.ns = ns
        self.events: list[Event] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.gw: service.Gateway | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="gateway", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise TimeoutError("the gateway did not start")
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            if self.ns is not None:
                enter(self.ns)
            asyncio.run(self._main())
        except BaseException as e:
            self._error = e
            self._ready.set()

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.gw = service.Gateway(self.cfg)
        self.gw.bus.listen(self.events.append)
        await self.gw.start()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self.gw.stop()

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 60, **kw: Any) -> Any:
        """fn(*args) on the gateway's loop: awaited if it is a coroutine function."""

        async def go() -> Any:
            r = fn(*args, **kw)
            return await r if asyncio.iscoroutine(r) else r

        return asyncio.run_coroutine_threadsafe(go(), self.loop).result(timeout)

    def device(self, ref: str) -> dict:
        return self.call(self.gw.device, ref)

    def wait(
        self,
        what: Callable[[], Any],
        timeout: float = 30,
        why: str = "",
        check: Callable[[Any], Any] = bool,
    ) -> Any:
        """what() on the loop (awaited if a coroutine) until check(result) holds."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            r = self.call(what)
            if check(r):
                return r
            time.sleep(0.1)
        raise TimeoutError(why or "condition not met")

    def stop(self) -> None:
        if self.loop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(30)
