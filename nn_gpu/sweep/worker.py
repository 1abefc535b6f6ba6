"""One sweep worker: a process that takes trials of a shared Optuna study
and trains them, until the study has its trials or time is up.

Workers never talk to each other, only to the study's storage (SQLite or
PostgreSQL), so a worker is the same whether the other workers run on this
machine or on another one. ``nn-gpu sweep`` starts them as subprocesses
(``python -m nn_gpu.sweep.worker``, its config on stdin); see :mod:`nn_gpu.sweep.runner`.

What a trial leaves in the study, besides its parameters and value (the
best validation accuracy of its epochs): one intermediate value per epoch
(the validation accuracy, for the pruner) and the user attributes ``seed``,
``worker``, ``host``, ``pid``, ``device``, ``epochs_run``, ``best_epoch``,
``seconds``, and where it applies ``stopped`` (why it was pruned), ``error`` (why it
failed) or ``interrupted`` (Ctrl-C: the next run of the sweep reruns it).
"""

import contextlib
import json
import os
import signal
import socket
import sys
import time
import traceback

import optuna
from optuna.trial import TrialState

from ..backends import get_backend
from ..data.expand import training_subset
from ..data.mnist import load_mnist
from ..errors import NNGpuError, TrainingDivergedError
from ..model.network import Network
from ..options import TrainingSettings
from . import SETUP_FAILED
from . import study as sweep_study
from .space import SearchSpace


class StopRequest:
    """SIGINT/SIGTERM for a worker. Inside a trial's training they raise
    KeyboardInterrupt at once (the trial is recorded as interrupted, and
    rerun when the sweep resumes); anywhere else, in Optuna's own
    bookkeeping above all, they are only noted, and the worker stops before
    its next trial, so that no trial is left half-recorded."""

    def __init__(self):
        self.requested = self.armed = False

    def __call__(self, signum, frame):
        self.requested = True
        if self.armed:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def raising(self):
        """Let a stop request interrupt this block (and one made earlier, too)."""
        previous, self.armed = self.armed, True
        try:
            if self.requested:
                raise KeyboardInterrupt
            yield
        finally:
            self.armed = previous

    @contextlib.contextmanager
    def deferred(self):
        """Hold a stop request back during this block (a write to the storage)."""
        previous, self.armed = self.armed, False
        try:
            yield
        finally:
            self.armed = previous
        if self.requested and previous:
            raise KeyboardInterrupt


class Surplus(Exception):
    """A trial begun after the study's last trials were claimed: not run."""


class Objective:
    """Train the network of one trial; report each epoch's validation accuracy
    so that the pruner can stop hopeless trials early."""

    def __init__(self, space, data_dir, backend, seed=None, worker=0, stop=None, target=None):
        self.space, self.backend, self.seed, self.worker = space, backend, seed, worker
        #: The study's number of trials (--trials): a trial beyond it is not run.
        self.target = target
        self.stop = stop or StopRequest()
        pinned = os.environ.get("CUDA_VISIBLE_DEVICES")
        #: Where trials train: "numpy", or "cupy" and the GPU it was pinned to.
        self.device = backend.name + (f" (GPU {pinned})" if pinned is not None else "")
        self.training, self.validation, _ = load_mnist(data_dir)
        self.subsets = {}  # expand -> the training examples (expanded once, if ever)

    def training_set(self, expand):
        if expand not in self.subsets:
            self.subsets[expand] = training_subset(self.training, expand, self.space.train_size)
        return self.subsets[expand]

    def trial_seed(self, trial):
        """A rerun keeps its original seed; otherwise ``--seed`` + trial number
        (reproducible), or a fresh random seed."""
        if "seed" in trial.user_attrs:
            return trial.user_attrs["seed"]
        if self.seed is not None:
            return self.seed + trial.number
        return int.from_bytes(os.urandom(4), "little")

    def __call__(self, trial):
        if self.target is not None and sweep_study.beyond_target(trial.study, trial.number,
                                                                 self.target):
            trial.set_user_attr(sweep_study.SURPLUS_ATTR, True)  # (after it, is_claimed stops)
            raise Surplus(f"the study already has its {self.target} trials")
        options = self.space.suggest(trial)
        seed = self.trial_seed(trial)
        for key, value in (("seed", seed), ("worker", self.worker),
                           ("host", socket.gethostname()), ("pid", os.getpid()),
                           ("device", self.device)):
            trial.set_user_attr(key, value)
        best = {"accuracy": None, "epoch": None, "epochs_run": 0}

        def after_epoch(record):
            accuracy, epoch = record["validation_accuracy"], record["epoch"]
            best["epochs_run"] = epoch
            if best["accuracy"] is None or accuracy > best["accuracy"]:
                best.update(accuracy=accuracy, epoch=epoch)
            with self.stop.deferred():
                trial.report(accuracy, epoch)
                prune = trial.should_prune()
            if prune:
                raise optuna.TrialPruned(f"pruned after epoch {epoch} at "
                                         f"{100 * accuracy:.2f}% validation")

        started = time.perf_counter()
        try:
            with self.stop.raising():
                net = Network(options["sizes"], cost=options["cost"], backend=self.backend,
                              dtype=self.space.dtype, seed=seed, init=options["init"],
                              activation=options["activation"])
                net.sgd(self.training_set(options["expand"]),
                        settings=TrainingSettings.from_options(options),
                        validation_data=self.validation, callback=after_epoch)
            return best["accuracy"]
        except optuna.TrialPruned as exc:
            trial.set_user_attr("stopped", str(exc))
            raise
        except TrainingDivergedError:
            # Hopeless like a pruned trial, and told to the sampler the same way.
            why = f"diverged in epoch {best['epochs_run'] + 1} (weights became NaN/inf)"
            trial.set_user_attr("stopped", why)
            raise optuna.TrialPruned(why) from None
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)
            raise
        except Exception as exc:
            if not isinstance(exc, NNGpuError):
                traceback.print_exc()  # a bug: show where
            trial.set_user_attr("error", " ".join(f"{type(exc).__name__}: {exc}".split()))
            raise
        finally:
            trial.set_user_attr("seconds", round(time.perf_counter() - started, 3))
            trial.set_user_attr("epochs_run", best["epochs_run"])
            trial.set_user_attr("best_epoch", best["epoch"])


def trial_line(trial, worker):
    """What a worker prints when a trial ends."""
    params = ", ".join(f"{key} {_short(value)}" for key, value in trial.params.items())
    attrs = trial.user_attrs
    if trial.state == TrialState.COMPLETE:
        outcome = (f"{100 * trial.value:.2f}% validation (best of {attrs.get('epochs_run')} "
                   f"epochs: epoch {attrs.get('best_epoch')})")
    elif trial.state == TrialState.PRUNED:
        outcome = attrs.get("stopped", "pruned")
    elif attrs.get("interrupted"):
        outcome = "interrupted (will be rerun when the sweep is resumed)"
    else:
        outcome = f"failed: {attrs.get('error', 'unknown error')}"
    return (f"Trial {trial.number} [worker {worker}]: {outcome}; {params} "
            f"({attrs.get('seconds', 0):.1f} s)")


def _short(value):
    return f"{value:.4g}" if isinstance(value, float) else value


def run(config):
    """Run one worker as ``config`` (a dict from :mod:`nn_gpu.sweep.runner`)
    says; return the exit status (0, 130 when stopped, or SETUP_FAILED)."""
    stop = StopRequest()
    handlers = {signum: signal.signal(signum, stop)  # a scheduler's SIGTERM: like Ctrl-C
                for signum in (signal.SIGINT, signal.SIGTERM)}
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # we print our own lines
    try:
        return _run(config, stop)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def _run(config, stop):
    worker = config["worker"]
    say = (lambda line: None) if config.get("quiet") else (lambda line: print(line, flush=True))
    try:
        space = SearchSpace(config["space"], source=config["space_file"])
        storage = sweep_study.open_storage(config["storage"])
        study = sweep_study.load(storage, config["study"], config["sampler"], config["pruner"],
                                 config["seed"], worker)
        objective = Objective(space, config["data"], get_backend(config["backend"]),
                              config["seed"], worker, stop, config["trials"])
    except (NNGpuError, OSError) as exc:
        print(f"nn-gpu sweep: worker {worker}: error: {' '.join(str(exc).split())}",
              file=sys.stderr, flush=True)
        return SETUP_FAILED
    target = config["trials"]

    def after_trial(study, trial):
        if not sweep_study.surplus(trial):
            say(trial_line(trial, worker))
        if stop.requested or sweep_study.is_claimed(study, target):
            study.stop()

    if not stop.requested and not sweep_study.is_claimed(study, target):
        try:
            study.optimize(objective, timeout=config.get("timeout"), catch=(Exception,),
                           callbacks=[after_trial])
        except KeyboardInterrupt:
            pass  # recorded: the trial it stopped is marked interrupted
    return 130 if stop.requested else 0


def main():
    """``python -m nn_gpu.sweep.worker``, as `nn-gpu sweep` starts it: the
    config comes as JSON on stdin."""
    return run(json.load(sys.stdin))


if __name__ == "__main__":
    sys.exit(main())
