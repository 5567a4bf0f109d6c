# A driver with a bug, for the watchdog test: once the file "hang" appears in the board
# directory its poll never returns, as a driver spinning on a bus that never answers
# would. It removes the file first, so the node runs normally after the watchdog reboot.
import os


class Driver:
    def __init__(self, hal, dev):
        self.caps = dev.get("caps", {})

    def read(self):
        return {}

    def poll(self, node, now):
        try:
            os.remove("hang")
        except OSError:
            return 200
        while True:
            pass
