"""The training options, defined once in nn_gpu.options, and the rules that
used to be repeated: the compiled epoch's known costs, one probability rule."""

import argparse

import numpy
import pytest

from nn_gpu import Network
from nn_gpu.backends import get_backend
from nn_gpu.cli import common
from nn_gpu.errors import InvalidArgumentError
from nn_gpu.model import core, metrics
from nn_gpu.model.costs import QuadraticCost
from nn_gpu.options import MONITORS, TrainingSettings, batch_fits, dtype, patience
from nn_gpu.presets.network import resolve


def test_settings_check_every_option_when_made():
    settings = TrainingSettings(epochs=2, mini_batch_size=5, eta=1, l2=2)
    assert settings.eta == 1.0 and isinstance(settings.eta, float) and settings.l2 == 2.0
    assert settings.regularisation == {"l2": 2.0, "l1": 0.0, "momentum": 0.0, "dropout": 0.0}
    for bad, message in (({"epochs": 0}, "epochs must be a positive integer"),
                         ({"mini_batch_size": True}, "mini_batch_size must be a positive"),
                         ({"eta": float("inf")}, r"eta must be a number in \(0, inf\)"),
                         ({"dropout": 1.0}, r"dropout must be a number in \[0, 1\)"),
                         ({"early_stopping": 0}, "early_stopping must be a positive number"),
                         ({"method": "fast"}, "unknown method 'fast'")):
        with pytest.raises(InvalidArgumentError, match=message):
            TrainingSettings(**{"epochs": 1, "mini_batch_size": 1, "eta": 1.0, **bad})
    with pytest.raises(AttributeError):
        settings.eta = 2.0  # frozen: a run's settings cannot drift


def test_zero_means_off_and_monitors_from_resolved_options():
    options = resolve({"eta_schedule": 0, "early_stopping": 4}, "ch3-l2")
    assert options["eta_schedule"] is None and options["early_stopping"] == 4
    settings = TrainingSettings.from_options(options, "batched", ["training-cost",
                                                                  "evaluation-accuracy"])
    assert (settings.epochs, settings.mini_batch_size, settings.eta, settings.l2) == (
        30, 10, 0.5, 5.0)
    assert settings.monitor_training_cost and not settings.monitor_evaluation_cost
    assert set(MONITORS.values()) - {None} <= set(TrainingSettings.__dataclass_fields__)


def test_the_command_line_types_are_the_same_validators():
    assert common.positive_int("3") == 3 and common.unit_interval("0.5") == 0.5
    for convert, text, message in ((common.positive_int, "0", "must be a positive integer"),
                                   (common.positive_int, "x", "expected a positive integer"),
                                   (common.positive_float, "0", r"must be a number in (0, inf)"),
                                   (common.unit_interval, "1", r"must be a number in [0, 1)"),
                                   (common.patience, "0", "(or 'off')")):
        with pytest.raises(argparse.ArgumentTypeError) as info:
            convert(text)
        assert message in str(info.value)
    assert common.patience("off") == 0 and patience(None) is None


def test_dtype_and_batch_checks():
    assert dtype("float64") == numpy.float64 and dtype(numpy.float32) == numpy.float32
    with pytest.raises(InvalidArgumentError, match="unknown dtype 'int8'"):
        dtype("int8")
    assert batch_fits(10, 10) == 10
    with pytest.raises(InvalidArgumentError, match="--batch-size 11 is larger than the "
                                                   r"training set \(10 examples\)"):
        batch_fits(11, 10, "--batch-size")


def test_network_sgd_takes_settings_or_keywords_not_both():
    rng = numpy.random.default_rng(0)
    data = (rng.random((20, 4)), rng.integers(0, 2, 20))
    by_keywords = Network([4, 3, 2], backend="numpy", dtype="float64", seed=2)
    by_settings = Network([4, 3, 2], backend="numpy", dtype="float64", seed=2)
    first = by_keywords.sgd(data, 2, 5, 0.5, validation_data=data, l2=0.1, momentum=0.5)
    second = by_settings.sgd(data, settings=TrainingSettings(2, 5, 0.5, l2=0.1, momentum=0.5),
                             validation_data=data)
    assert [r["validation_correct"] for r in first] == [r["validation_correct"] for r in second]
    assert numpy.array_equal(by_keywords.weights[0], by_settings.weights[0])
    assert by_keywords.last_training == by_settings.last_training
    assert by_keywords.last_training["epochs_done"] == 2
    with pytest.raises(InvalidArgumentError, match="either settings or the options"):
        by_settings.sgd(data, settings=TrainingSettings(1, 5, 0.5), l2=0.1)


def test_the_compiled_epoch_refuses_a_cost_it_does_not_know():
    backend = get_backend("numpy")

    def plan(cost):
        return core.Plan(cost=cost, kinds=("sigmoid", "sigmoid"), eta=1.0, train_size=10)

    assert backend.compiled_epoch(plan(QuadraticCost)) is not None

    class HingeCost(QuadraticCost):  # a new cost: its own output error
        name = "hinge"

    class ImpostorCost(QuadraticCost):  # even under a known name
        name = "cross_entropy"

    assert backend.compiled_epoch(plan(HingeCost)) is None
    assert backend.compiled_epoch(plan(ImpostorCost)) is None


def test_one_probability_rule_for_predict_and_the_estimator():
    estimator = pytest.importorskip("nn_gpu.model.estimator")
    rng = numpy.random.default_rng(0)
    X, y = rng.random((30, 4)), rng.integers(0, 3, 30)
    clf = estimator.MLPClassifier(hidden_layer_sizes=(5,), epochs=1, random_state=0).fit(X, y)
    net = clf.network_
    assert numpy.array_equal(clf.predict_proba(X), metrics.probabilities(net, X))
    net.weights[-1][...] = 0
    net.biases[-1][...] = -1e4  # every sigmoid output underflows to 0
    assert numpy.asarray(net.feedforward(X)).max() == 0
    for proba in (clf.predict_proba(X), metrics.probabilities(net, X)):
        assert numpy.array_equal(proba, numpy.full((30, 3), 1 / 3))
