"""kithnet: local-first AIoT stack (gateway side package).

The wire contract lives in ``kithnet.protocol`` (the repository's ``protocol/``
folder), which also runs unchanged on MicroPython nodes.
"""

__version__ = "0.1.0"
