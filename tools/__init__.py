"""Host-side tools: provisioning, flashing, emulation, demos (CPython)."""
