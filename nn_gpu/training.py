"""Mini-batch SGD over epochs: shuffling, the learning-rate schedule, early
stopping and the monitors of network2.py, around the batched core (or the
per-example reference).

:class:`~nn_gpu.network.Network.sgd` is the entry point; this module keeps
the epoch loop apart from the model so each stays short.
"""

import math
import time

from . import core, reference
from .errors import InvalidArgumentError

METHODS = ("batched", "per_example")
# The η schedule of the book's chapter 3 stops once η has been halved 7 times.
SCHEDULE_FLOOR = 1 / 128


def check_number(value, what, low=0.0, high=math.inf, high_open=True):
    """A real number in [low, high) (or [low, high]); one clear error otherwise."""
    ok = (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
          and low <= value and (value < high if high_open else value <= high))
    if not ok:
        bracket = ")" if high_open else "]"
        raise InvalidArgumentError(f"{what} must be a number in [{low:g}, {high:g}{bracket}, "
                                   f"got {value!r}")
    return float(value)


def check_patience(value, what):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"{what} must be a positive number of epochs, got {value!r}")
    return value


class EpochRunner:
    """The training set moved to the device and checked once, plus everything
    an epoch reuses; each call trains one epoch at the given η (shuffle, SGD
    steps, synchronise)."""

    def __init__(self, net, training_data, mini_batch_size, method="batched", l2=0.0, l1=0.0,
                 momentum=0.0, dropout=0.0):
        self.net = net
        self.method = method
        self.mini_batch_size = mini_batch_size
        self.settings = {"l2": check_number(l2, "l2 (λ)"), "l1": check_number(l1, "l1 (λ)"),
                         "momentum": check_number(momentum, "momentum", 0.0, 1.0),
                         "dropout": check_number(dropout, "dropout", 0.0, 1.0)}
        if method not in METHODS:
            raise InvalidArgumentError(f"unknown method {method!r}; choose one of "
                                       f"{', '.join(METHODS)}")
        if method == "per_example":
            self._check_reference_supports()
        backend = net.backend
        self.X, labels = net.to_device(training_data, "training_data")
        self.train_size = self.X.shape[0]
        if mini_batch_size > self.train_size:
            raise InvalidArgumentError(f"mini_batch_size {mini_batch_size} is larger than the "
                                       f"training set ({self.train_size} examples)")
        self.Y = net.one_hot(labels)
        self.labels = labels
        # Dropout masks get their own stream, spawned from the network's seed
        # without drawing from it: the shuffles stay those of a run without dropout.
        self.rng = (backend.random_generator(int(net.rng.spawn(1)[0].integers(2**63)))
                    if self.settings["dropout"] else None)
        if method == "batched":
            self.workspace = core.Workspace(
                backend, net.sizes, mini_batch_size, net.dtype,
                momentum=self.settings["momentum"] > 0, dropout=self.settings["dropout"] > 0)
            # The backend's native epoch, if it has one (loaded now, not in epoch 1).
            self.compiled = backend.compiled_epoch(self.plan(1.0))

    def _check_reference_supports(self):
        net, settings = self.net, self.settings
        if (net.activation != "sigmoid" or net.cost.name not in ("quadratic", "cross_entropy")
                or any(settings.values())):
            raise InvalidArgumentError(
                "method 'per_example' is the book's chapter-1 reference: sigmoid neurons, "
                "quadratic or cross-entropy cost, no regularisation, momentum or dropout; "
                "use method 'batched' for the rest")

    def plan(self, eta):
        return core.Plan(cost=self.net.cost, kinds=self.net.kinds, eta=eta,
                         train_size=self.train_size, **self.settings)

    def __call__(self, eta):
        net, backend = self.net, self.net.backend
        order = net.rng.permutation(self.train_size)
        if self.method == "per_example":
            reference.train_epoch(backend, net.cost.name, net.weights, net.biases, self.X, self.Y,
                                  order, self.mini_batch_size, eta)
        elif self.compiled is not None:
            self.compiled(self.plan(eta), net.weights, net.biases, self.X, self.Y,
                          backend.asarray(order), self.mini_batch_size, self.workspace)
        else:
            core.train_epoch(backend, self.plan(eta), net.weights, net.biases, self.X, self.Y,
                             backend.asarray(order), self.mini_batch_size, self.workspace, self.rng)
        backend.synchronize()


def sgd(net, training_data, epochs, mini_batch_size, eta, test_data=None, validation_data=None,
        method="batched", l2=0.0, l1=0.0, momentum=0.0, dropout=0.0, eta_schedule=None,
        early_stopping=None, monitor_training_cost=False, monitor_training_accuracy=False,
        monitor_evaluation_cost=False, callback=None):
    """The body of :meth:`nn_gpu.network.Network.sgd` (see there)."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise InvalidArgumentError(f"epochs must be a positive integer, got {epochs!r}")
    if isinstance(mini_batch_size, bool) or not isinstance(mini_batch_size, int) \
            or mini_batch_size < 1:
        raise InvalidArgumentError(
            f"mini_batch_size must be a positive integer, got {mini_batch_size!r}")
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0 < eta < math.inf:
        raise InvalidArgumentError(f"eta must be a positive number, got {eta!r}")
    eta_schedule = check_patience(eta_schedule, "eta_schedule")
    early_stopping = check_patience(early_stopping, "early_stopping")
    if (eta_schedule or early_stopping) and validation_data is None:
        raise InvalidArgumentError("eta_schedule and early_stopping watch the validation "
                                   "accuracy: pass validation_data")
    run_epoch = EpochRunner(net, training_data, mini_batch_size, method, l2, l1, momentum,
                            dropout)
    scored = [(name, net.to_device(data, f"{name}_data"))
              for name, data in (("validation", validation_data), ("test", test_data))
              if data is not None]
    if monitor_training_cost or monitor_training_accuracy:
        scored.append(("train", (run_epoch.X, run_epoch.labels)))
    watch = Watch(net, eta, eta_schedule, early_stopping)

    history = []
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        run_epoch(watch.eta)
        record = {"epoch": epoch, "seconds": time.perf_counter() - started, "eta": watch.eta}
        scores = {}  # device values, read back together: one synchronisation per epoch
        for name, (X, labels) in scored:
            is_train = name == "train"
            if not is_train or monitor_training_accuracy:
                scores[f"{name}_correct"] = net.count_correct(X, labels)
            if monitor_training_cost if is_train else monitor_evaluation_cost:
                scores[f"{name}_cost"] = net.cost_of(X, labels, l2=l2, l1=l1,
                                                     train_size=run_epoch.train_size)
        record.update(net.read_all(scores))
        for name, (X, _) in scored:
            if f"{name}_correct" in record:
                record[f"{name}_correct"] = int(record[f"{name}_correct"])
                record.update({f"{name}_total": X.shape[0],
                               f"{name}_accuracy": record[f"{name}_correct"] / X.shape[0]})
        stop = watch.update(epoch, record.get("validation_accuracy"))
        history.append(record)
        if stop:
            record["stopped"] = stop
        if callback is not None:
            callback(record)
        if stop:
            break
    watch.restore_best()
    # What continuing this training needs (saved with the model).
    net.training = {"method": method, "mini_batch_size": mini_batch_size, "eta": watch.eta,
                    "train_size": run_epoch.train_size, "epochs_done": len(history),
                    **run_epoch.settings, "eta_schedule": eta_schedule,
                    "early_stopping": early_stopping}
    return history


class Watch:
    """The validation-accuracy watcher behind the η schedule (halve η after
    ``eta_schedule`` epochs without improvement; stop below η₀/128) and early
    stopping (stop after ``early_stopping`` such epochs, keep the best weights)."""

    def __init__(self, net, eta, eta_schedule, early_stopping):
        self.net, self.eta, self.eta0 = net, eta, eta
        self.eta_schedule, self.early_stopping = eta_schedule, early_stopping
        self.best, self.best_epoch, self.best_params = -1.0, None, None
        self.since_best = self.since_halving = 0

    def update(self, epoch, accuracy):
        """Take one epoch's validation accuracy; return why to stop, or None."""
        if accuracy is None:
            return None
        if accuracy > self.best:
            self.best, self.best_epoch = accuracy, epoch
            self.since_best = self.since_halving = 0
            if self.early_stopping:
                self.best_params = self.net.copy_parameters()
            return None
        self.since_best += 1
        self.since_halving += 1
        if self.early_stopping and self.since_best >= self.early_stopping:
            return (f"early stopping: no better validation accuracy in {self.since_best} "
                    f"epochs; keeping epoch {self.best_epoch}'s weights")
        if self.eta_schedule and self.since_halving >= self.eta_schedule:
            self.eta /= 2
            self.since_halving = 0
            if self.eta <= self.eta0 * SCHEDULE_FLOOR:
                return f"eta schedule: eta has fallen to eta0/128 ({self.eta:g})"
        return None

    def restore_best(self):
        if self.best_params is not None:
            self.net.set_parameters(self.best_params)
