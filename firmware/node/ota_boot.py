# Which lib boots once an update has been installed (SPEC.md 9.4). main.py imports this
# module, from the flashed lib, only when ota/lib exists; a board never updated does not.
# It puts the lib in force (ota/lib) on sys.path instead of the flashed one, or the lib on
# trial (ota/trial) while it has boots left (counted in ota/boots), and rolls a trial back
# when its boots are used up without a confirmation (node/ota_trial.py confirms it once
# online) or when it fails before its runtime runs. It must read the files every later
# version writes: ota/lib is "LIB", ota/trial "LIB SHA256 VERSION", LIB/../meta "SHA256
# VERSION". A trial's boot keeps this module in sys.modules: start.py knows it by that.
#
# A trial that never confirms loses its boots: a crash inside its runtime resets the
# board, so do its deadline, the watchdog and a power cut, and each of those boots counts.
# Two boots: the first may restart once, to write its boot plan. (Few names on purpose:
# each one stays interned on the heap of every updated node.)

import os
import sys


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _remove(why):
    """Roll the trial back: main.py boots the lib in force from now on."""
    print("kithnet: the update on trial %s: rolling back" % why)
    try:
        os.remove("ota/failed")
    except OSError:
        pass
    os.rename("ota/trial", "ota/failed")


def boot():
    """The function main.py runs: the runtime's main of the lib in force, or of the lib on
    trial wrapped so that a failure before it runs rolls it back."""
    me = sys.modules.pop(__name__)
    sys.modules.pop("node", None)  # the package of the lib that boots, not of this one
    path = sys.path
    cur = _read("ota/lib") or "lib"
    lib = _read("ota/trial")
    try:
        os.stat(cur)
    except OSError:
        cur = "lib"  # a lib in force that is gone: the flashed one still works
    if lib:
        try:
            lib = lib.split()[0]
            if lib == "image":  # a MicroPython image on trial: its bootloader counts boots
                sys.modules[__name__] = me
                lib = None
            elif lib == cur:  # confirmed, then cut off before the trial's record went
                os.remove("ota/trial")
                lib = None
            else:
                os.stat(lib)
                boots = int(_read("ota/boots") or "0")
                if boots >= 2:
                    _remove("did not come online in %d boots" % boots)
                    lib = None
                else:
                    with open("ota/boots.tmp", "w") as f:
                        f.write(str(boots + 1))
                    os.rename("ota/boots.tmp", "ota/boots")  # (FAT: a leftover is no boot)
        except Exception as e:  # an unreadable record or a missing lib
            sys.print_exception(e)
            _remove("cannot boot")
            lib = None
    for i in range(len(path)):
        if path[i] == "lib" or path[i] == "/lib":
            path[i] = lib or cur
    try:
        runtime = __import__("node.runtime", None, None, ["main"])
    except Exception as e:
        if lib is None:
            raise
        _run(e)
    cur = _read((lib or cur)[:-3] + "meta")  # the version it reports (hello, DNS-SD)
    if cur:
        runtime.FIRMWARE = cur.split()[1]
    if lib is None:
        return runtime.main
    sys.modules[__name__] = me  # a trial: start.py knows it by this
    return _run


def _run(e=None):
    """The trial's runtime; a failure before it runs (e) rolls the trial back, restarts."""
    try:
        if e is None:
            sys.modules["node.runtime"].main()
            return
    except Exception as x:
        e = x
    sys.print_exception(e)
    _remove("crashed at boot")
    try:
        import machine

        machine.reset()  # the ESP32
    except (ImportError, AttributeError):
        pass
    with open(".reset", "w") as f:  # the host board runner's reset (tools/board.py)
        f.write("reset")
    sys.exit(76)
