"""The kithnet gateway: one asyncio service that discovers, trusts, tracks and commands
nodes, and relays them to hubs (installed as `kithnet.gateway`).

The path of a reading: udp.py (datagrams) -> sessions.py (handshake, open, de-duplicate,
acknowledge) -> devices.py (state, liveness) -> store.py (SQLite history) and bus.py (events)
-> api.py (HTTP/WebSocket) and the other hubs. service.py wires them; config.py reads
settings.
"""
