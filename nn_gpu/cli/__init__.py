"""The ``nn-gpu`` command line: train, evaluate, presets, download, info,
bench, plot, predict, read, serve, sweep.

This file is the only one that lists the commands; each lives in a module of
its own (:mod:`.train`, :mod:`.info` for evaluate/presets/download/info,
:mod:`.bench`, :mod:`.plot`, :mod:`.predict`, :mod:`.read`, :mod:`.serve`,
:mod:`.sweep`) on top of the library, with what they share in
:mod:`.common`. Nothing outside this package imports it.

Every mistake a user can make ends in one line on stderr, never a traceback:
usage errors (bad flags or numbers) exit with status 2, errors found while
running (missing data, unreadable model, unwritable output) with status 1,
Ctrl-C during training with 130. Arguments are checked before any data is
loaded, so a typo never costs a 30-epoch run.
"""

import argparse
import sys

from ..errors import NNGpuError
from . import bench, info, plot, predict, read, serve, sweep, train
from .common import PROG, fail


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr, not the usage block."""

    def error(self, message):
        message = " ".join(str(message).split())
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser():
    parser = ArgumentParser(
        prog=PROG, description="Nielsen's MNIST networks, trained by mini-batch SGD "
                               "on NumPy or CuPy.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    train.add_parser(commands)
    info.add_parsers(commands)  # evaluate, presets, download, info
    for command in (bench, plot, predict, read, serve, sweep):
        command.add_parser(commands)
    return parser


def main(argv=None):
    """Run the command line; return the exit status (0 ok, 1 error, 2 usage, 130 Ctrl-C)."""
    parser = build_parser()
    try:
        args = parser.parse_args(plot.with_kind(sys.argv[1:] if argv is None else list(argv)))
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        return args.func(args)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:  # (training says itself what it kept)
        print(f"{PROG}: interrupted", file=sys.stderr, flush=True)
        return 130
    except MemoryError:  # numpy's _ArrayMemoryError too
        return fail("out of memory; try smaller --sizes or --batch-size, or a smaller "
                    "--train-size")
    except NNGpuError as exc:
        return fail(exc)
    except OSError as exc:  # writing --history / --save, or reading a data dir
        where = f"{exc.filename}: " if exc.filename else ""
        return fail(f"{where}{exc.strerror or exc}")
    except Exception as exc:
        if type(exc).__name__ != "OutOfMemoryError":  # cupy.cuda.memory.OutOfMemoryError
            raise
        return fail(f"out of GPU memory: {exc}; try a smaller --batch-size or network, "
                    "or --backend numpy")
