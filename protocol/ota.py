# OTA message fields and states, and the file bundle's constants (SPEC.md 9.4).
# MicroPython and CPython. Apart from messages.py so that a node holds these names only
# while an update runs.

# ota-offer fields
VERSION = 1
SIZE = 2
SHA256 = 3
CHUNK_SIZE = 4
BUNDLE = 5
FORCE = 6  # true: transfer even an image the node runs or has rolled back
# ota-chunk fields
OFFSET = 1
DATA = 2
# ota-status fields
STATE = 1
NEXT = 2
MAX_CHUNK = 3  # the largest chunk the node takes (answering an offer); default the offer's

# States carried in ota-status.
IDLE = 0
RECEIVING = 1
VERIFYING = 2
STAGED = 3
TRIAL = 4
CONFIRMED = 5
FAILED = 6

# What an offer is for (its BUNDLE field): a kithnet file bundle; absent means a firmware
# image (an ESP32 app partition).
FILES = "files"

# The file bundle: MAGIC, manifest length (2 bytes, big-endian), manifest (CBOR map),
# tag (HMAC-SHA256 of everything before it, under HKDF(node key, TAG_INFO || node id)),
# then every file's bytes in manifest order.
MAGIC = b"KNB1"
HEAD_LEN = 6
TAG_LEN = 32
TAG_INFO = b"kithnet/1 ota"
MF_VERSION = 1  # manifest: version (text)
MF_FILES = 2  # manifest: {directory under lib/: [[name, size, sha256], ...]}
