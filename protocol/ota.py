# OTA message fields and states (SPEC.md, "OTA"). MicroPython and CPython.
# Apart from messages.py so that a node holds these names only while an update runs.

# ota-offer fields
VERSION = 1
SIZE = 2
SHA256 = 3
CHUNK_SIZE = 4
BUNDLE = 5
# ota-chunk fields
OFFSET = 1
DATA = 2
# ota-status fields
STATE = 1
NEXT = 2

# States carried in ota-status.
IDLE = 0
RECEIVING = 1
VERIFYING = 2
STAGED = 3
TRIAL = 4
CONFIRMED = 5
FAILED = 6
