# ESP32 boot: keep it minimal, everything else happens in main.py (which the host runs alone).
import gc

gc.collect()
