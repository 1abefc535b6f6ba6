"""The Optuna study behind a sweep: its storage, sampler and pruner, and the
bookkeeping that lets a sweep be stopped, crash and resume without losing
trials.

Every process of a sweep (the ``nn-gpu sweep`` command and its workers, on
one machine or many) opens the study by name in the same storage; Optuna
keeps the trials there, so the storage *is* the sweep's state.
"""

import hashlib
import json
import random
import time
import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ..errors import NNGpuError

#: A worker's heartbeat every 10 s; a RUNNING trial silent for 2 minutes
#: belongs to a dead worker (on any machine) and is marked failed.
HEARTBEAT_SECONDS, GRACE_SECONDS = 10, 120
SPACE_ATTR = "nn_gpu_space"
SURPLUS_ATTR = "surplus"
TABLE_RACE_ATTEMPTS = 5


class SweepError(NNGpuError):
    """A storage that cannot be opened, or a study that does not fit the space."""


def storage_url(text):
    """A database URL as given, or a plain path taken as an SQLite file."""
    if "://" in text:
        return text
    path = Path(text).expanduser().resolve()
    if not path.parent.is_dir():
        raise SweepError(f"--storage {text}: directory {path.parent} does not exist")
    return f"sqlite:///{path}"


def shown_url(url):
    """The URL without its password, for messages."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def open_storage(url):
    """Optuna's RDB storage at ``url``, with heartbeats so that a trial whose
    worker died is failed by the others. SQLite waits for its lock instead of
    failing when two workers write at once."""
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    engine_kwargs = ({"connect_args": {"timeout": 60}} if url.startswith("sqlite")
                     else {"pool_pre_ping": True})
    for attempt in range(1, TABLE_RACE_ATTEMPTS + 1):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental": don't tell users
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs,
                                                  heartbeat_interval=HEARTBEAT_SECONDS,
                                                  grace_period=GRACE_SECONDS)
        except (IntegrityError, ProgrammingError, OperationalError) as exc:
            # Two processes creating Optuna's tables in a new database at once:
            # one wins, the other finds them made when it tries again.
            racing = not isinstance(exc, OperationalError) or "already exists" in str(exc)
            if not racing or attempt == TABLE_RACE_ATTEMPTS:
                raise SweepError(f"cannot open the study storage {shown_url(url)}: "
                                 f"{_first_line(exc)}") from None
            time.sleep(random.uniform(0.2, 1.0))
        except Exception as exc:  # sqlalchemy's OperationalError, ArgumentError, ImportError...
            raise SweepError(f"cannot open the study storage {shown_url(url)}: "
                             f"{_first_line(exc)}") from None


def _first_line(exc):
    return " ".join(str(exc).split("\n")[0].split())


def make_sampler(name, seed, worker, trials_so_far):
    """TPE (default) or random sampling. Seeded from ``--seed``, the worker and
    how many trials the study already has, so workers, and a resumed sweep,
    never repeat each other's draws; ``seed=None`` is unseeded."""
    if seed is not None:
        digest = hashlib.sha256(f"{seed}/{worker}/{trials_so_far}".encode()).digest()
        seed = int.from_bytes(digest[:4], "little")
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(name):
    """``median``: stop a trial whose epoch is below the median of earlier
    trials at that epoch (after 5 trials); ``hyperband``: successive halving
    over epochs; ``none``."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    return optuna.pruners.NopPruner()


def create(storage, name, space):
    """Create the study, or open it to continue; refuse a space file that
    changed since the study began (its trials would not be comparable)."""
    try:
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize",
                                    load_if_exists=True)
    except Exception as exc:
        raise SweepError(f"cannot create study {name!r}: {exc}") from None
    described = json.loads(json.dumps(space.describe()))  # as stored: lists, not tuples
    stored = study.user_attrs.get(SPACE_ATTR)
    if stored is None:
        study.set_user_attr(SPACE_ATTR, described)
    elif stored != described:
        raise SweepError(
            f"{space.source}: study {name!r} was started with a different search space "
            f"(fixed options, ranges, preset or train_size changed); give this one a new "
            f"name (name = ... in the file, or --study-name)")
    return study


def load(storage, name, sampler, pruner, seed, worker):
    """Open the existing study ``name`` as a worker does."""
    try:
        summaries = {s.study_name: s for s in optuna.get_all_study_summaries(storage)}
    except Exception as exc:
        raise SweepError(f"cannot read the studies in the storage: {exc}") from None
    if name not in summaries:
        raise SweepError(f"no study named {name!r} in the storage")
    return optuna.load_study(
        study_name=name, storage=storage, pruner=make_pruner(pruner),
        sampler=make_sampler(sampler, seed, worker, summaries[name].n_trials))


def interrupted(trial):
    """A failure caused by the user's Ctrl-C, not by the trial itself."""
    return trial.state == TrialState.FAIL and trial.user_attrs.get("interrupted") is True


def surplus(trial):
    """A trial that a worker began after others had claimed the study's last
    ones (see :func:`beyond_target`): stopped before it trained, counted
    nowhere and shown nowhere."""
    return trial.user_attrs.get(SURPLUS_ATTR) is True


def counted(trial):
    """Whether ``trial`` counts towards ``--trials``: complete, pruned, or
    failed for a reason of its own (not interrupted by the user: those are
    rerun; not surplus)."""
    return (trial.state in (TrialState.COMPLETE, TrialState.PRUNED)
            or trial.state == TrialState.FAIL and not interrupted(trial) and not surplus(trial))


def claimed(trial):
    """Whether ``trial`` counts, or will: counted, running or queued."""
    return counted(trial) or trial.state in (TrialState.RUNNING, TrialState.WAITING) \
        and not surplus(trial)


def shown_trials(study):
    """The study's trials as reports show them (surplus ones left out)."""
    return [t for t in study.get_trials(deepcopy=False) if not surplus(t)]


def trials_done(study):
    """How many trials count towards ``--trials`` (:func:`counted`)."""
    return sum(map(counted, study.get_trials(deepcopy=False)))


def failed_trials(study):
    """The numbers of the trials that failed for a reason of their own (an
    error, a dead worker), not because the user interrupted them."""
    return {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
            if counted(t)}


def is_done(study, target):
    """Whether the sweep has its ``target`` trials and no rerun is queued."""
    return (trials_done(study) >= target
            and not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def is_claimed(study, target):
    """Whether ``target`` trials are done or running and none is queued: a
    worker then starts no more (the running ones end the study)."""
    trials = study.get_trials(deepcopy=False)
    return (sum(map(claimed, trials)) >= target
            and not any(t.state == TrialState.WAITING for t in trials))


def beyond_target(study, number, target):
    """Whether trial ``number`` is one too many: ``target`` trials with lower
    numbers already count or will (:func:`claimed`). Workers that start
    trials at the same moment all get their numbers; this makes the study
    hold exactly ``target`` trials whatever the race."""
    return sum(1 for t in study.get_trials(deepcopy=False)
               if t.number < number and claimed(t)) >= target


def requeue_interrupted(study):
    """Queue again, with their parameters and seeds, the trials that Ctrl-C
    cut short (once each); return their numbers."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    queued = []
    for trial in trials:
        if interrupted(trial) and trial.number not in retried:
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number,
                                                          "seed": trial.user_attrs["seed"]})
            queued.append(trial.number)
    return queued


def fail_trials_of(storage, study, host, pid, why):
    """Mark failed the RUNNING trials of the worker process ``pid`` on
    ``host``, which has died; return their numbers."""
    study_id = storage.get_study_id_from_name(study.study_name)
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get("pid") == pid and trial.user_attrs.get("host") == host:
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            try:
                storage.set_trial_user_attr(trial_id, "error", why)
                storage.set_trial_state_values(trial_id, TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # it finished after all
            failed.append(trial.number)
    return failed
