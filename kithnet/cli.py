"""The `kithnet` command."""

from __future__ import annotations

import argparse

from kithnet import __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kithnet", description="Local-first AIoT: nodes, gateway, hubs."
    )
    parser.add_argument("--version", action="version", version=f"kithnet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="run the protocol demo: a MicroPython node and a CPython peer"
    )
    demo.add_argument(
        "--seconds", type=float, default=None, help="stop after this long (default: Ctrl-C)"
    )
    args = parser.parse_args(argv)
    if args.command == "demo":
        from kithnet.tools import protocol_demo

        reports = protocol_demo.run(args.seconds)
        return 0 if reports else 1
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
