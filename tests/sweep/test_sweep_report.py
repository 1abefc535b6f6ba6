"""nn_gpu.sweep.report on hand-made Optuna trials: the counts line, the table
of the best trials, the CSV, the picture and the reproduce command."""

import csv
import importlib.util
import shlex

import pytest

optuna = pytest.importorskip("optuna")
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution  # noqa: E402
from optuna.trial import TrialState, create_trial  # noqa: E402

from nn_gpu.analysis import plots
from nn_gpu.presets import network as presets  # noqa: E402
from nn_gpu.sweep import report  # noqa: E402

needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                      reason="matplotlib is not installed")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SPACE = {
    "eta": FloatDistribution(1e-3, 1.0, log=True),
    "l2": FloatDistribution(1e-5, 10.0, log=True),
    "momentum": FloatDistribution(0.0, 0.99),
    "batch_size": IntDistribution(10, 1000, log=True),
    "epochs": IntDistribution(1, 30),
    "hidden": CategoricalDistribution(["[30]", "[100]", "[100, 30]"]),
    "cost": CategoricalDistribution(["quadratic", "cross_entropy"]),
}


def make_trial(number, state=TrialState.COMPLETE, value=None, params=None, attrs=None,
               epochs=None):
    """A FrozenTrial numbered ``number``, its params drawn from SPACE."""
    params = params or {}
    trial = create_trial(state=state, value=value, params=params,
                         distributions={name: SPACE[name] for name in params},
                         user_attrs=attrs or {}, intermediate_values=epochs or {})
    trial.number = number
    return trial


def finished(number, value, **params):
    return make_trial(number, value=value, params=params,
                      attrs={"seed": 100 + number, "best_epoch": 3, "epochs_run": 5,
                             "seconds": 12.34 + number, "worker": number % 2,
                             "host": "lab-7", "device": "cupy (GPU 1)"},
                      epochs={1: value - 0.02, 2: value})


def pruned(number, last, **params):
    return make_trial(number, TrialState.PRUNED, params=params,
                      attrs={"seed": 100 + number, "epochs_run": 2,
                             "stopped": "pruned after epoch 2: below the median"},
                      epochs={1: last - 0.05, 2: last})


def study_trials():
    """A small study with every state, in no particular order."""
    return [
        finished(3, 0.9512, eta=0.1234567891234, hidden="[100, 30]", cost="cross_entropy"),
        pruned(1, 0.80, eta=0.9, hidden="[30]"),
        make_trial(5, TrialState.FAIL, params={"eta": 0.5},
                   attrs={"seed": 105, "error": "worker 1 (pid 123) died: killed by SIGKILL"}),
        make_trial(6, TrialState.FAIL, params={"eta": 0.01}, attrs={"interrupted": True}),
        make_trial(7, TrialState.COMPLETE, value=0.97, params={"eta": 0.01},
                   attrs={"retry_of": 6, "seed": 106}),
        finished(0, 0.9, eta=0.002, batch_size=20, momentum=0.5),
        make_trial(8, TrialState.RUNNING, params={"eta": 0.3}),
        make_trial(9, TrialState.WAITING),
    ]


# ------------------------------------------------------------- counts line
def test_counts_line_names_every_state_there_is():
    assert report.counts_line(study_trials()) == (
        "8 trials: 3 complete, 1 pruned, 1 failed, 1 interrupted, 1 running, 1 waiting")


def test_counts_line_leaves_out_states_with_no_trial():
    trials = [finished(0, 0.9, eta=0.1), finished(1, 0.8, eta=0.2)]
    assert report.counts_line(trials) == "2 trials: 2 complete, 0 pruned, 0 failed"
    assert report.counts_line(trials[:1]) == "1 trial: 1 complete, 0 pruned, 0 failed"


# ------------------------------------------------------------------- table
def test_top_table_ranks_complete_trials_best_first_earlier_of_equals_first():
    trials = [finished(4, 0.95, eta=0.1), finished(2, 0.95, eta=0.2),
              finished(0, 0.9, eta=0.3), finished(9, 0.99, eta=0.4),
              pruned(1, 0.999, eta=0.5), *study_trials()[2:4]]
    lines = report.top_table(trials).splitlines()
    assert lines[0].split() == ["RANK", "TRIAL", "VALIDATION", "EPOCH", "eta", "SECONDS"]
    rows = [line.split() for line in lines[1:]]
    assert [row[1] for row in rows] == ["9", "2", "4", "0"]  # no pruned or failed trial
    assert [row[0] for row in rows] == ["1", "2", "3", "4"]
    assert [row[2] for row in rows] == ["99.00%", "95.00%", "95.00%", "90.00%"]
    assert rows[0][3:] == ["3", "0.4", "21.3"]  # best epoch, eta, seconds (12.34 + 9)


def test_top_table_shows_at_most_top_rows():
    trials = [finished(n, 0.5 + n / 100, eta=0.1) for n in range(15)]
    assert len(report.top_table(trials).splitlines()) == 1 + 10
    lines = report.top_table(trials, top=3).splitlines()
    assert [line.split()[1] for line in lines[1:]] == ["14", "13", "12"]


def test_top_table_formats_and_aligns_its_columns():
    trials = [finished(3, 0.951234, eta=0.1234567891234, hidden="[100, 30]",
                       cost="cross_entropy"),
              finished(12, 0.9, eta=0.002, batch_size=20, momentum=0.5)]
    header, first, second = report.top_table(trials).splitlines()
    assert header.split() == ["RANK", "TRIAL", "VALIDATION", "EPOCH", "batch_size", "cost",
                              "eta", "hidden", "momentum", "SECONDS"]
    assert "95.12%" in first and "90.00%" in second
    assert " 0.1235 " in first and " 0.002 " in second        # 4 significant digits
    assert "[100, 30]" in first and "100-30" not in first
    # Numbers end under the end of their heading; words start under its start.
    for word, cell, line in (("VALIDATION", "95.12%", first), ("TRIAL", "12", second),
                             ("batch_size", "20", second), ("eta", "0.1235", first),
                             ("SECONDS", "24.3", second)):
        assert line.index(cell) + len(cell) == header.index(word) + len(word), word
    for word, cell, line in (("hidden", "[100, 30]", first), ("cost", "cross_entropy", first)):
        assert line.index(cell) == header.index(word), word
    # A trial without a hyper-parameter shows "-" in its column.
    assert second[header.index("cost")] == "-"
    assert first[header.index("batch_size") + len("batch_size") - 1] == "-"


def test_top_table_without_a_complete_trial_says_so():
    trials = study_trials()
    trials = [t for t in trials if t.state != TrialState.COMPLETE]
    assert len(trials) == 5
    assert report.top_table(trials) == "no trial has completed yet"
    assert report.top_table([]) == "no trial has completed yet"


# --------------------------------------------------------------------- CSV
def read_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


def test_csv_has_every_trial_in_order_with_its_columns(tmp_path):
    path = tmp_path / "trials.csv"
    report.write_csv(study_trials(), path)
    columns, rows = read_csv(path)
    assert columns == ["number", "state", "validation_accuracy", "best_epoch", "epochs_run",
                       "seconds", "seed", "worker", "host", "device", "param_batch_size",
                       "param_cost",
                       "param_eta", "param_hidden", "param_momentum", "stopped", "error",
                       "interrupted", "retry_of"]
    assert [row["number"] for row in rows] == ["0", "1", "3", "5", "6", "7", "8", "9"]
    assert [row["state"] for row in rows] == ["complete", "pruned", "complete", "fail",
                                              "fail", "complete", "running", "waiting"]
    by_number = {int(row["number"]): row for row in rows}
    best = by_number[3]
    assert float(best["validation_accuracy"]) == 0.9512
    assert float(best["param_eta"]) == 0.1234567891234  # every digit kept
    assert float(best["seconds"]) == 12.34 + 3
    assert (best["param_hidden"], best["param_cost"]) == ("[100, 30]", "cross_entropy")
    assert (best["best_epoch"], best["epochs_run"], best["seed"], best["worker"]) == (
        "3", "5", "103", "1")
    assert (best["host"], best["device"]) == ("lab-7", "cupy (GPU 1)")
    assert best["param_batch_size"] == best["param_momentum"] == best["stopped"] == ""
    assert by_number[1]["stopped"] == "pruned after epoch 2: below the median"
    assert by_number[5]["error"] == "worker 1 (pid 123) died: killed by SIGKILL"
    assert by_number[5]["validation_accuracy"] == by_number[5]["interrupted"] == ""
    assert by_number[6]["interrupted"] == "True"
    assert by_number[7]["retry_of"] == "6"
    assert by_number[0]["param_batch_size"] == "20"
    assert set(by_number[9].values()) == {"9", "waiting", ""}


class Unprintable:
    def __str__(self):
        raise RuntimeError("cannot be written")


def test_csv_that_fails_to_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "trials.csv"
    path.write_text("the previous report\n")
    broken = make_trial(2, TrialState.FAIL, attrs={"error": Unprintable()})
    with pytest.raises(RuntimeError, match="cannot be written"):
        report.write_csv([finished(1, 0.9, eta=0.1), broken], path)
    assert path.read_text() == "the previous report\n"

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    # The rows are all written, then the disk fills: still the old file.
    monkeypatch.setattr("nn_gpu.io.fileio.os.fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        report.write_csv(study_trials(), path)
    assert path.read_text() == "the previous report\n"
    assert [p.name for p in tmp_path.iterdir()] == ["trials.csv"]


# ----------------------------------------------------------------- picture
def picture_trials():
    """Complete and pruned trials over log-float, linear-float, log-int,
    int and categorical hyper-parameters, one trial a failure."""
    hiddens = SPACE["hidden"].choices
    trials = []
    for n in range(12):
        params = {"eta": 0.002 * 1.7 ** n, "momentum": n / 12, "batch_size": 10 + 15 * n,
                  "epochs": 1 + n, "hidden": hiddens[n % 3]}
        if n % 4 == 1:
            trials.append(pruned(n, 0.90 + n / 1000, **params))
        else:
            trials.append(finished(n, 0.95 + n / 1000, **params))
    trials.append(make_trial(12, TrialState.FAIL, params={"eta": 0.5}))
    return trials


def drawn(monkeypatch):
    """The figures plot_trials saves, as it saves them."""
    figures = []
    save_png = plots.save_png

    def keep(fig, path):
        figures.append(fig)
        save_png(fig, path)

    monkeypatch.setattr(plots, "save_png", keep)
    return figures


def offsets(ax, hollow):
    """(x, y) of every point of ``ax`` drawn as filled dots, or as rings."""
    points = []
    for collection in ax.collections:
        if (len(collection.get_facecolors()) == 0) == hollow:
            points += [tuple(p) for p in collection.get_offsets()]
    return points


@needs_matplotlib
def test_plot_writes_a_png_of_one_panel_per_hyper_parameter(tmp_path, monkeypatch):
    from matplotlib.image import imread

    figures = drawn(monkeypatch)
    path = tmp_path / "sweep.png"
    assert report.plot_trials(picture_trials(), path, "mnist-demo") is None
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 10_000
    pixels = imread(path)
    width = 3 * report.PANEL_SIZE[0] + report.COLORBAR_WIDTH   # 5 panels: 3 columns, 2 rows
    height = 2 * report.PANEL_SIZE[1] + report.HEADING_HEIGHT
    assert pixels.shape == (round(height * plots.DEFAULT_DPI), round(width * plots.DEFAULT_DPI), 4)
    assert pixels[..., :3].std() > 0.05  # not a blank page
    assert [p.name for p in tmp_path.iterdir()] == ["sweep.png"]

    (fig,) = figures
    assert fig.get_suptitle() == ("Validation accuracy against each hyper-parameter "
                                  "(mnist-demo)")
    panels = {ax.get_xlabel(): ax for ax in fig.axes if ax.get_xlabel()}
    assert list(panels) == ["batch_size", "epochs", "eta", "hidden", "momentum"]
    assert [panels[name].get_xscale() for name in panels] == [
        "log", "linear", "log", "linear", "linear"]
    hidden = panels["hidden"]
    assert [label.get_text() for label in hidden.get_xticklabels()] == [
        "[30]", "[100]", "[100, 30]"]
    assert list(hidden.get_xticks()) == [0, 1, 2]
    # Trial 10 ("[100]", complete) near category 1; pruned trial 5 ("[100, 30]")
    # at its last epoch's accuracy, 90.5%.
    assert any(abs(x - 1) < 0.2 and y == pytest.approx(95.0 + 1.0) for x, y in
               offsets(hidden, hollow=False))
    assert any(abs(x - 2) < 0.2 and y == pytest.approx(90.5) for x, y in
               offsets(hidden, hollow=True))
    eta = panels["eta"]
    assert len(offsets(eta, hollow=False)) == 9 and len(offsets(eta, hollow=True)) == 3
    assert [text.get_text() for text in fig.legends[0].get_texts()] == [
        "pruned (last epoch reported)"]
    assert any(ax.get_ylabel() == "trial" for ax in fig.axes)  # the colour bar


@needs_matplotlib
def test_plot_keeps_a_diverged_trial_from_squashing_the_rest(tmp_path, monkeypatch):
    figures = drawn(monkeypatch)
    trials = picture_trials()
    trials.append(pruned(13, 0.098, eta=5e-3, epochs=1, momentum=0.9, batch_size=10))
    report.plot_trials(trials, tmp_path / "sweep.png", "diverged")
    (fig,) = figures
    eta = next(ax for ax in fig.axes if ax.get_xlabel() == "eta")
    bottom, top = eta.get_ylim()
    assert 50 < bottom < 90.1 and top > 96.1  # every other trial on the scale
    floor = bottom + report.FLOOR_MARGIN * (top - bottom) / (1 + 2 * report.FLOOR_MARGIN)
    rings = offsets(eta, hollow=True)
    assert (5e-3, pytest.approx(floor)) in rings  # drawn on the floor, not left out
    assert sorted(y for _, y in rings)[1:] == pytest.approx([90.1, 90.5, 90.9])
    assert "below" in fig.legends[0].get_texts()[-1].get_text()


@needs_matplotlib
def test_plot_with_nothing_finished_raises_and_writes_nothing(tmp_path):
    path = tmp_path / "sweep.png"
    trials = [t for t in study_trials() if t.state not in
              (TrialState.COMPLETE, TrialState.PRUNED)]
    trials.append(make_trial(10, TrialState.PRUNED, params={"eta": 0.1}))  # no epoch reported
    with pytest.raises(ValueError, match="no finished trial to plot"):
        report.plot_trials(trials, path, "empty")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------ reproduce it
def trial_options(**changes):
    options = dict(presets.TRAIN_DEFAULTS, sizes=[784, 100, 30, 10], epochs=12,
                   batch_size=32, eta=0.1234567891234, cost="cross_entropy", momentum=0.9,
                   l2=0, monitor=[])
    options.update(changes)
    return options


def test_reproduce_command_gives_the_trial_s_options_and_no_defaults():
    words = shlex.split(report.reproduce_command(trial_options(), 10000, 42))
    assert words == ["nn-gpu", "train", "--sizes", "784", "100", "30", "10", "--epochs", "12",
                     "--batch-size", "32", "--eta", "0.1234567891234", "--cost",
                     "cross_entropy", "--momentum", "0.9", "--train-size", "10000",
                     "--seed", "42"]
    assert float(words[words.index("--eta") + 1]) == 0.1234567891234


def test_reproduce_command_spells_out_the_always_given_even_at_their_default():
    words = shlex.split(report.reproduce_command(dict(presets.TRAIN_DEFAULTS), None, 0))
    assert words == ["nn-gpu", "train", "--sizes", "784", "30", "10", "--epochs", "30",
                     "--batch-size", "10", "--eta", "3.0", "--cost", "quadratic", "--seed", "0"]


def test_reproduce_command_other_options_and_dtype():
    options = trial_options(expand=True, eta_schedule=3, early_stopping=0, l1=1e-05,
                            activation="relu", init="scaled", dropout=0.5)
    words = shlex.split(report.reproduce_command(options, None, 7, dtype="float64"))
    assert words[words.index("--cost") + 2:] == [
        "--activation", "relu", "--init", "scaled", "--l1", "1e-05", "--momentum", "0.9",
        "--dropout", "0.5", "--eta-schedule", "3", "--expand", "--seed", "7",
        "--dtype", "float64"]


def test_reproduce_command_rejects_what_train_does_not_take():
    with pytest.raises(ValueError, match="hidden"):
        report.reproduce_command(trial_options(hidden="[100, 30]"), None, 1)


def test_reproduce_command_parses_back_to_the_same_options():
    from nn_gpu import cli

    options = trial_options(expand=True, eta_schedule=2, dropout=0.2, l2=5.0)
    words = shlex.split(report.reproduce_command(options, 5000, 9))
    args = cli.build_parser().parse_args(words[1:])
    resolved = presets.resolve(vars(args))
    assert {key: resolved[key] for key in options if key != "monitor"} == {
        key: value for key, value in options.items() if key != "monitor"}
    assert (args.train_size, args.seed, args.dtype) == (5000, 9, "float32")
