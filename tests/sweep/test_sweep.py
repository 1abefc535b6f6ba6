"""nn-gpu sweep on real MNIST: trials train as `train` does, report every
epoch and get pruned; several worker processes share one study in SQLite or
PostgreSQL; a crashed worker fails only its trial; Ctrl-C loses nothing and
the rerun continues the study."""

import csv
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import types

import numpy
import pytest

optuna = pytest.importorskip("optuna")  # the sweep extra; absent e.g. on the GPU machine
from conftest import REPO_ROOT  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from nn_gpu import cli  # noqa: E402
from nn_gpu.backends import cupy_status  # noqa: E402
from nn_gpu.sweep import runner, worker  # noqa: E402
from nn_gpu.sweep import study as sweep_study
from nn_gpu.sweep.space import load_space  # noqa: E402
from nn_gpu.version import install_hint  # noqa: E402

pytestmark = pytest.mark.usefixtures("mnist")  # skipped, with the reason, without MNIST

SPACE = """
name = "test"
train_size = {train_size}

[fixed]
epochs = {epochs}
cost = "cross_entropy"

[search]
eta = {{ low = 0.001, high = 5.0, log = true }}
batch_size = {{ choices = [10, 50] }}
hidden = {{ choices = {hidden} }}
"""


@pytest.fixture
def space_file(tmp_path):
    def make(train_size=500, epochs=3, hidden="[[10], [20]]"):
        path = tmp_path / "space.toml"
        path.write_text(SPACE.format(train_size=train_size, epochs=epochs, hidden=hidden))
        return path
    return make


def run_in_process(space_path, storage_url, trials, seed=1, pruner="median", sampler="tpe"):
    """One worker, run in this process: the trials' logic without subprocesses."""
    space = load_space(space_path)
    storage = sweep_study.open_storage(storage_url)
    study = sweep_study.create(storage, space.name, space)
    config = {"worker": 0, "space": space.document, "space_file": str(space_path),
              "storage": storage_url, "study": space.name, "sampler": sampler,
              "pruner": pruner, "seed": seed, "data": None, "backend": "numpy",
              "trials": trials, "timeout": None}
    assert worker.run(config) == 0
    return study


def sweep_command(space_path, storage, *extra):
    return [sys.executable, "-m", "nn_gpu", "sweep", str(space_path), "--storage", str(storage),
            *map(str, extra)]


def subprocess_env():
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


def load_study(url):
    """The study as a sweep leaves it (opened as the sweep opens it: a reader
    racing a sweep that is still creating the tables waits for them)."""
    return optuna.load_study(study_name="test", storage=sweep_study.open_storage(str(url)))


def states(study):
    return [t.state for t in study.get_trials(deepcopy=False)]


# ------------------------------------------------------------- trials
@pytest.mark.slow
def test_trials_report_every_epoch_and_keep_their_best(space_file, tmp_path):
    study = run_in_process(space_file(), f"sqlite:///{tmp_path}/s.db", trials=6,
                           pruner="none")
    trials = study.get_trials()
    assert len(trials) == 6 and set(states(study)) == {TrialState.COMPLETE}
    for trial in trials:
        assert sorted(trial.intermediate_values) == [1, 2, 3]
        assert trial.value == max(trial.intermediate_values.values())
        attrs = trial.user_attrs
        assert trial.intermediate_values[attrs["best_epoch"]] == trial.value
        assert attrs["seed"] == 1 + trial.number and attrs["epochs_run"] == 3
        assert attrs["pid"] == os.getpid() and attrs["seconds"] > 0
    assert len({t.params["eta"] for t in trials}) == 6  # the sampler explores


@pytest.mark.slow
def test_the_printed_command_reproduces_the_trial_exactly(space_file, tmp_path, capsys):
    """What `sweep` prints for the best trial, run as `nn-gpu train`, gives
    the very validation accuracies the trial reported, epoch by epoch."""
    space_path = space_file()
    run_in_process(space_path, f"sqlite:///{tmp_path}/s.db", trials=3, pruner="none")
    capsys.readouterr()
    assert cli.main(["sweep", str(space_path), "--storage", str(tmp_path / "s.db"),
                     "--trials", "3"]) == 0
    out = capsys.readouterr().out
    assert "nothing to run" in out
    command = out.split("Reproduce it (and see its test accuracy) with:\n")[1].split("\n")[0]
    words = shlex.split(command)
    assert words[:2] == ["nn-gpu", "train"] and "--seed" in words
    history = tmp_path / "history.json"
    assert cli.main([*words[1:], "--history", str(history), "--quiet"]) == 0
    study = load_study(f"sqlite:///{tmp_path}/s.db")
    reported = study.best_trial.intermediate_values
    epochs = json.loads(history.read_text())["epochs"]
    assert {e["epoch"]: e["validation_accuracy"] for e in epochs} == reported


@pytest.mark.slow
@pytest.mark.parametrize("pruner", ["median", "hyperband"])
def test_hopeless_trials_are_pruned_and_say_so(space_file, tmp_path, pruner):
    """eta from 0.001 (learns nothing in 4 epochs) to 5: the pruner stops
    the slow ones after an epoch or two."""
    study = run_in_process(space_file(epochs=4), f"sqlite:///{tmp_path}/s.db", trials=14,
                           sampler="random", pruner=pruner)
    pruned = [t for t in study.get_trials() if t.state == TrialState.PRUNED]
    assert pruned, "nothing was pruned"
    for trial in pruned:
        assert trial.user_attrs["stopped"].startswith("pruned after epoch")
        assert trial.user_attrs["epochs_run"] < 4 == max(
            t.user_attrs["epochs_run"] for t in study.get_trials())


@pytest.mark.slow
def test_a_diverging_trial_is_pruned_as_diverged(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text('train_size = 500\n[fixed]\nepochs = 2\ncost = "cross_entropy"\n'
                    '[search]\neta = { choices = [1e30] }\n')
    with numpy.errstate(all="ignore"):
        study = run_in_process(path, f"sqlite:///{tmp_path}/s.db", trials=1)
    (trial,) = study.get_trials()
    assert trial.state == TrialState.PRUNED
    assert trial.user_attrs["stopped"].startswith("diverged in epoch 1")


@pytest.mark.slow
def test_a_failing_trial_is_recorded_and_the_study_goes_on(space_file, tmp_path, monkeypatch,
                                                           capsys):
    real_sgd = worker.Network.sgd

    def sgd(net, *args, **kwargs):
        if net.sizes[1] == 20:
            raise MemoryError("no room for 20 hidden neurons")
        return real_sgd(net, *args, **kwargs)
    monkeypatch.setattr(worker.Network, "sgd", sgd)
    study = run_in_process(space_file(), f"sqlite:///{tmp_path}/s.db", trials=6,
                           pruner="none")
    failed = [t for t in study.get_trials() if t.state == TrialState.FAIL]
    assert failed and len(study.get_trials()) == 6
    assert all(t.params["hidden"] == "[20]" for t in failed)
    assert failed[0].user_attrs["error"] == "MemoryError: no room for 20 hidden neurons"
    assert f"Trial {failed[0].number} [worker 0]: failed: MemoryError" in capsys.readouterr().out


@pytest.mark.slow
def test_a_changed_space_is_refused_for_an_existing_study(space_file, tmp_path):
    storage = f"sqlite:///{tmp_path}/s.db"
    run_in_process(space_file(), storage, trials=1)
    changed = load_space(space_file(epochs=5))
    with pytest.raises(sweep_study.SweepError, match="different search space.*new name"):
        sweep_study.create(sweep_study.open_storage(storage), "test", changed)


# ------------------------------------------------------------- workers
def test_worker_environments_pin_gpus_or_share_the_cpu():
    assert runner.worker_environments(None, ["0", "1"], 16) == [
        {"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "1"}]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in
            runner.worker_environments(3, ["4", "7"], 16)] == ["4", "7", "4"]
    two = runner.worker_environments(2, [], 8)
    assert len(two) == 2 and all(e["OPENBLAS_NUM_THREADS"] == "4" and
                                 e["OMP_NUM_THREADS"] == "4" for e in two)
    assert runner.worker_environments(None, [], 8)[0]["NUMBA_NUM_THREADS"] == "8"
    assert runner.worker_environments(4, [], 2)[0]["MKL_NUM_THREADS"] == "1"
    assert runner.worker_environments(2, [], 8, threads=1)[1]["OPENBLAS_NUM_THREADS"] == "1"
    assert runner.visible_gpus("numpy") == []


@pytest.mark.slow
def test_two_workers_share_an_sqlite_study(space_file, tmp_path):
    csv_path, png = tmp_path / "trials.csv", tmp_path / "trials.png"
    result = subprocess.run(
        sweep_command(space_file(), tmp_path / "s.db", "--trials", 8, "--workers", 2,
                      "--seed", 3, "--export", csv_path, "--plot", png),
        capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Worker 0 started" in result.stdout and "Worker 1 started" in result.stdout
    assert result.stderr == "" and "died" not in result.stdout
    assert result.stdout.count(f"CPU, {max(1, os.cpu_count() // 2)} thread") == 2
    study = load_study(f"sqlite:///{tmp_path}/s.db")
    trials = sweep_study.shown_trials(study)
    assert len(trials) == sweep_study.trials_done(study) == 8  # --trials: the study's total
    assert len(study.get_trials()) - len(trials) <= 1  # a trial begun in a race is not run
    assert {t.user_attrs["worker"] for t in trials} == {0, 1}
    assert len({t.user_attrs["pid"] for t in trials}) == 2
    with open(csv_path, newline="") as handle:
        assert len(list(csv.DictReader(handle))) == len(trials)
    assert png.read_bytes().startswith(b"\x89PNG")
    assert "RANK" in result.stdout and "Best: trial" in result.stdout


def wait_for(predicate, timeout=120, what="the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def running_trials(storage_url):
    try:
        study = load_study(storage_url)
    except KeyError:
        return []  # not created yet
    return study.get_trials(states=(TrialState.RUNNING,))


#: Trials of ~2 s (20 epochs of ~0.1 s): a signal sent while a trial is in its
#: first 10 epochs lands mid-training, long before the trial could finish.
LONG_TRIALS = {"train_size": 5000, "epochs": 20, "hidden": "[[200], [201]]"}


def as_in_a_terminal():
    """Ctrl-C as a terminal delivers it. A shell that starts a job in the
    background (``cmd &``, as ``nohup`` users and some CI runners do) leaves
    SIGINT ignored, and Python then installs no KeyboardInterrupt handler in
    the processes it starts: the sweep would never hear this test's SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def mid_training(storage_url):
    """The trials now training, past their first epoch and far from their last."""
    return [t for t in running_trials(storage_url)
            if "pid" in t.user_attrs and 1 <= len(t.intermediate_values) <= 10]


@pytest.mark.slow
def test_a_killed_worker_fails_its_trial_and_is_replaced(space_file, tmp_path):
    storage = f"sqlite:///{tmp_path}/s.db"
    process = subprocess.Popen(
        sweep_command(space_file(**LONG_TRIALS), tmp_path / "s.db",
                      "--trials", 2, "--workers", 1, "--pruner", "none"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        victim = wait_for(lambda: mid_training(storage), what="a trial in training")[0]
        # The storage URL (a password, in a PostgreSQL one) is not on the
        # worker's command line, where any user's `ps` would show it.
        with open(f"/proc/{victim.user_attrs['pid']}/cmdline", "rb") as cmdline:
            assert b"s.db" not in cmdline.read()
        os.kill(victim.user_attrs["pid"], signal.SIGKILL)
        out, err = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 1, err  # the sweep finished, but not every trial ran
    assert err.endswith(f"trial {victim.number} failed in this run (their errors are above "
                        "and in the study's trial attributes)\n"), err
    study = load_study(storage)
    dead = study.get_trials()[victim.number]
    assert dead.state == TrialState.FAIL
    assert dead.user_attrs["error"] == (f"worker 0 (pid {victim.user_attrs['pid']}) died: "
                                        "killed by SIGKILL")
    assert f"trial {victim.number} marked failed" in out
    assert sweep_study.trials_done(study) >= 2 and not running_trials(storage)
    assert out.count("Worker 0 started") == 2


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_ctrl_c_keeps_every_trial_and_the_rerun_continues(space_file, tmp_path, stop_signal):
    """Ctrl-C (SIGINT), a scheduler's SIGTERM or a closed terminal's SIGHUP."""
    storage = f"sqlite:///{tmp_path}/s.db"
    command = sweep_command(space_file(**LONG_TRIALS), tmp_path / "s.db",
                            "--trials", 4, "--workers", 2, "--seed", 5, "--pruner", "none")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=subprocess_env(), preexec_fn=as_in_a_terminal)
    try:
        def finished_and_training():
            try:
                complete = load_study(storage).get_trials(states=(TrialState.COMPLETE,))
            except KeyError:
                return False  # the study is not created yet
            return complete and mid_training(storage)
        wait_for(lambda: os.path.exists(tmp_path / "s.db") and finished_and_training(),
                 what="a finished trial and one in training")
        process.send_signal(stop_signal)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130
    assert "Interrupted: finished trials are kept" in err and "Traceback" not in err
    study = load_study(storage)
    first = study.get_trials()
    assert not [t for t in first if t.state == TrialState.RUNNING]
    interrupted = [t for t in first if t.user_attrs.get("interrupted")]
    assert interrupted and all(t.state == TrialState.FAIL for t in interrupted)
    complete = {t.number: t.value for t in first if t.state == TrialState.COMPLETE}
    assert complete

    rerun = subprocess.run(command, capture_output=True, text=True, env=subprocess_env(),
                           timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"Rerunning trial{'s' if len(interrupted) > 1 else ''} " in rerun.stdout
    study = load_study(storage)
    trials = study.get_trials()
    assert {n: trials[n].value for n in complete} == complete  # nothing lost
    for old in interrupted:
        (retry,) = [t for t in trials if t.user_attrs.get("retry_of") == old.number]
        assert retry.state == TrialState.COMPLETE
        assert (retry.params, retry.user_attrs["seed"]) == (old.params, old.user_attrs["seed"])
    assert sweep_study.is_done(study, 4)


@pytest.mark.slow
def test_two_sweeps_share_one_postgresql_study(space_file, postgres_storage_url, tmp_path):
    """Two `nn-gpu sweep` commands against one database, as on two machines."""
    # Trials long enough (~0.5 s) that neither command finishes alone before the other starts.
    command = sweep_command(space_file(train_size=3000, epochs=6), postgres_storage_url,
                            "--trials", 12, "--workers", 1, "--threads", 1, "--pruner", "none")
    first, second = (subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, env=subprocess_env(), cwd=tmp_path)
                     for _ in range(2))
    outputs = [process.communicate(timeout=300) for process in (first, second)]
    for process, (out, err) in zip((first, second), outputs):
        assert process.returncode == 0, err
        assert err == "" and "died" not in out
    study = load_study(postgres_storage_url)
    trials = sweep_study.shown_trials(study)  # (a trial begun in a race is not run)
    assert len(trials) == 12
    assert len({t.user_attrs["pid"] for t in trials}) == 2  # both machines' workers trained
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert len({t.params["eta"] for t in trials}) == len(trials)  # no repeated draws


@pytest.mark.slow
def test_two_workers_on_postgresql(space_file, postgres_storage_url, tmp_path):
    """The URL from $NN_GPU_SWEEP_STORAGE, off the command line."""
    result = subprocess.run(
        [sys.executable, "-m", "nn_gpu", "sweep", str(space_file()), "--trials", "6",
         "--workers", "2"], capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env={**subprocess_env(), "NN_GPU_SWEEP_STORAGE": postgres_storage_url})
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and "died" not in result.stdout
    study = load_study(postgres_storage_url)
    assert {t.user_attrs["worker"] for t in sweep_study.shown_trials(study)} == {0, 1}
    assert "postgresql://" in result.stdout and not list(tmp_path.glob("*.db"))


# ------------------------------------------------------------- command line
@pytest.mark.slow
def test_quiet_prints_only_the_results_in_the_default_sqlite_file(space_file, tmp_path,
                                                                  monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["sweep", str(space_file()), "--trials", "2", "--quiet"]) == 0
    assert (tmp_path / "test.db").exists()  # named after the study
    out, err = capfd.readouterr()  # the workers' output too
    assert out.startswith("\n2 trials: 2 complete") and "Trial " not in out
    assert err == ""


@pytest.mark.parametrize("extra, message", [
    (["--storage", "/no/such/dir/s.db"], "directory /no/such/dir does not exist"),
    (["--storage", "postgresql://nobody@127.0.0.1:1/none"],
     "cannot open the study storage postgresql://nobody@127.0.0.1:1/none"),
    (["--export", "/no/such/dir/x.csv"], "--export /no/such/dir/x.csv: directory"),
    (["--data", "/no/such/mnist"], "/no/such/mnist"),
    pytest.param(["--backend", "cupy"], "backend 'cupy' is unavailable: CuPy",
                 marks=pytest.mark.skipif(cupy_status()[0], reason="CuPy runs here")),
])
def test_bad_arguments_are_one_line_errors(space_file, tmp_path, capsys, extra, message):
    assert cli.main(["sweep", str(space_file()), *extra]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("nn-gpu: error: ")


def test_a_bad_space_file_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "space.toml"
    path.write_text("[search]\neta = { low = 1, high = 0.5 }\n")
    assert cli.main(["sweep", str(path)]) == 1
    assert capsys.readouterr().err == (f"nn-gpu: error: {path}: search.eta: low (1) must be "
                                       "below high (0.5)\n")


@pytest.mark.slow
def test_plain_training_never_imports_the_sweep_dependencies(tmp_path):
    """(Not PyYAML: Numba itself imports it, where installed, for its config file.)"""
    code = ("import sys\nfrom nn_gpu import cli\n"
            "assert cli.main(['train', '--epochs', '1', '--train-size', '100', '--quiet', "
            "'--sizes', '784', '5', '10']) == 0\n"
            "loaded = [m for m in ('optuna', 'sqlalchemy', 'psycopg', 'nn_gpu.sweep.study') "
            "if m in sys.modules]\nassert not loaded, loaded\n")
    result = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_without_optuna_sweep_says_what_to_install(space_file, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` now fails
    assert cli.main(["sweep", str(space_file())]) == 1
    assert install_hint("sweep") in capsys.readouterr().err


def test_a_stop_request_never_cuts_optunas_bookkeeping():
    """Outside training a request is only noted; inside it raises at once,
    except while a result is being written, after which it raises."""
    stop = worker.StopRequest()
    stop(signal.SIGINT, None)  # e.g. while Optuna asks for the next trial
    assert stop.requested
    with pytest.raises(KeyboardInterrupt), stop.raising():
        pass  # the next training does not start
    fresh, order = worker.StopRequest(), []
    with pytest.raises(KeyboardInterrupt), fresh.raising():
        with fresh.deferred():
            fresh(signal.SIGINT, None)
            order.append("write finished")
        order.append("not reached")
    assert order == ["write finished"]


@pytest.mark.slow
def test_a_trial_whose_worker_went_silent_elsewhere_is_failed(space_file, tmp_path,
                                                              monkeypatch):
    """A machine that vanished mid-trial stops sending heartbeats; the next
    worker to start a trial fails it (after the grace period: 2 s here)."""
    monkeypatch.setattr(sweep_study, "HEARTBEAT_SECONDS", 1)
    monkeypatch.setattr(sweep_study, "GRACE_SECONDS", 2)
    url = f"sqlite:///{tmp_path}/s.db"
    space = load_space(space_file())
    storage = sweep_study.open_storage(url)
    study = sweep_study.create(storage, space.name, space)
    with pytest.warns(UserWarning, match="Heartbeat"):  # Optuna: ask() is not optimize()
        orphan = study.ask()  # taken by a worker on another machine...
    storage.record_heartbeat(orphan._trial_id)  # ...which then fell silent
    time.sleep(3)
    study = run_in_process(space_file(), url, trials=2, pruner="none")
    assert study.get_trials()[orphan.number].state == TrialState.FAIL
    assert not running_trials(url)


def test_visible_gpus_follow_cuda_visible_devices_or_cupys_count(monkeypatch):
    monkeypatch.setattr(runner, "cupy_status", lambda: (True, "stand-in"))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 5")
    assert runner.visible_gpus("auto") == ["2", "5"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    cupy = types.ModuleType("cupy")
    cupy.cuda = types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=lambda: 3))
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    assert runner.visible_gpus("cupy") == ["0", "1", "2"]
    assert runner.visible_gpus("numpy") == []
    monkeypatch.setattr(runner, "cupy_status", lambda: (False, "no driver"))
    assert runner.visible_gpus("auto") == []


@pytest.mark.slow
def test_timeout_stops_starting_trials(space_file, tmp_path):
    started = time.monotonic()
    result = subprocess.run(
        sweep_command(space_file(), tmp_path / "s.db", "--trials", 10_000, "--timeout", 2),
        capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert result.returncode == 0, result.stderr
    study = load_study(f"sqlite:///{tmp_path}/s.db")
    assert 1 <= len(study.get_trials()) < 10_000
    assert time.monotonic() - started < 60


def test_plot_without_matplotlib_fails_before_any_trial(space_file, tmp_path, monkeypatch,
                                                        capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert cli.main(["sweep", str(space_file()), "--storage", str(tmp_path / "s.db"),
                     "--plot", str(tmp_path / "p.png")]) == 1
    assert "plotting needs matplotlib" in capsys.readouterr().err
    assert not (tmp_path / "s.db").exists()


@pytest.mark.slow
def test_with_several_gpus_each_worker_is_pinned_to_its_own(space_file, tmp_path, monkeypatch,
                                                            capsys):
    """Two (pretend) GPUs and no --workers: two workers, each started with
    CUDA_VISIBLE_DEVICES naming its GPU, as its trials record. (No CUDA here,
    so they train on NumPy: --backend auto.)"""
    monkeypatch.setattr(runner, "visible_gpus", lambda backend: ["0", "1"])
    monkeypatch.chdir(tmp_path)
    assert cli.main(["sweep", str(space_file()), "--trials", "6"]) == 0
    out = capsys.readouterr().out
    assert "Worker 0 started" in out and "GPU 0)" in out and "GPU 1)" in out
    study = load_study(f"sqlite:///{tmp_path}/test.db")
    pinned = {t.user_attrs["worker"]: t.user_attrs["device"]
              for t in sweep_study.shown_trials(study)}
    assert pinned == {0: "numpy (GPU 0)", 1: "numpy (GPU 1)"}
