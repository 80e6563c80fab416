"""The single ``vj`` command: ``vj demo``, ``vj gan ...``, ``vj mosaic ...``, ``vj live``, ``vj render`` ...

Each command's module (here, ``gan.cli``, ``mosaic.cli``) imports its machinery when the command runs, so
``vj --help`` and every ``--help`` answer in a fraction of a second.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from vj.core.torchrun import rank_and_world

log = logging.getLogger("vj")

# errors a user can cause: one line, no traceback
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, FileExistsError, KeyError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vj", description="reframe-vj: train genre GANs, build reframe mosaics, play and render VJ sets.",
        epilog="Start with `vj demo` (no media needed). Every subcommand has --help.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (with tracebacks)")
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    from gan.cli import add_parser as add_gan
    from mosaic.cli import add_parser as add_mosaic
    from vj.cli import audio, control, demo, monitor, show

    add_gan(sub, monitor=monitor.serving)  # `vj gan train --web` serves the monitor while it trains
    add_mosaic(sub)
    for module in (show, control, audio, monitor, demo):
        module.add_parser(sub)
    return parser


def log_level(verbose: bool, env=os.environ) -> int:
    """Progress at INFO, a line each. Under torchrun (``WORLD_SIZE`` over 1) every process runs the command: all
    but rank 0 say only warnings and errors, so a log reads as one run's, not each line once per process. A
    ``RANK`` of anything else in the environment (another tool's) changes nothing."""
    return logging.DEBUG if verbose else logging.WARNING if rank_and_world(env)[0] > 0 else logging.INFO


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=log_level(verbose), format="%(message)s", stream=sys.stderr)
    for noisy in ("PIL", "matplotlib", "timm", "numba", "h5py", "asyncio", "openTSNE"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def say(exc: BaseException) -> str:
    """An error in the user's words: ``PATH: what is wrong`` for the system's errors, not ``[Errno 17] ...``."""
    if isinstance(exc, KeyError):
        return str(exc).strip("'\"")
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        if isinstance(exc, FileExistsError) and os.path.isfile(exc.filename):
            return f"{exc.filename}: a file is there where a folder is needed"
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    from gan.data import NoUsableVideo
    from vj.core.media import MediaError
    from vj.core.runs import RunBusy

    try:
        return int(args.func(args) or 0)
    except (*USER_ERRORS, MediaError, NoUsableVideo, RunBusy) as exc:
        if args.verbose:
            raise
        print(f"vj: error: {say(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # the machine said no (not a folder, no permission, disk full): one line, not a trace
        if args.verbose:
            raise
        print(f"vj: error: {say(exc)} (vj -v {args.cmd} ... shows where)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("vj: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
