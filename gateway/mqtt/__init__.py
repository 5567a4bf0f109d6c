"""The MQTT hub (installed as kithnet.gateway.mqtt): the gateway's nodes on any MQTT broker,
with Home Assistant discovery, availability and commands, and a plain JSON topic tree.

One module, one job: settings.py (URL, prefixes, the gateway's id), topics.py (every topic),
codec.py (payloads), nodeview.py (a node's topics and JSON), discovery.py (Home Assistant
discovery payloads), outbox.py (the on-disk queue while the broker is away), link.py (the
paho-mqtt connection on the event loop) and hub.py (the adapter on the gateway's bus).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the package is imported by `kithnet`'s flags: paho only when it runs
    from .hub import MqttHub


async def start_hub(gw: Any) -> MqttHub | None:
    """The hub for a Gateway, started; None when its settings name no broker."""
    from .hub import MqttHub
    from .settings import from_config

    s = from_config(gw.config)
    if s is None:
        return None
    hub = MqttHub(gw, s)
    await hub.start()
    return hub
