"""The gateway facade's own exception, apart so that hubs (api.py) import it without
importing the service that imports them."""

from __future__ import annotations


class CommandError(Exception):
    """A command that cannot be carried out; status is the HTTP status that says why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
