"""``nn-gpu sweep``: search `train`'s hyper-parameters with Optuna.

This module is imported whenever the command line is built, so it imports
nothing of Optuna at the top: only running a sweep loads it.
"""

import os
import signal
import sys

from ..analysis.plots import require_matplotlib
from ..backends import get_backend
from ..data.mnist import load_mnist
from ..errors import BackendUnavailableError
from ..io.fileio import check_outputs
from ..version import install_hint
from .common import CliError, add_backend, add_data, interrupt, positive_float, positive_int, seed

INSTALL_HINT = f"install it with: {install_hint('sweep')}"
#: The storage when --storage is not given: a URL with a password is better
#: kept here than on a command line that `ps` shows every user.
STORAGE_ENV_VAR = "NN_GPU_SWEEP_STORAGE"


def add_parser(commands):
    """Register ``sweep`` on the subparsers object of ``nn-gpu``'s parser."""
    sweep = commands.add_parser(
        "sweep", help="search hyper-parameters with Optuna (TPE, pruning, SQLite/PostgreSQL)",
        description="Search train's options over the space in SPACE (TOML or YAML) with "
                    "Optuna: each trial trains on MNIST and reports its validation accuracy "
                    "after every epoch, so hopeless trials are pruned early. The study lives "
                    "in its storage: rerun the same command to continue it, or run it on "
                    "several machines against one PostgreSQL database to share it.",
        epilog="Example space files: examples/sweep-ch3.toml, examples/sweep-relu.yaml. "
               "Trials never see the test set: "
               "run the printed train command to measure it.")
    sweep.add_argument("space", metavar="SPACE", help="search space file (.toml, .yaml)")
    sweep.add_argument("--trials", type=positive_int, default=20, metavar="N",
                       help="the study's total: finish when it has N trials (complete, "
                            "pruned or failed), counting those of earlier runs and every "
                            "worker's; interrupted trials are rerun and not counted twice "
                            "(default: 20)")
    sweep.add_argument("--timeout", type=positive_float, metavar="SECONDS",
                       help="start no new trial after this long")
    sweep.add_argument("--seed", type=seed, default=None,
                       help="seed the sampler and each trial's network (trial k: SEED + k)")
    sweep.add_argument("--workers", type=positive_int, metavar="N",
                       help="trial processes on this machine (default: one per visible GPU, "
                            "else 1); GPUs are shared out round-robin, CPU cores evenly")
    sweep.add_argument("--threads", type=positive_int, metavar="N",
                       help="BLAS threads of each CPU worker (default: the cores shared "
                            "out among the workers); lower it when other work shares the "
                            "machine, as busy-waiting BLAS threads stall when oversubscribed")
    sweep.add_argument("--storage", metavar="URL|FILE",
                       help="where the study lives: an SQLite file or a database URL, e.g. "
                            "postgresql://user:pw@host/db to share it among machines "
                            f"(default: ${STORAGE_ENV_VAR}, else NAME.db here)")
    sweep.add_argument("--study-name", metavar="NAME",
                       help="the study's name (default: the space file's name setting, "
                            "else its file name)")
    sweep.add_argument("--sampler", choices=("tpe", "random"), default="tpe")
    sweep.add_argument("--pruner", choices=("median", "hyperband", "none"), default="median",
                       help="median: stop a trial below the median of earlier trials at the "
                            "same epoch (default); hyperband: successive halving")
    add_backend(sweep)
    add_data(sweep)
    sweep.add_argument("--top", type=positive_int, default=10, metavar="K",
                       help="show the best K trials (default: 10)")
    sweep.add_argument("--export", metavar="FILE.csv", help="write every trial to a CSV file")
    sweep.add_argument("--plot", metavar="FILE.png",
                       help="plot validation accuracy against each hyper-parameter")
    sweep.add_argument("--quiet", action="store_true", help="print only the results")
    sweep.set_defaults(func=cmd_sweep, parser=sweep)
    return sweep


def cmd_sweep(args):
    """Run (or continue) the study; print, export and plot its results."""
    optuna = _import_optuna()
    from ..sweep import study as sweep_study
    from ..sweep.space import load_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_space(args.space)
    name = args.study_name or space.name
    url = _storage_url(args, name)
    environments = _check_before_running(args, url)
    say = (lambda *_: None) if args.quiet else (lambda line: print(line, flush=True))

    storage = sweep_study.open_storage(url)
    study = sweep_study.create(storage, name, space)
    failed_before = sweep_study.failed_trials(study)
    outcome = _run_study(args, space, name, url, environments, storage, study, say)
    _report(args, space, name, study, say)
    return _exit_status(outcome, url, sorted(sweep_study.failed_trials(study) - failed_before))


def _import_optuna():
    """Optuna, or a :class:`CliError` that says how to install it."""
    try:
        import optuna
    except ImportError as exc:
        raise CliError(f"nn-gpu sweep needs Optuna ({exc}); {INSTALL_HINT}") from None
    return optuna


def _storage_url(args, name):
    """The study's storage URL: --storage, else $NN_GPU_SWEEP_STORAGE, else
    the SQLite file NAME.db here (so NAME must be a plain file name)."""
    from ..sweep import study as sweep_study
    from ..sweep.space import NAME_RULE, STUDY_NAME

    storage = args.storage or os.environ.get(STORAGE_ENV_VAR)
    if storage is None and not STUDY_NAME.fullmatch(name):  # it names the file NAME.db
        raise CliError(f"--study-name {name!r}: without --storage it names the file "
                       f"NAME.db, so it must be {NAME_RULE}")
    return sweep_study.storage_url(storage or f"{name}.db")


def _check_before_running(args, url):
    """Everything that can fail before a trial runs: the output files, the
    plotting library, the GPUs of --backend cupy and the data; returns the
    workers' environments."""
    from ..sweep import runner

    sqlite = [("the study's SQLite file", url[len("sqlite:///"):])] \
        if url.startswith("sqlite:///") else []
    check_outputs([("--export", args.export), ("--plot", args.plot)],
                  [("SPACE", args.space), *sqlite])
    if args.plot:
        require_matplotlib()  # now, not after the sweep
    gpus = runner.visible_gpus(args.backend)
    if args.backend == "cupy" and not gpus:
        get_backend("cupy")  # says why CuPy cannot run here...
        raise BackendUnavailableError(  # ...or it can, but none is visible
            "--backend cupy: CUDA_VISIBLE_DEVICES leaves no GPU for the workers")
    environments = runner.worker_environments(args.workers, gpus, os.cpu_count() or 1,
                                              args.threads)
    load_mnist(args.data)  # one clear error here rather than one per worker
    return environments


def _run_study(args, space, name, url, environments, storage, study, say):
    """Run the study's missing trials with the workers; "done" where it has
    --trials already, else the runner's outcome."""
    from ..sweep import runner
    from ..sweep import study as sweep_study

    requeued = sweep_study.requeue_interrupted(study)
    done = sweep_study.trials_done(study)
    where = f"Sweep {name!r} in {sweep_study.shown_url(url)}"
    if sweep_study.is_done(study, args.trials):
        say(f"{where} already has {done} trials (--trials {args.trials}): nothing to run; "
            "raise --trials to continue it")
        return "done"
    say(f"{where}: {done} of {args.trials} trials done; {len(environments)} "
        f"worker{'s' if len(environments) > 1 else ''}, {args.sampler} sampler, "
        f"{args.pruner} pruner")
    if requeued:
        say(f"Rerunning trial{'s' if len(requeued) > 1 else ''} "
            f"{', '.join(map(str, requeued))}, interrupted last time")
    config = {"space": space.document, "space_file": str(args.space), "storage": url,
              "study": name, "sampler": args.sampler, "pruner": args.pruner,
              "seed": args.seed, "data": args.data, "backend": args.backend,
              "trials": args.trials, "timeout": args.timeout, "quiet": args.quiet}
    # SIGTERM (a scheduler) and SIGHUP (the terminal closed) stop the
    # workers as Ctrl-C does: they run in sessions of their own and would
    # otherwise go on without anyone watching them.
    previous = {signum: signal.signal(signum, interrupt)
                for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return runner.Runner(config, environments, storage, study, say).run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _report(args, space, name, study, say):
    """The counts, the best --top trials and the command that reproduces the
    best; the CSV of --export and the picture of --plot."""
    from ..sweep import report
    from ..sweep import study as sweep_study

    trials = sweep_study.shown_trials(study)
    print(f"\n{report.counts_line(trials)}\n{report.top_table(trials, args.top)}", flush=True)
    best = next(iter(report.ranked(trials)), None)
    if best is not None:
        command = report.reproduce_command(space.options_of(best.params), space.train_size,
                                           best.user_attrs.get("seed"), space.dtype)
        print(f"Best: trial {best.number}, {100 * best.value:.2f}% validation. "
              f"Reproduce it (and see its test accuracy) with:\n  {command}", flush=True)
    if args.export:
        report.write_csv(trials, args.export)
        say(f"Trials written to {args.export}")
    if args.plot:
        try:
            report.plot_trials(trials, args.plot, study_name=name)
            say(f"Plot written to {args.plot}")
        except ValueError as exc:
            say(f"No plot: {exc}")


def _exit_status(outcome, url, failed):
    """130 after an interruption, 1 where setup or a trial of this run
    (``failed``) failed, else 0; says why on stderr."""
    from ..sweep import study as sweep_study

    if outcome == "interrupted":
        print(f"Interrupted: finished trials are kept in {sweep_study.shown_url(url)}; rerun the "
              "same command to continue (interrupted trials are rerun first)",
              file=sys.stderr, flush=True)
        return 130
    if outcome == "setup failed":
        return 1
    if failed:
        print(f"nn-gpu sweep: error: trial{'s' if len(failed) > 1 else ''} "
              f"{', '.join(map(str, failed))} failed in this run (their errors are above and "
              "in the study's trial attributes)", file=sys.stderr, flush=True)
        return 1
    return 0
