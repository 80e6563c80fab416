"""``vj monitor``: the training monitor page for a runs folder (and ``vj gan train --web``, which serves it
while the queue trains)."""
from __future__ import annotations

import argparse
import contextlib
import logging
import time
from pathlib import Path

from vj.core.config import arg_number
from vj.core.runs import DEFAULT_RUNS

log = logging.getLogger("vj")


def add_parser(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("monitor", help="a web page of every training run in a runs folder (read-only)",
                       description="Serve the training monitor: per genre its epoch, step, img/s, ETA, latest "
                                   "samples, loss (and quality) curves and the learning clip so far. It updates "
                                   "by itself: check last night's training from a phone.",
                       epilog="examples:\n  vj monitor                       # runs/ on http://127.0.0.1:8080/\n"
                              "  vj monitor ~/runs --web 0.0.0.0:8081   # on the network (with a token)\n",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    m.add_argument("runs", nargs="?", type=Path, default=DEFAULT_RUNS, help="runs folder (default: %(default)s)")
    m.add_argument("--web", default="127.0.0.1:8080", metavar="[HOST:]PORT",
                   help="address to serve on (default %(default)s)")
    m.add_argument("--seconds", type=arg_number(0.1, 7 * 24 * 3600), help="stop after S seconds (default: until "
                   "Ctrl-C)")
    m.set_defaults(func=cmd_monitor)


@contextlib.contextmanager
def serving(runs: Path, address: str | None):
    """The monitor of ``runs`` while the block runs (nothing when ``address`` is None)."""
    if address is None:
        yield None
        return
    from vj.control.web import WebServer, parse_address, print_address

    server = WebServer(None, *parse_address(address), runs=runs)
    print_address(server)
    try:
        yield server
    finally:
        server.close()


def cmd_monitor(args) -> int:
    if not args.runs.exists():
        raise FileNotFoundError(f"{args.runs}: no such runs folder (train first: vj gan train ...)")
    with serving(args.runs, args.web):
        try:
            end = time.monotonic() + args.seconds if args.seconds else float("inf")
            while time.monotonic() < end:
                time.sleep(0.2)
        except KeyboardInterrupt:
            return 130
    return 0
