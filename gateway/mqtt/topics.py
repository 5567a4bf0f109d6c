"""Every topic the MQTT hub publishes or reads, in one place.

PREFIX is `mqtt_prefix` (default `kithnet`), NODE a node id (16 hex digits, unique, and
stable where names are not), GW this gateway's id (settings.gateway_id):

    PREFIX/NODE/CAP             a capability's value, JSON, retained (readings, states)
    PREFIX/NODE/CAP/set         command: a JSON value or bare text (ON, off, 21.5, cool)
    PREFIX/NODE/set             command: a JSON object {CAP: value, ..., "fade_ms"?}
    PREFIX/NODE/availability    online / offline, retained
    PREFIX/NODE/info            name, room, type, model, firmware, reboot reason; retained
    PREFIX/NODE/update          Home Assistant update entity state, retained
    PREFIX/NODE/light           a light's JSON state (HA JSON schema) and .../light/set
    PREFIX/NODE/owner           the id of the gateway that publishes this node, retained
    PREFIX/NODE/BUTTON          an event: {"event_type": "double", "count"?}, not retained
    PREFIX/gateway/GW/availability   online / offline (the gateway's last will), retained
    PREFIX/gateway/GW/state          nodes, online, queued, dropped; retained
    DISCOVERY/device/OBJECT/config   Home Assistant device discovery, retained
    DISCOVERY/status                 Home Assistant's birth message (online / offline)

CAP is the capability's name (label) with anything outside [A-Za-z0-9_-] made `_`; a name
that collides with a node-level topic above, or with another capability's, gets `_ID`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from kithnet.protocol import model

RESERVED = frozenset({"availability", "info", "update", "light", "owner", "set"})
NODE_ID = re.compile(r"[0-9a-f]{16}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def cap_names(caps: Mapping[int, model.Capability]) -> dict[int, str]:
    """The topic level of each capability: its label, made safe and unique."""
    out: dict[int, str] = {}
    taken: set[str] = set()
    for cid in sorted(caps):
        base = _UNSAFE.sub("_", caps[cid].label) or f"cap_{cid}"
        name = f"{base}_{cid}" if base in RESERVED or base in taken else base
        taken.add(name)
        out[cid] = name
    return out


class Topics:
    def __init__(self, prefix: str, discovery_prefix: str, gateway_id: str) -> None:
        self.prefix = prefix
        self.discovery_prefix = discovery_prefix
        self.gateway_id = gateway_id
        self.gateway = f"{prefix}/gateway/{gateway_id}"
        self.gateway_availability = f"{self.gateway}/availability"
        self.gateway_state = f"{self.gateway}/state"
        # A private round trip after subscribing: when it comes back, every retained owner
        # claim the broker had has arrived before it (the broker keeps order per client).
        self.fence = f"{self.gateway}/fence"
        self.ha_status = f"{discovery_prefix}/status"
        self._gw_avail_prefix = f"{prefix}/gateway/"
        self._n = len(prefix) + 1

    def node(self, node: str, leaf: str) -> str:
        return f"{self.prefix}/{node}/{leaf}"

    def discovery(self, object_id: str) -> str:
        return f"{self.discovery_prefix}/device/{object_id}/config"

    def subscriptions(self) -> list[str]:
        p = self.prefix
        return [
            f"{p}/+/set",
            f"{p}/+/+/set",
            f"{p}/+/owner",
            f"{p}/gateway/+/availability",
            self.fence,
            self.ha_status,
        ]

    def classify(self, topic: str) -> tuple[str, ...]:
        """What an incoming message is: ("ha_status",), ("fence",), ("owner", NODE),
        ("gateway", GW), ("set", NODE, CAP or ""), or ("unknown",) for anything else."""
        if topic == self.ha_status:
            return ("ha_status",)
        if topic == self.fence:
            return ("fence",)
        if not topic.startswith(self.prefix + "/"):
            return ("unknown",)
        parts = topic[self._n :].split("/")
        if parts[0] == "gateway" and len(parts) == 3 and parts[2] == "availability":
            return ("gateway", parts[1])
        if not NODE_ID.fullmatch(parts[0]):
            return ("unknown",)
        if len(parts) == 2 and parts[1] == "owner":
            return ("owner", parts[0])
        if len(parts) == 2 and parts[1] == "set":
            return ("set", parts[0], "")
        if len(parts) == 3 and parts[2] == "set":
            return ("set", parts[0], parts[1])
        return ("unknown",)
