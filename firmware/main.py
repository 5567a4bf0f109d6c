# Runs at every boot (after boot.py on an ESP32; alone on the host): start the node.
import sys

if "lib" not in sys.path and "/lib" not in sys.path:
    sys.path.append("lib")  # the Unix port has no /lib on its path; the board layout does
try:  # updated over the air: node/ota_boot.py picks the lib, or an update on trial (SPEC 9.4)
    open("ota/lib").close()
    main = __import__("node.ota_boot", None, None, ["boot"]).boot()
except OSError:  # never updated: the flashed lib
    main = __import__("node.runtime", None, None, ["main"]).main
main()
