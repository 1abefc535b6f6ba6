"""The presets of `nn-gpu train --preset`: valid, and true to the book."""

import pytest

from nn_gpu import Network
from nn_gpu.cli import build_parser
from nn_gpu.cli.train_run import resolve_train_options
from nn_gpu.data.expand import expanded_training_set
from nn_gpu.errors import InvalidArgumentError
from nn_gpu.options import MONITORS
from nn_gpu.presets.network import PRESETS, TRAIN_DEFAULTS, as_arguments, get_preset, resolve, table

# The book's runs, option by option (Nielsen, "Neural Networks and Deep Learning",
# chapters 1 and 3), with the accuracy it reports for each.
BOOK = {
    "ch1-30": ({"sizes": [784, 30, 10], "cost": "quadratic", "activation": "sigmoid",
                "init": "normal", "batch_size": 10, "eta": 3.0, "epochs": 30}, 95.42, "test"),
    "ch1-100": ({"sizes": [784, 100, 10], "cost": "quadratic", "activation": "sigmoid",
                 "init": "normal", "batch_size": 10, "eta": 3.0, "epochs": 30}, 96.59, "test"),
    "ch3-l2": ({"sizes": [784, 100, 10], "cost": "cross_entropy", "activation": "sigmoid",
                "init": "normal", "batch_size": 10, "eta": 0.5, "epochs": 30, "l2": 5.0},
               97.92, "validation"),
    "ch3-l2-60": ({"sizes": [784, 100, 10], "cost": "cross_entropy", "activation": "sigmoid",
                   "init": "normal", "batch_size": 10, "eta": 0.1, "epochs": 60, "l2": 5.0},
                  98.04, "validation"),
}
# Everything the book's runs leave at the plain-SGD default.
PLAIN = {"l1": 0.0, "momentum": 0.0, "dropout": 0.0, "eta_schedule": None,
         "early_stopping": None, "expand": False}


@pytest.mark.parametrize("name", list(BOOK))
def test_book_presets_match_the_book(name):
    options, accuracy, split = BOOK[name]
    preset = PRESETS[name]
    assert (preset["book_accuracy"], preset["book_split"]) == (accuracy, split)
    resolved = resolve({}, name)
    assert {key: resolved[key] for key in options} == options
    assert {key: resolved[key] for key in PLAIN} == PLAIN
    assert resolved["l2"] == options.get("l2", 0.0)
    assert set(PRESETS[name]["options"]) <= set(options)  # nothing beyond the book's


def test_best_mlp_is_not_claimed_by_the_book():
    preset = PRESETS["best-mlp"]
    assert preset["book_accuracy"] is None and preset["book_split"] is None
    assert "not in the book" in preset["description"]


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_is_well_formed(name):
    preset = PRESETS[name]
    assert set(preset) == {"description", "book_accuracy", "book_split", "options"}
    assert preset["description"] and "\n" not in preset["description"]
    assert preset["book_split"] in (None, "test", "validation")
    assert set(preset["options"]) <= set(TRAIN_DEFAULTS)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_trains_one_epoch(name, mnist):
    """Every value is one Network and sgd accept (catches typos)."""
    options = resolve({}, name)
    (X, labels), validation, test = mnist
    training = (X[:200], labels[:200])
    if options["expand"]:
        training = expanded_training_set((X[:40], labels[:40]))
    assert len(training[1]) == 200
    net = Network(options["sizes"], cost=options["cost"], activation=options["activation"],
                  init=options["init"], backend="numpy", seed=0)
    monitor = {flag: choice in options["monitor"] for choice, flag in MONITORS.items() if flag}
    (record,) = net.sgd(training, 1, min(options["batch_size"], 200), options["eta"],
                        test_data=(test[0][:200], test[1][:200]),
                        validation_data=(validation[0][:200], validation[1][:200]),
                        l2=options["l2"], l1=options["l1"], momentum=options["momentum"],
                        dropout=options["dropout"], eta_schedule=options["eta_schedule"],
                        early_stopping=options["early_stopping"], **monitor)
    assert 0 <= record["test_accuracy"] <= 1


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_equals_its_command_line_flags(name):
    """`--preset NAME` and the flags `nn-gpu presets` prints give the same run."""
    def options(*argv):
        args = build_parser().parse_args(["train", *argv])
        return resolve_train_options(args)

    assert options("--preset", name) == options(*as_arguments(PRESETS[name]["options"]))


def test_resolve_precedence():
    assert resolve({}) == TRAIN_DEFAULTS
    assert resolve({}, "ch3-l2")["eta"] == 0.5                          # the preset's
    assert resolve({"eta": 0.25}, "ch3-l2")["eta"] == 0.25              # explicit wins
    assert resolve({"l2": 0.0}, "ch3-l2")["l2"] == 0.0                  # even a zero
    assert resolve({"eta": None}, "ch3-l2")["eta"] == 0.5               # None: not given
    assert resolve({}, "ch3-l2")["momentum"] == TRAIN_DEFAULTS["momentum"]  # built in
    assert resolve({"expand": False}, "best-mlp")["expand"] is False


def test_resolve_does_not_share_lists():
    resolve({}, "ch1-30")["sizes"].append(5)
    resolve({})["monitor"].clear()
    assert PRESETS["ch1-30"]["options"]["sizes"] == [784, 30, 10]
    assert len(TRAIN_DEFAULTS["monitor"]) == 4


def test_unknown_preset():
    with pytest.raises(InvalidArgumentError, match="nope.*ch1-30"):
        get_preset("nope")


def test_table_has_a_row_per_preset():
    lines = table().splitlines()
    assert len(lines) == 1 + 2 * len(PRESETS)
    assert lines[1].split()[:3] == ["ch1-30", "95.42%", "test"]
