# An update on trial (SPEC.md 9.4): main.py booted the new lib; it becomes the lib in force
# once the node is online again (confirm), and is rolled back if it is not by its deadline
# (due). Either way a restart follows: the trial's boot keeps the loader (node/ota_boot.py)
# on its heap, a normal boot does not. Small on purpose: it loads into a running node.

import os
import time

from protocol import messages as M

from .hal import impl as hal

_done = False  # confirmed: due() restarts into a normal boot


def _at(stage):
    """A power cut here, for the tests (the file .ota_kill names the stage once)."""
    try:
        with open(".ota_kill") as f:
            if f.read() != stage:
                return
    except OSError:
        return
    os.remove(".ota_kill")
    os.system("kill -9 $PPID")
    hal.reset()


def _rm(path):
    try:
        os.remove(path)
    except OSError:
        pass


def confirm(node):
    """Online on trial: the new lib is good. ota/lib names it from now on (one rename)."""
    global _done
    if _done:
        return
    try:
        with open("ota/trial") as f:
            t = f.read().split()
    except OSError:
        t = None
    if t and t[0] == "image":  # a MicroPython image (ESP32): the bootloader's trial
        if hal.ota_running() == t[1]:
            hal.ota_confirm()  # kept: no rollback at the next reset
        else:  # the bootloader has rolled it back already
            _rm("ota/failed")
            os.rename("ota/trial", "ota/failed")
            t = None
    elif t:
        _at("confirm")
        with open("ota/lib.tmp", "w") as f:
            f.write(t[0])
        try:
            os.rename("ota/lib.tmp", "ota/lib")
        except OSError:  # FAT does not replace by rename
            _rm("ota/lib")
            os.rename("ota/lib.tmp", "ota/lib")
        _at("confirmed")
    if t:
        _rm("ota/trial")
        _rm("ota/boots")
        node.log("update %s confirmed" % t[-1])
        node.link.send(M.OTA_STATUS, {M.CODE: 0, 1: 5})  # state: confirmed
    _done = True
    node.ota_at = time.ticks_add(time.ticks_ms(), 300)  # the status leaves, then a restart


def due(node):
    """Confirmed: restart. Not online by the trial's deadline: roll back, restart."""
    if not _done:
        node.log("update not online before the trial's deadline: rolling back")
        _rm("ota/failed")
        os.rename("ota/trial", "ota/failed")
    hal.reset()


def answer(node, mtype, body):
    """Offers and chunks wait until the trial has ended."""
    return {M.CODE: 11, 1: 4, M.TEXT: "an update is on trial"}  # busy; state: trial
