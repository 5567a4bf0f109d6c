"""Registering a node's id and key in a gateway, for `kithnet flash`, `node create` and
`emulate`: directly in the gateway's data directory, or through its HTTP API.

A gateway keeps its registry in memory and writes it back to SQLite as nodes change, so a
row written behind a *running* gateway's back would be unknown to it until a restart and
could be overwritten by it (a rotated key lost). So the data directory is written directly
only while no process has its database open, which SQLite itself tells: every connection to
a WAL database holds a shared lock on the "DMS" byte of its -shm file for as long as it is
open (sqlite's os_unix.c), so an exclusive probe on that byte fails exactly then. While a
gateway runs, registration goes through its API (POST /api/devices) with the token from
DATA/token, which also proves that the gateway answering is the one that owns DATA.

Nothing here prints or logs a key.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_URL = "http://127.0.0.1:47880"
_DMS_BYTE = 128  # sqlite's UNIX_SHM_DMS: (22 + SQLITE_SHM_NLOCK) * 4 + SQLITE_SHM_NLOCK
TIMEOUT_S = 10.0  # a gateway that does not answer within this is "not answering"


class RegistryError(Exception):
    """The gateway could not be reached or refused the node; the message is for a person."""


@dataclass
class Node:
    """What the gateway learns about a provisioned node (key: 32 hex digits)."""

    id: str
    key: str
    name: str
    room: str | None = None
    type: str | None = None

    def __repr__(self) -> str:  # never the key, whatever prints this
        return f"Node(id={self.id!r}, name={self.name!r}, room={self.room!r}, type={self.type!r})"


def default_data() -> Path:
    return Path(os.environ.get("KITHNET_DATA") or Path.home() / ".kithnet").expanduser()


def default_url() -> str:
    return os.environ.get("KITHNET_URL") or DEFAULT_URL


def db_in_use(db: Path) -> bool:
    """Whether another process has this SQLite (WAL) database open: a running gateway.

    Call it before opening the database in this process: closing the probe's descriptor
    drops every POSIX lock this process holds on the -shm file, sqlite's own included.
    """
    try:
        fd = os.open(f"{db}-shm", os.O_RDWR)
    except FileNotFoundError:
        return False  # nobody has it open in WAL mode (a clean stop removes the file)
    except OSError as e:
        raise RegistryError(f"cannot check whether a gateway uses {db}: {e.strerror}") from None
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _DMS_BYTE)
    except OSError:
        return True
    finally:
        os.close(fd)  # also releases the probe's lock
    return False


class DataRegistry:
    """The registry table of a gateway's SQLite database, written with the store's own
    schema and node operation while no gateway has it open."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.db = data / "kithnet.db"
        self.where = f"the gateway's data in {data}"

    def check(self) -> None:
        if self.data.exists() and not self.data.is_dir():
            raise RegistryError(f"{self.data} is not a directory (the gateway's data)")
        if db_in_use(self.db):
            raise RegistryError(f"a gateway is running on {self.data}")
        try:
            self.data.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RegistryError(f"cannot use {self.data}: {e.strerror}") from None

    @contextlib.contextmanager
    def _tx(self) -> Any:
        from kithnet.gateway import store

        self.check()  # again, right before writing: a gateway may have started since
        try:
            db = store._connect(self.db)
        except sqlite3.Error as e:
            raise RegistryError(f"cannot open {self.db}: {e}") from None
        try:
            db.executescript(store.SCHEMA)
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db, store._apply
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise RegistryError(f"writing {self.db} failed: {e}") from None
        finally:
            db.close()

    def known(self, node_id: str) -> bool:
        with self._tx() as (db, _):
            return db.execute("SELECT 1 FROM nodes WHERE id = ?", (node_id,)).fetchone() is not None

    def register(self, nodes: list[Node]) -> None:
        """Add the nodes, or give known ones their (new) key, name and room: all or none."""
        with self._tx() as (db, apply):
            for n in nodes:
                taken = db.execute(
                    "SELECT id FROM nodes WHERE lower(name) = lower(?) AND id != ?", (n.name, n.id)
                ).fetchone()
                if taken:
                    raise RegistryError(f"the name {n.name!r} is taken by node {taken[0]}")
                row = db.execute("SELECT num FROM nodes WHERE id = ?", (n.id,)).fetchone()
                rec: dict[str, Any] = {"key": bytes.fromhex(n.key), "name": n.name}
                if n.room is not None:
                    rec["room"] = n.room or None
                if n.type is not None:
                    rec["type"] = n.type  # flashed as another type: the gateway follows
                if row is None:
                    rec.update(id=n.id, added=time.time())
                else:
                    rec["num"] = row[0]
                apply(db, "node", rec)

    def forget(self, node_id: str) -> None:
        with self._tx() as (db, apply):
            row = db.execute("SELECT num FROM nodes WHERE id = ?", (node_id,)).fetchone()
            if row is not None:
                apply(db, "delete", row[0])


class ApiRegistry:
    """A running gateway, through its HTTP API (kithnet.gateway.client)."""

    def __init__(self, url: str, token: str | None, token_source: str) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.token_source = token_source
        self.where = f"the gateway at {self.url}"

    def _run(self, fn: Any) -> Any:
        from kithnet.gateway.client import ApiError, Client, Unreachable

        async def go() -> Any:
            async with Client(self.url, self.token, timeout=TIMEOUT_S) as c:
                return await fn(c)

        try:
            return asyncio.run(go())
        except Unreachable as e:
            raise RegistryError(
                f"the gateway does not answer at {self.url} ({_detail(e)})"
            ) from None
        except ApiError as e:
            if e.status == 401:
                where = (
                    f"read from {self.token_source}"
                    if self.token
                    else f"none found in {self.token_source}"
                )
                raise RegistryError(
                    f"the gateway at {self.url} refused the API token ({where})"
                ) from None
            raise RegistryError(f"the gateway at {self.url} refused: {e.reason}") from None

    def check(self) -> None:
        async def go(c: Any) -> None:
            await c.health()
            await c.devices()  # the token too

        self._run(go)

    def known(self, node_id: str) -> bool:
        from kithnet.gateway.client import ApiError

        async def go(c: Any) -> bool:
            try:
                await c.device(node_id)
            except ApiError as e:
                if e.status == 404:
                    return False
                raise
            return True

        return self._run(go)

    def register(self, nodes: list[Node]) -> None:
        async def go(c: Any) -> None:
            devices = await c.devices()
            for n in nodes:
                taken = [d["id"] for d in devices
                         if d["id"] != n.id and d["name"].lower() == n.name.lower()]  # fmt: skip
                if taken:
                    raise RegistryError(f"the name {n.name!r} is taken by node {taken[0]}")
            for n in nodes:
                await c.adopt(n.id, n.key, name=n.name, room=n.room)

        self._run(go)

    def forget(self, node_id: str) -> None:
        async def go(c: Any) -> None:
            await c.forget(node_id)

        self._run(go)


Registry = DataRegistry | ApiRegistry


def token_for(token: str | None, data: Path) -> tuple[str | None, str]:
    """(token, where it was read): --token, $KITHNET_TOKEN, else DATA/token."""
    if token:
        return token, "--token"
    if os.environ.get("KITHNET_TOKEN"):
        return os.environ["KITHNET_TOKEN"], "$KITHNET_TOKEN"
    path = data / "token"
    try:
        return path.read_text().strip() or None, str(path)
    except OSError:
        return None, f"--token, $KITHNET_TOKEN or {path} (missing)"


def open_registry(
    data: str | None = None, url: str | None = None, token: str | None = None
) -> Registry:
    """The gateway to register in, checked to be usable (RegistryError if not).

    --gateway URL: its API. --gateway-data DIR (default $KITHNET_DATA or ~/.kithnet): the
    database there while no gateway runs on it, else the API of the gateway that does
    (URL: --gateway, $KITHNET_URL or the default), which must accept DIR's token.
    """
    data_dir = Path(data).expanduser() if data else default_data()
    if url:
        reg: Registry = ApiRegistry(url, *token_for(token, data_dir))
        reg.check()
        _warn_if_remote(reg.url)
        return reg
    direct = DataRegistry(data_dir)
    try:
        direct.check()
        return direct
    except RegistryError:
        if not db_in_use(direct.db):
            raise
    api = ApiRegistry(default_url(), *token_for(token, data_dir))
    try:
        api.check()
    except RegistryError as e:
        raise RegistryError(
            f"a gateway is running on {data_dir} (its database is open), and registering "
            f"through its API failed: {e}; give its API with --gateway URL (and --token)"
        ) from None
    return api


def _warn_if_remote(url: str) -> None:
    """The key travels to the gateway in the request: say so when that is not loopback."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "http" and host not in ("127.0.0.1", "::1", "localhost"):
        import sys

        print(
            f"kithnet: warning: the node key goes to {host} over plain HTTP; "
            "use an SSH tunnel or run this on the gateway's machine",
            file=sys.stderr,
        )


def _detail(e: Exception) -> str:
    text = str(e)
    start = text.find("(")
    return text[start + 1 : -1] if start >= 0 and text.endswith(")") else text
