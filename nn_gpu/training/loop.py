"""Mini-batch SGD over epochs: the learning-rate schedule, early stopping
and the monitors of network2.py, checkpoints and divergence checks, around a
model's epoch runner.

:meth:`nn_gpu.model.network.Network.sgd` is the entry point; this module
keeps the epoch loop apart from the model so each stays short. The model is
asked, never inspected: ``net.runner(training_data, settings)`` gives the
object that trains one epoch (``runner(eta, progress)``, its ``train_size``,
its device ``X`` and ``labels``, and ``state()``/``restore()`` for
checkpoints), and the model's scoring methods (``count_correct``,
``count_positives``, ``cost_of``, ``read_all``) measure it.
"""

import math
import time

from ..errors import CheckpointError, InvalidArgumentError, TrainingDivergedError
from ..options import number_in, patience, positive_number
from .scores import POSITIVE_COUNTS, precision_recall

# The η schedule of the book's chapter 3 stops once η has been halved 7 times.
SCHEDULE_FLOOR = 1 / 128


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
    :meth:`nn_gpu.model.network.Network.sgd` (see there)."""
    if (settings.eta_schedule or settings.early_stopping) and validation_data is None:
        raise InvalidArgumentError("eta_schedule and early_stopping watch the validation "
                                   "accuracy: pass validation_data")
    if resume and checkpoint is None:
        raise InvalidArgumentError("resume needs the checkpoint to resume from")
    run_epoch = net.runner(training_data, settings)
    scored = [(name, net.to_device(data, f"{name}_data"))
              for name, data in (("validation", validation_data), ("test", test_data))
              if data is not None]
    monitor_training_cost = settings.monitor_training_cost
    monitor_training_accuracy = settings.monitor_training_accuracy
    if monitor_training_cost or monitor_training_accuracy:
        scored.append(("train", (run_epoch.X, run_epoch.labels)))
    watch = Watch(net, settings.eta, settings.eta_schedule, settings.early_stopping)
    # The settings a checkpoint records and a resume must match (its file format).
    saved_settings = {"method": settings.method, "mini_batch_size": settings.mini_batch_size,
                      "eta0": settings.eta, "train_size": run_epoch.train_size,
                      **run_epoch.settings, "eta_schedule": settings.eta_schedule,
                      "early_stopping": settings.early_stopping}
    l2, l1 = settings.l2, settings.l1

    history = []
    if resume:
        history = _restore(checkpoint, net, run_epoch, watch, saved_settings)
    xp = net.backend.xp
    for epoch in range(len(history) + 1, settings.epochs + 1):
        if history and "stopped" in history[-1]:
            break  # a resumed run that had already finished
        started = time.perf_counter()
        run_epoch(watch.eta, progress)
        record = {"epoch": epoch, "seconds": time.perf_counter() - started, "eta": watch.eta}
        scores = {"finite": xp.all(xp.stack([xp.all(xp.isfinite(w)) for w in net.weights]))}
        for name, (X, labels) in scored:
            is_train = name == "train"
            if not is_train or monitor_training_accuracy:
                scores[f"{name}_correct"] = net.count_correct(X, labels)
                if net.sizes[-1] == 1:
                    scores.update({f"{name}_{key}": count for key, count
                                   in net.count_positives(X, labels).items()})
            if monitor_training_cost if is_train else settings.monitor_evaluation_cost:
                scores[f"{name}_cost"] = net.cost_of(X, labels, l2=l2, l1=l1,
                                                     train_size=run_epoch.train_size)
        values = net.read_all(scores)  # one synchronisation per epoch
        _check_finite(values, epoch, watch.eta, checkpoint)
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
        stop = watch.update(epoch, record.get("validation_accuracy"))
        if stop:
            record["stopped"] = stop
        history.append(record)
        if checkpoint is not None:
            _save(checkpoint, net, run_epoch, watch, saved_settings, history)
        if callback is not None:
            callback(record)
        if stop:
            break
    watch.restore_best()
    return history, {**saved_settings, "eta": watch.eta, "epochs_done": len(history)}


def _check_finite(values, epoch, eta, checkpoint):
    """Stop with a clear message once the weights or a cost are NaN or infinite."""
    bad = [name for name, value in values.items()
           if (name == "finite" and not value) or not math.isfinite(value)]
    if bad:
        kept = (f"; the checkpoint of the last good epoch is kept in {checkpoint.directory}"
                if checkpoint is not None and checkpoint.exists() else "")
        what = "the weights" if "finite" in bad else ", ".join(bad)
        raise TrainingDivergedError(
            f"training diverged in epoch {epoch}: {what} became NaN or infinite; the learning "
            f"rate eta = {eta:g} (--eta) is probably too large, or with it a weight decay l2 "
            f"or l1 (--l2, --l1: each step shrinks the weights by eta x lambda / n): try "
            f"smaller ones{kept}")


def _save(checkpoint, net, run_epoch, watch, settings, history):
    """The state after a complete epoch, for a bit-exact resume."""
    arrays = net.host_arrays((net.weights, net.biases))
    runner_state, runner_arrays = run_epoch.state()
    arrays.update(runner_arrays)
    if watch.best_params is not None:
        arrays.update(net.host_arrays(watch.best_params, prefix="best_"))
    state = {"settings": settings, "history": history, "shuffle_rng": net.rng.bit_generator.state,
             "watch": watch.state(), **runner_state}
    checkpoint.save(net.metadata(), state, arrays)


def _restore(checkpoint, net, run_epoch, watch, settings):
    """Put the network, runner and watcher back as they were after the
    checkpoint's epoch; return the history so far."""
    meta, arrays = checkpoint.load(net.checkpoint_arrays)
    where = checkpoint.path
    check_state(where, meta["state"])
    model, state = meta["model"], meta["state"]
    for key in ("sizes", "cost", "activation", "dtype"):
        if model.get(key) != net.metadata()[key]:
            raise CheckpointError(f"{where}: the checkpoint's {key} is {model.get(key)!r}, "
                                  f"this network's is {net.metadata()[key]!r}")
    saved = state["settings"]
    for key, value in settings.items():
        if key != "eta0" and saved.get(key) != value:
            raise CheckpointError(f"{where}: the checkpoint was trained with {key} = "
                                  f"{saved.get(key)!r}, this run has {value!r}")
    backend = net.backend
    try:
        for name, params in (("w", net.weights), ("b", net.biases)):
            for l, current in enumerate(params):
                stored = arrays[f"{name}{l}"]
                if stored.shape != tuple(current.shape):
                    raise CheckpointError(f"{where}: array {name}{l} has shape {stored.shape}, "
                                          f"expected {tuple(current.shape)}")
                current[...] = backend.asarray(stored, net.dtype)
        run_epoch.restore(state, arrays)
        watch.restore_state(state["watch"], arrays)
        if settings["eta0"] != saved["eta0"]:  # another η for the epochs still to run;
            watch.eta = settings["eta0"]          # the schedule's floor stays η₀/128
            watch.eta0 = settings["eta0"] = saved["eta0"]
        net.rng.bit_generator.state = state["shuffle_rng"]
        history = list(state["history"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: checkpoint incomplete or damaged ({exc!r})") from None
    return history


def check_state(where, state):
    """The loop's state as a checkpoint stores it, checked before any of it is
    used: values a run could not have written mean the file is damaged."""
    def damaged(what):
        return CheckpointError(f"{where}: checkpoint is damaged: {what}; delete it or resume "
                               "from a good copy")

    history, watch, settings = state.get("history"), state.get("watch"), state.get("settings")
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
    except InvalidArgumentError as exc:
        raise damaged(str(exc)) from None


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

    def state(self):
        return {"eta": self.eta, "best": self.best, "best_epoch": self.best_epoch,
                "since_best": self.since_best, "since_halving": self.since_halving}

    def restore_state(self, state, arrays):
        self.eta, self.best, self.best_epoch = state["eta"], state["best"], state["best_epoch"]
        self.since_best, self.since_halving = state["since_best"], state["since_halving"]
        if self.early_stopping and self.best_epoch is not None:
            backend, layers = self.net.backend, len(self.net.weights)
            self.best_params = ([backend.asarray(arrays[f"best_w{l}"]) for l in range(layers)],
                                [backend.asarray(arrays[f"best_b{l}"]) for l in range(layers)])
