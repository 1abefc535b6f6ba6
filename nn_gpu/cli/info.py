"""``nn-gpu evaluate``, ``presets``, ``download`` and ``info``: the small commands."""

import argparse
import os
import platform
import sys

import numpy

from ..analysis import ensemble
from ..backends import CUPY_INSTALL_HINT, cupy_status, get_backend
from ..bench.timing import blas_description
from ..data.download import DEFAULT_MIRRORS, MIRROR_SCHEMES, MIRRORS_ENV_VAR
from ..data.mnist import DATA_ENV_VAR, FILES, one_vs_rest, resolve_data_dir
from ..errors import NNGpuError
from ..presets import network as presets
from ..presets.convnet import table as conv_table
from ..version import __version__, install_hint
from .common import (
    PROG,
    CliError,
    add_backend,
    add_data,
    add_split,
    always_no,
    digit,
    load_model,
    load_model_file,
    load_split,
    percent,
    precision_recall,
    saved_digit,
)


def cmd_presets(args):
    """Print the presets of `train --preset`, with the book's figures."""
    print(presets.table())
    print()
    print(conv_table())
    return 0


def detected_digit(net, args):
    """The digit a one-output model detects: --digit, else the one `train
    --digit` saved with it; None for a model of ten digits."""
    if net.sizes[-1] != 1:
        if args.digit is not None:
            raise CliError(f"--digit: {args.model} classifies all ten digits; --digit is for "
                           "a one-output model from `train --digit`")
        return None
    wanted = args.digit if args.digit is not None else saved_digit(net)
    if wanted is None:
        raise CliError(f"{args.model} has one output neuron (a detector of one digit) but does "
                       "not say which digit: pass --digit D")
    return wanted


def cmd_evaluate(args):
    """Score a saved model on the MNIST test (or validation) set; a detector
    of one digit also by precision and recall, against always saying "no";
    with ``--ensemble``, every model and then their vote (:mod:`nn_gpu.analysis.ensemble`)."""
    if args.ensemble is not None:
        return evaluate_ensemble(args)
    if args.model is None:
        args.parser.error("name the MODEL to score (or --ensemble MODEL MODEL ...)")
    net = load_model(args, detector_ok=True)
    wanted = detected_digit(net, args)
    data = load_split(args)
    if wanted is not None:
        data = one_vs_rest(data, wanted)
    correct, total = net.evaluate(data), len(data[1])
    print(f"{args.split} accuracy: {correct} / {total} ({percent(correct, total)})")
    if wanted is not None:
        print(f"detecting {wanted}s: {precision_recall(*net.precision_recall(data))}; "
              f"{always_no(wanted, data[1])}")
    return 0


def evaluate_ensemble(args):
    """``evaluate --ensemble``: each model's accuracy, then the majority vote's."""
    if args.digit is not None:
        args.parser.error("--digit scores one detector of a digit; --ensemble votes among "
                          "models of all ten digits: give one or the other")
    paths = ([args.model] if args.model else []) + args.ensemble
    hint = ("it is a detector of one digit (from `nn-gpu train --digit`); an ensemble votes "
            "among models of all ten digits: score a detector alone with `nn-gpu evaluate "
            "MODEL`")
    nets = [load_model_file(path, args.backend, detector_hint=hint)  # all checked first
            for path in paths]
    data = load_split(args)
    for path, net in zip(paths, nets):
        correct, total = net.evaluate(data), len(data[1])
        print(f"{path}: {args.split} accuracy {correct} / {total} ({percent(correct, total)})")
    correct, total = ensemble.accuracy(nets, data)
    print(f"ensemble of {len(nets)} (majority vote): {args.split} accuracy {correct} / {total} "
          f"({percent(correct, total)})")
    return 0


def cmd_download(args):
    """Fetch and verify the four MNIST files, so `train` works offline afterwards."""
    from ..data.download import download_mnist  # urllib etc. only when needed

    dest = download_mnist(resolve_data_dir(args.data), mirrors=args.mirror, say=print)
    print(f"MNIST files are in {dest}")
    return 0


def mirror_url(text):
    """A mirror's base URL (``download --mirror``)."""
    if not text.startswith(MIRROR_SCHEMES) or len(text) <= len(text.split("://")[0]) + 3:
        raise argparse.ArgumentTypeError(
            f"expected a URL starting with {', '.join(MIRROR_SCHEMES)}, got {text!r}")
    return text


def optional_version(distribution, extra):
    """The installed version of an optional dependency, or how to install it
    (read from its metadata: importing Optuna would cost a second)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return f"not installed; {install_hint(extra)}"


def cmd_info(args):
    """Print what a bug report needs: versions, backends, BLAS and data location."""
    import numba
    import scipy

    usable, reason = cupy_status()
    print(f"nn_gpu {__version__}")
    print(f"python {platform.python_version()} ({sys.executable})")
    print(f"numpy {numpy.__version__}")
    print(f"scipy {scipy.__version__}")
    print(f"numba {numba.__version__}")
    print(f"BLAS: {blas_description()}")
    advice = "" if usable or CUPY_INSTALL_HINT in reason else \
        f"; for an NVIDIA GPU, {CUPY_INSTALL_HINT}"
    print(f"CuPy usable: {'yes' if usable else 'no'}: {reason}{advice}")
    print(f"sweep (Optuna): {optional_version('optuna', 'sweep')}")
    try:
        auto = get_backend("auto")
        print(f"backend 'auto' picks: {auto.name} ({auto.describe()})")
    except NNGpuError as exc:
        print(f"backend 'auto' fails: {exc}")
    data_dir = resolve_data_dir(args.data)
    source = "--data" if args.data else (DATA_ENV_VAR if os.environ.get(DATA_ENV_VAR)
                                         else "per-user default")
    missing = [name for name in FILES.values() if not (data_dir / name).is_file()]
    state = "all 4 MNIST files present" if not missing else (
        f"missing {', '.join(missing)}; run `{PROG} download`")
    print(f"data dir: {data_dir} (from {source}): {state}")
    return 0


def add_parsers(commands):
    """Register ``evaluate``, ``presets``, ``download`` and ``info``."""
    evaluate = commands.add_parser("evaluate", help="score a saved model on MNIST",
                                   description="Score a model written by `train --save`.")
    evaluate.add_argument("model", metavar="MODEL", nargs="?",
                          help="model file from `train --save`")
    evaluate.add_argument("--ensemble", nargs="+", metavar="MODEL",
                          help="also these models (or only these), then the digit most of "
                               "them vote for (ties: the larger summed output)")
    add_data(evaluate)
    add_backend(evaluate)
    add_split(evaluate)
    evaluate.add_argument("--digit", type=digit, metavar="D",
                          help="for a one-output model: the digit it detects (default: the "
                               "one `train --digit` saved with it)")
    evaluate.set_defaults(func=cmd_evaluate, parser=evaluate)

    listing = commands.add_parser("presets", help="list the presets of `train --preset`",
                                  description="List the presets of `train --preset`, with "
                                              "the accuracy the book reports for each.")
    listing.set_defaults(func=cmd_presets, parser=listing)

    download = commands.add_parser(
        "download", help="download and verify MNIST",
        description="Download the four MNIST files and check their SHA-256; files already "
                    "there and right are kept.")
    add_data(download)
    download.add_argument("--mirror", action="append", type=mirror_url, metavar="URL",
                          help="a base URL holding the four files, tried in the order given "
                               f"(repeat it for more; default: ${MIRRORS_ENV_VAR}, else "
                               f"{' then '.join(DEFAULT_MIRRORS)})")
    download.set_defaults(func=cmd_download, parser=download)

    info = commands.add_parser("info", help="show versions, backends and data location",
                               description="Show what a bug report needs.")
    add_data(info)
    info.set_defaults(func=cmd_info, parser=info)
