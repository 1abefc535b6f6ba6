"""The stuck-at-chance check of the training loop on made-up epochs: it
fires on frozen and on bouncing runs, never on runs that learn, however
slowly they start."""

import math

import numpy
import pytest

from nn_gpu.backends import get_backend
from nn_gpu.training.loop import STUCK_EPOCHS, ChanceWatch

N = 10_000
LABELS = numpy.repeat(numpy.arange(10), 1000).astype(numpy.int64)
LABELS[:90] = 1  # class 1 is the most frequent: 1,090 of 10,000


class FakeNet:
    """Just what ChanceWatch asks of a model; ``cost_of`` returns the costs given."""

    num_classes = 10

    def __init__(self, costs):
        self.backend, self.costs = get_backend("numpy"), iter(costs)

    def read(self, value):
        return float(value)

    def cost_of(self, X, labels):
        return next(self.costs)


def watch(accuracies, costs, etas=None):
    """The epoch at which the check fires (None: never) on these epochs."""
    chance = ChanceWatch(FakeNet(costs), (numpy.zeros((N, 1)), LABELS))
    for epoch, accuracy in enumerate(accuracies, 1):
        eta = etas[epoch - 1] if etas else 3.0
        if chance.update({"epoch": epoch, "validation_accuracy": accuracy, "eta": eta}):
            return epoch
    return None


def test_chance_is_the_most_frequent_class_give_or_take_three_standard_errors():
    chance = ChanceWatch(FakeNet([]), (numpy.zeros((N, 1)), LABELS))
    assert chance.baseline == 0.109
    assert chance.chance == pytest.approx(0.109 + 3 * math.sqrt(0.109 * 0.891 / N))


@pytest.mark.parametrize("costs", [
    [0.5] * 20,                                               # saturated: frozen
    [2.0282 - 1e-9 * i for i in range(20)],                    # eta ~ 0: frozen
    [1334, 900, 2100, 1500, 1100, 1700, 950, 1200, 3000] * 3,  # bouncing
])
def test_frozen_and_bouncing_runs_at_chance_are_stuck(costs):
    assert watch([0.098] * 20, costs) is not None


def test_the_first_new_low_resets_the_count():
    costs = [2.0, 2.0, 2.0, 2.0, 1.9, 1.9, 1.9, 1.9, 1.9, 1.9]
    assert watch([0.1] * 10, costs) == 1 + 4 + STUCK_EPOCHS


@pytest.mark.parametrize("accuracies, costs", [
    ([0.1] * 30, [2.3 * 0.999 ** i for i in range(30)]),        # a slow start: cost falls
    ([0.1] * 3 + [0.5, 0.8, 0.9] * 9, [2.3] * 30),              # leaves chance
    ([0.11, 0.12, 0.13, 0.15, 0.2, 0.3] * 5, [2.3] * 30),       # above chance soon
])
def test_runs_that_learn_are_never_stuck(accuracies, costs):
    assert watch(accuracies, costs) is None


def test_a_new_eta_starts_the_count_afresh():
    etas = [3.0] * 5 + [1.5] * 5 + [0.75] * 5
    assert watch([0.1] * 15, [2.0] * 15, etas) is None


def test_no_validation_no_check():
    assert ChanceWatch(FakeNet([]), None).update({"epoch": 1, "eta": 1.0}) is None
