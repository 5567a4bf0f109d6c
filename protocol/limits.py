# Limits of protocol v1 (SPEC.md, "Limits"). A module of its own so that the portable
# code and the CPython fast paths share them without importing each other.

MAX_FRAME = 1232  # bytes: the UDP payload that crosses any IPv6 path unfragmented
MAX_DEPTH = 8  # nesting of arrays and maps
MAX_ITEMS = 64  # entries of one array or map
MAX_TEXT = 255  # bytes of UTF-8 in one text string
MAX_BYTES = 1024  # bytes in one byte string

KEY_LEN = 16  # AES-128
NONCE_LEN = 13  # AES-CCM nonce, so L = 2
TAG_LEN = 8  # AES-CCM tag
