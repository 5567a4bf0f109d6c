# kithnet protocol v1: the wire contract shared by nodes (MicroPython) and the gateway
# (CPython). SPEC.md is the contract; this package is its reference implementation.
# Import submodules directly (protocol.cbor, protocol.frame, ...): on a node every
# module imported costs heap, so nothing is imported here.

VERSION = 1
