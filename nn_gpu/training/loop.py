"""Mini-batch SGD over epochs, for every kind of network: the learning-rate
schedule, early stopping and the monitors of network2.py, the history
records, checkpoints, progress, and the divergence and stuck checks, around
a model's epoch runner.

``Model.sgd`` (:class:`nn_gpu.model.base.Model`, the interface every network
implements, listed there) is the entry point. The model is asked, never
inspected: ``net.runner(training_data, settings)`` gives the object that
trains one epoch (:class:`nn_gpu.model.epoch.EpochRunner`), the model's
scoring methods measure it, its metadata describes it in checkpoints, and
``net.check_supported(settings)`` refuses what it does not train with.

A run *stuck at chance* stops with :class:`~nn_gpu.errors.TrainingStuckError`:
epoch after epoch the validation accuracy was no better than always
answering the validation set's most frequent class (give or take three
standard errors of that share), and for
:data:`STUCK_EPOCHS` of those epochs the validation cost (without
regularisation) reached no new low, by more than :data:`STUCK_COST_CHANGE`
of itself. A network that learns leaves chance within an epoch or two on
MNIST, and one slow to start lowers its cost epoch after epoch; what meets
both is saturated or bouncing (η far too large) or frozen (η far too small).
A new η (the η schedule's, a resume's) starts the count afresh. The cost is
computed only in epochs at chance.
"""

import math
import time

from ..errors import (
    CheckpointError,
    InvalidArgumentError,
    TrainingDivergedError,
    TrainingStuckError,
)
from ..options import number_in, patience, positive_number
from .scores import POSITIVE_COUNTS, precision_recall

# The η schedule of the book's chapter 3 stops once η has been halved 7 times.
SCHEDULE_FLOOR = 1 / 128
#: Epochs at chance without a new low of the cost that make a run stuck.
STUCK_EPOCHS = 5
#: How much lower than the lowest so far, relative to it, a new low must be.
STUCK_COST_CHANGE = 1e-4
#: Settings a checkpoint may lack, with the value their absence means.
SETTINGS_ABSENT = {"keep_best": False}


def sgd(net, *args, **kwargs):
    """:func:`_sgd`, with NumPy's overflow and NaN warnings off:
    :func:`_check_finite` reports them as an error."""
    with net.backend.ignoring_float_errors():
        return _sgd(net, *args, **kwargs)


def _sgd(net, training_data, settings, test_data=None, validation_data=None, callback=None,
         checkpoint=None, resume=False, progress=None):
    """Train ``net`` as ``settings`` (a :class:`~nn_gpu.options.TrainingSettings`)
    say; return ``(history, last_training)``: one record per epoch, and what
    continuing this training needs (saved with the model). The body of
    :meth:`nn_gpu.model.base.Model.sgd` (see there)."""
    if (settings.eta_schedule or settings.early_stopping or settings.keep_best) \
            and validation_data is None:
        raise InvalidArgumentError("eta_schedule, early_stopping and keep_best watch the "
                                   "validation accuracy: pass validation_data")
    if resume and checkpoint is None:
        raise InvalidArgumentError("resume needs the checkpoint to resume from")
    net.check_supported(settings)
    run_epoch = net.runner(training_data, settings)
    scored = [(name, net.to_device(data, f"{name}_data"))
              for name, data in (("validation", validation_data), ("test", test_data))
              if data is not None]
    if settings.monitor_training_cost or settings.monitor_training_accuracy:
        scored.append(("train", (run_epoch.X, run_epoch.labels)))
    watch = Watch(net, settings.eta, settings.eta_schedule, settings.early_stopping,
                  settings.keep_best)
    chance = ChanceWatch(net, dict(scored).get("validation"))
    # The settings a checkpoint records and a resume must match (its file format).
    saved_settings = {"method": settings.method, "mini_batch_size": settings.mini_batch_size,
                      "eta0": settings.eta, "train_size": run_epoch.train_size,
                      **run_epoch.settings, "eta_schedule": settings.eta_schedule,
                      "early_stopping": settings.early_stopping,
                      "keep_best": settings.keep_best}
    history = []
    if resume:
        history = _restore(checkpoint, net, run_epoch, (watch, chance), saved_settings)
    for epoch in range(len(history) + 1, settings.epochs + 1):
        if history and "stopped" in history[-1]:
            break  # a resumed run that had already finished
        started = time.perf_counter()
        run_epoch(watch.eta, progress)
        record = {"epoch": epoch, "seconds": time.perf_counter() - started, "eta": watch.eta}
        values = net.read_all(_scores(net, scored, settings, run_epoch.train_size))
        _check_finite(values, epoch, watch.eta, checkpoint)
        record.update(_measures(values, scored))
        stuck = chance.update(record)
        stop = watch.update(epoch, record.get("validation_accuracy"))
        if stop:
            record["stopped"] = stop
        history.append(record)
        if checkpoint is not None:
            _save(checkpoint, net, run_epoch, (watch, chance), saved_settings, history)
        if callback is not None:
            callback(record)
        if stuck:
            raise TrainingStuckError(f"{stuck}; the learning rate eta = {watch.eta:g} is "
                                     f"probably far too large (saturated neurons) or too "
                                     f"small: try another{_kept(checkpoint)}")
        if stop:
            break
    watch.restore_best()
    return history, {**saved_settings, "eta": watch.eta, "epochs_done": len(history)}


def _scores(net, scored, settings, train_size):
    """The epoch's measurements as 0-d device values (read back all at once):
    whether the weights are finite, and per scored set its correct count
    (with a detector's positives) and cost where monitored."""
    xp = net.backend.xp
    scores = {"finite": xp.all(xp.stack([xp.all(xp.isfinite(w)) for w in net.weights]))}
    for name, (X, labels) in scored:
        is_train = name == "train"
        correct = not is_train or settings.monitor_training_accuracy
        cost = settings.monitor_training_cost if is_train else settings.monitor_evaluation_cost
        regularisation = {"l2": settings.l2, "l1": settings.l1, "train_size": train_size}
        if correct and cost:
            scores[f"{name}_correct"], scores[f"{name}_cost"] = net.correct_and_cost(
                X, labels, **regularisation)
        elif correct:
            scores[f"{name}_correct"] = net.count_correct(X, labels)
        elif cost:
            scores[f"{name}_cost"] = net.cost_of(X, labels, **regularisation)
        if correct and net.sizes[-1] == 1:
            scores.update({f"{name}_{key}": count for key, count
                           in net.count_positives(X, labels).items()})
    return scores


def _measures(values, scored):
    """The record's entries of the values read back: accuracies, a
    detector's precision and recall, costs."""
    record = {}
    for name, (X, _) in scored:
        if f"{name}_correct" in values:
            correct = int(values[f"{name}_correct"])
            record.update({f"{name}_correct": correct, f"{name}_total": X.shape[0],
                           f"{name}_accuracy": correct / X.shape[0]})
        if f"{name}_true_positives" in values:
            record[f"{name}_precision"], record[f"{name}_recall"] = precision_recall(
                {key: values[f"{name}_{key}"] for key in POSITIVE_COUNTS})
        if f"{name}_cost" in values:
            record[f"{name}_cost"] = values[f"{name}_cost"]
    return record


def _kept(checkpoint):
    return (f"; the checkpoint of the last good epoch is kept in {checkpoint.directory}"
            if checkpoint is not None and checkpoint.exists() else "")


def _check_finite(values, epoch, eta, checkpoint):
    """Stop with a clear message once the weights or a cost are NaN or infinite."""
    bad = [name for name, value in values.items()
           if (name == "finite" and not value) or not math.isfinite(value)]
    if bad:
        what = "the weights" if "finite" in bad else ", ".join(bad)
        raise TrainingDivergedError(
            f"training diverged in epoch {epoch}: {what} became NaN or infinite; the learning "
            f"rate eta = {eta:g} (--eta) is probably too large, or with it a weight decay l2 "
            f"or l1 (--l2, --l1: each step shrinks the weights by eta x lambda / n): try "
            f"smaller ones{_kept(checkpoint)}")


def _save(checkpoint, net, run_epoch, watchers, settings, history):
    """The state after a complete epoch, for a bit-exact resume."""
    watch, chance = watchers
    arrays = net.host_arrays((net.weights, net.biases))
    runner_state, runner_arrays = run_epoch.state()
    arrays.update(runner_arrays)
    if watch.best_params is not None:
        arrays.update(net.host_arrays(watch.best_params, prefix="best_"))
    state = {"settings": settings, "history": history, "shuffle_rng": net.rng.bit_generator.state,
             "watch": watch.state(), "chance": chance.state(), **runner_state}
    checkpoint.save(net.metadata(), state, arrays)


def _restore(checkpoint, net, run_epoch, watchers, settings):
    """Put the network, runner and watchers back as they were after the
    checkpoint's epoch; return the history so far."""
    where = checkpoint.path
    difference = net.mismatch(checkpoint.read_metadata()["model"])
    if difference:
        raise CheckpointError(f"{where}: the checkpoint is of another network: {difference}")
    meta, arrays = checkpoint.load(net.checkpoint_arrays)
    state = meta["state"]
    check_state(where, state)
    saved = state["settings"]
    for key, value in settings.items():
        stored = saved.get(key, SETTINGS_ABSENT.get(key))
        if key != "eta0" and stored != value:
            raise CheckpointError(f"{where}: the checkpoint was trained with {key} = "
                                  f"{stored!r}, this run has {value!r}")
    watch, chance = watchers
    try:
        _restore_parameters(where, net, arrays)
        run_epoch.restore(state, arrays)
        watch.restore_state(state["watch"], arrays)
        chance.restore_state(state.get("chance"))
        if settings["eta0"] != saved["eta0"]:  # another η for the epochs still to run;
            watch.eta = settings["eta0"]          # the schedule's floor stays η₀/128
            watch.eta0 = settings["eta0"] = saved["eta0"]
        net.rng.bit_generator.state = state["shuffle_rng"]
        history = list(state["history"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: checkpoint incomplete or damaged ({exc!r})") from None
    return history


def _restore_parameters(where, net, arrays):
    for name, params in (("w", net.weights), ("b", net.biases)):
        for l, current in enumerate(params):
            stored = arrays[f"{name}{l}"]
            if stored.shape != tuple(current.shape):
                raise CheckpointError(f"{where}: array {name}{l} has shape {stored.shape}, "
                                      f"expected {tuple(current.shape)}")
            current[...] = net.backend.asarray(stored, net.dtype)


def check_state(where, state):
    """The loop's state as a checkpoint stores it, checked before any of it is
    used: values a run could not have written mean the file is damaged; the
    state of conv runs' own earlier loop (settings without eta0, no eta
    schedule) is named as that."""
    def damaged(what):
        return CheckpointError(f"{where}: checkpoint is damaged: {what}; delete it or resume "
                               "from a good copy")

    history, watch, settings = state.get("history"), state.get("watch"), state.get("settings")
    if watch is None and isinstance(settings, dict) and "eta0" not in settings:
        raise CheckpointError(f"{where}: a checkpoint of an earlier nn_gpu's conv training, "
                              "which kept no eta schedule: resume it with the nn_gpu that "
                              "wrote it, or start the run again")
    if not isinstance(history, list) or not all(
            isinstance(record, dict) and record.get("epoch") == epoch
            for epoch, record in enumerate(history, 1)):
        raise damaged("its history is not a list of epochs 1, 2, ...")
    if not isinstance(watch, dict) or not isinstance(settings, dict):
        raise damaged("its settings or the state of its eta schedule are missing")
    try:
        for what, eta in (("eta0", settings.get("eta0")), ("eta", watch.get("eta"))):
            positive_number(eta, what)
        number_in(watch.get("best"), "best accuracy", -1.0, math.nextafter(1.0, 2.0))
        for key in ("since_best", "since_halving"):
            value = watch.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidArgumentError(f"{key} must be a count of epochs, got {value!r}")
        patience(watch.get("best_epoch"), "best_epoch")
        ChanceWatch.check_state(state.get("chance"))
    except InvalidArgumentError as exc:
        raise damaged(str(exc)) from None


class Watch:
    """The validation-accuracy watcher behind the η schedule (halve η after
    ``eta_schedule`` epochs without improvement; stop below η₀/128), early
    stopping (stop after ``early_stopping`` such epochs) and keeping the best
    epoch's weights (early stopping, ``keep_best``)."""

    def __init__(self, net, eta, eta_schedule, early_stopping, keep_best=False):
        self.net, self.eta, self.eta0 = net, eta, eta
        self.eta_schedule, self.early_stopping = eta_schedule, early_stopping
        self.keep = bool(early_stopping or keep_best)
        self.best, self.best_epoch, self.best_params = -1.0, None, None
        self.since_best = self.since_halving = 0

    def update(self, epoch, accuracy):
        """Take one epoch's validation accuracy; return why to stop, or None."""
        if accuracy is None:
            return None
        if accuracy > self.best:
            self.best, self.best_epoch = accuracy, epoch
            self.since_best = self.since_halving = 0
            if self.keep:
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

    def state(self):
        return {"eta": self.eta, "best": self.best, "best_epoch": self.best_epoch,
                "since_best": self.since_best, "since_halving": self.since_halving}

    def restore_state(self, state, arrays):
        self.eta, self.best, self.best_epoch = state["eta"], state["best"], state["best_epoch"]
        self.since_best, self.since_halving = state["since_best"], state["since_halving"]
        if self.keep and self.best_epoch is not None:
            backend, layers = self.net.backend, len(self.net.weights)
            self.best_params = ([backend.asarray(arrays[f"best_w{l}"]) for l in range(layers)],
                                [backend.asarray(arrays[f"best_b{l}"]) for l in range(layers)])


class ChanceWatch:
    """Whether a run is stuck at chance (see the module docstring): over the
    latest epochs in a row at chance, the lowest validation cost and the
    epochs since it fell."""

    def __init__(self, net, validation):
        """``validation``: the device ``(X, labels)`` scored each epoch, or None (no check)."""
        self.net, self.validation = net, validation
        self.lowest, self.since, self.eta = None, 0, None
        if validation is not None:  # read once, before training
            xp = net.backend.xp
            counts = xp.bincount(validation[1].astype(xp.int64), minlength=net.num_classes)
            n = validation[1].shape[0]
            self.baseline = int(net.read(xp.max(counts))) / n
            # a few correct answers more are chance too: three standard errors
            self.chance = self.baseline + 3 * math.sqrt(self.baseline * (1 - self.baseline) / n)

    def update(self, record):
        """Take one epoch's record; return what makes the run stuck, or None."""
        if self.validation is None:
            return None
        if record["validation_accuracy"] > self.chance or record["eta"] != self.eta:
            self.lowest, self.since, self.eta = None, 0, record["eta"]  # a new η starts afresh
        if record["validation_accuracy"] > self.chance:
            return None
        X, labels = self.validation
        cost = self.net.read(self.net.cost_of(X, labels))
        if self.lowest is None or cost < self.lowest - STUCK_COST_CHANGE * abs(self.lowest):
            self.lowest, self.since = cost, 0
            return None
        self.since += 1
        if self.since < STUCK_EPOCHS:
            return None
        return (f"training is stuck at chance after epoch {record['epoch']}: the validation "
                f"accuracy stayed at most {100 * self.chance:.2f}% (always answering the most "
                f"frequent class scores {100 * self.baseline:.2f}%) and in {STUCK_EPOCHS} "
                f"epochs its cost fell no lower than {self.lowest:.4g}")

    def state(self):
        return {"lowest": self.lowest, "since": self.since, "eta": self.eta}

    def restore_state(self, state):
        if state:
            self.lowest, self.since, self.eta = state["lowest"], state["since"], state.get("eta")

    @staticmethod
    def check_state(state):
        """A stored state: None (none kept), or the lowest cost (a number or
        None) and a count of epochs."""
        if state is None:
            return
        if not isinstance(state, dict):
            raise InvalidArgumentError("the stuck check's state is not a JSON object")
        for key in ("lowest", "eta"):
            if state.get(key) is not None:
                number_in(state[key], f"the stuck check's {key}", -math.inf)
        since = state.get("since")
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise InvalidArgumentError(f"since must be a count of epochs, got {since!r}")
