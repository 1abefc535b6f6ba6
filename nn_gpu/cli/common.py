"""What every command shares: the error type, argument types built from the
validators of :mod:`nn_gpu.options`, output-path checks, and the ``--data``,
``--backend`` and ``--dtype`` arguments."""

import argparse
import contextlib
import signal
import sys

import numpy

from .. import options
from ..analysis import ensemble
from ..backends import BACKEND_NAMES, NumpyBackend
from ..data.mnist import (
    DATA_ENV_VAR,
    NUM_CLASSES,
    TRAINING_SIZE,
    check_sizes,
    load_mnist,
    per_user_data_dir,
)
from ..errors import InvalidArgumentError, NNGpuError
from ..io.fileio import check_outputs

PROG = "nn-gpu"


class CliError(NNGpuError):
    """A problem with the command line found after parsing (e.g. an output path)."""


# ---------------------------------------------------------- argument types
def argument_type(parse, validate, expected):
    """An argparse type: ``parse`` the text (else "expected {expected}"), then
    ``validate`` it with an :mod:`nn_gpu.options` validator."""
    def convert(text):
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        try:
            return validate(value)
        except InvalidArgumentError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return convert


positive_int = argument_type(int, options.positive_int, "a positive integer")
seed = argument_type(int, options.seed, "a whole number >= 0")
positive_float = argument_type(float, options.positive_number, "a number")       # eta
non_negative_float = argument_type(float, options.non_negative_number, "a number")  # λ
unit_interval = argument_type(float, options.unit_interval, "a number")  # momentum, dropout


def training_size(text):
    """How many of MNIST's 50,000 training examples to use."""
    value = positive_int(text)
    if value > TRAINING_SIZE:
        raise argparse.ArgumentTypeError(
            f"must be at most {TRAINING_SIZE} (the MNIST training set), got {value}")
    return value


def digit(text):
    """A digit 0-9 (the one a detector, `train --digit`, answers for)."""
    try:
        return options.digit(int(text))
    except (ValueError, InvalidArgumentError):
        raise argparse.ArgumentTypeError(f"expected a digit 0-9, got {text!r}") from None


def patience(text):
    """A number of epochs >= 1, or "off" (0) to cancel a preset's."""
    if text.strip().lower() == "off":
        return 0
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (or 'off')") from None


# ------------------------------------------------------- shared arguments
def add_data(parser):
    """``--data DIR``; its help names the per-user default as this environment
    makes it (``$XDG_DATA_HOME``)."""
    parser.add_argument("--data", metavar="DIR",
                        help=f"MNIST directory (default: ${DATA_ENV_VAR}, else "
                             f"{per_user_data_dir()})")


def add_backend(parser):
    parser.add_argument("--backend", choices=BACKEND_NAMES, default="auto")


def add_threads(parser):
    parser.add_argument("--threads", type=positive_int, metavar="N",
                        help="BLAS threads of every product of the CPU's compiled epoch "
                             "(default: chosen per product: one where a product is small or "
                             "the machine busy)")


def apply_threads(backend, threads, parser):
    """``backend`` with ``--threads`` applied (the numpy backend only)."""
    if threads is None:
        return backend
    if not isinstance(backend, NumpyBackend):
        parser.error(f"--threads sets the CPU's BLAS threads; backend {backend.name!r} "
                     "does not use them (use --backend numpy)")
    return NumpyBackend(backend.reason, threads=threads)


def add_dtype(parser):
    parser.add_argument("--dtype", choices=options.DTYPES, default="float32")


def add_split(parser):
    parser.add_argument("--split", choices=("test", "validation"), default="test",
                        help="the MNIST set to score (default: test)")


def add_model(parser):
    parser.add_argument("model", metavar="MODEL", help="model file from `train --save`")


# ------------------------------------------------------------------ checks
def check_output_path(path, flag, inputs=()):
    """Fail now, not after training, if ``path`` can never be written or is
    one of the ``inputs`` ((label, path) pairs; see :func:`nn_gpu.io.fileio.check_outputs`)."""
    check_outputs([(flag, path)], inputs)


def check_mnist_sizes(sizes, what, parser=None, detector=False,
                      detector_hint="a single output neuron detects one digit: add --digit D"):
    """MNIST needs 784 inputs and 10 outputs (1 for a one-digit ``detector``):
    a usage error (with ``parser``) or a :class:`CliError` before anything runs.
    Where one output is not wanted, ``detector_hint`` says what to do instead."""
    try:
        check_sizes(sizes, what, detector)
    except InvalidArgumentError as exc:
        message = str(exc)
        if not detector and len(sizes) >= 2 and sizes[-1] == 1:
            message += f"; {detector_hint}"
        if parser is not None:
            parser.error(message)
        raise CliError(message) from None


def check_batch_fits(parser, flag, batch_size, examples):
    """A usage error where a mini-batch is larger than the training set."""
    try:
        options.batch_fits(batch_size, examples, flag)
    except InvalidArgumentError as exc:
        parser.error(str(exc))


def load_model(args, detector_ok=False, detector_hint=None):
    """The model of a command that scores MNIST, on ``--backend``: ten
    outputs, or (where ``detector_ok``) one, for a detector of one digit."""
    return load_model_file(args.model, args.backend, detector_ok, detector_hint)


def load_model_file(path, backend, detector_ok=False, detector_hint=None):
    """A model file (fully connected or convolutional) for MNIST, on
    ``backend``; a detector where none is wanted is told ``detector_hint``
    (default: score it with `evaluate`)."""
    net = ensemble.load_model(path, backend=backend)
    hint = detector_hint or (f"it is a detector of one digit (from `{PROG} train --digit`), "
                             f"which this command does not take: score it with "
                             f"`{PROG} evaluate {path}`")
    check_mnist_sizes(net.sizes, f"{path}: model layer sizes",
                      detector=detector_ok and net.sizes[-1] == 1, detector_hint=hint)
    return net


def saved_digit(net):
    """The digit a one-output model from `train --digit` detects, or None."""
    digit = (net.last_training or {}).get("digit")
    valid = isinstance(digit, int) and not isinstance(digit, bool) and 0 <= digit < NUM_CLASSES
    return digit if valid else None


def load_split(args):
    """The MNIST set ``--split`` names."""
    _, validation, test = load_mnist(args.data)
    return test if args.split == "test" else validation


# ---------------------------------------------------------------- output
def terminal_bar(description, total, unit):
    """A tqdm progress bar on stderr (for a terminal: callers check), with
    ``update(n)`` and ``close()``."""
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit=unit, leave=False, dynamic_ncols=True)


def percent(correct, total):
    return f"{100 * correct / total:.2f}%"


def interrupted(done, history_path, checkpoint, command=None):
    """After Ctrl-C or SIGTERM in ``train``: say what was kept and the
    ``command`` that continues the run; the exit status 130."""
    kept = [f"history kept in {history_path}"] if history_path else []
    if checkpoint is not None and checkpoint.exists():
        command = command or f"{PROG} train --resume {checkpoint.directory}"
        kept.append(f"checkpoint of epoch {done} in {checkpoint.directory}: continue with "
                    f"`{command}`")
    print(f"Interrupted after epoch {done}; {'; '.join(kept) or 'nothing saved'}",
          file=sys.stderr, flush=True)
    return 130


def always_no(digit, labels):
    """The accuracy a detector of ``digit`` gets for free: the share of 0s
    among the (0/1) labels is what answering "no" every time scores."""
    total = len(labels)
    no = total - int(numpy.sum(labels))
    return f"always answering \"not a {digit}\" scores {percent(no, total)}"


def precision_recall(precision, recall):
    return f"precision {100 * precision:.2f}%, recall {100 * recall:.2f}%"


def interrupt(signum, frame):
    """SIGTERM (and SIGHUP for the sweep) end a command the way Ctrl-C does."""
    raise KeyboardInterrupt


@contextlib.contextmanager
def terminated_as_interrupt():
    """SIGTERM raises KeyboardInterrupt while the block runs, so that what a
    command cleans up on Ctrl-C (a download's temporary file, a half-written
    output) it cleans up when a scheduler or ``kill`` stops it too. Outside
    the main thread (where no handler can be set) nothing changes."""
    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def fail(message):
    """Print ``message`` as one error line on stderr; return the exit status 1."""
    message = " ".join(str(message).split())
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    return 1
