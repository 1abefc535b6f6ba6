"""Train one of the chapter-6 presets from the shell, logging every epoch:

    python -m nn_gpu.convnet.run ch6-conv1 --epochs 10 --history run.json --save conv1.npz

The history (one record per epoch, as ``ConvNetwork.sgd`` returns them) is
rewritten atomically after each epoch, so a long run can be watched and an
interrupted one keeps its epochs.
"""

import argparse
import json
import sys

from ..errors import NNGpuError
from ..expand import expanded_training_set
from ..fileio import atomic_write
from ..mnist import load_mnist
from .presets import CONV_PRESETS, book_figure, build


def train(name, epochs=None, data=None, backend="auto", seed=None, history_path=None,
          save=None, say=print):
    """Train preset ``name`` (its own epochs unless ``epochs``); return the history."""
    preset = CONV_PRESETS[name]
    options = preset["options"]
    training, validation, test = load_mnist(data)
    if options["expand"]:
        training = expanded_training_set(training)
    net = build(name, backend=backend, seed=seed)
    history = []

    def log(record):
        history.append(record)
        say(f"epoch {record['epoch']}: validation {record['validation_accuracy']:.2%}, "
            f"test {record['test_accuracy']:.2%} ({record['seconds']:.0f} s)", flush=True)
        if history_path is not None:
            with atomic_write(history_path, "w") as handle:
                json.dump({"preset": name, "options": options, "seed": seed,
                           "history": history}, handle, indent=1)

    net.sgd(training, epochs or options["epochs"], options["batch_size"], options["eta"],
            test_data=test, validation_data=validation, l2=options["l2"], callback=log)
    epoch, accuracy = book_figure(history)
    say(f"{name}: test accuracy {accuracy:.2%} at epoch {epoch} (best validation); "
        f"the book: {preset['book_accuracy']:.2f}%")
    if save is not None:
        net.save(save)
    return history


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m nn_gpu.convnet.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("preset", choices=CONV_PRESETS)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--data")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--history")
    parser.add_argument("--save")
    args = parser.parse_args(argv)
    try:
        train(args.preset, args.epochs, args.data, args.backend, args.seed, args.history,
              args.save)
    except NNGpuError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
