"""What ``nn-gpu sweep`` tells about a study: counts, the best trials, a CSV
of every trial, a picture of accuracy against each hyper-parameter, and the
``nn-gpu train`` command that reruns a trial.

The trials are Optuna :class:`~optuna.trial.FrozenTrial` objects of a study
that maximises validation accuracy (a fraction). Besides ``value`` and
``params`` they carry ``intermediate_values`` (epoch -> validation accuracy)
and the user attributes the sweep's workers set: ``seed``, ``best_epoch``,
``epochs_run``, ``seconds``, ``worker``, and where it applies ``stopped``,
``error``, ``interrupted`` and ``retry_of``.

matplotlib is imported only when :func:`plot_trials` draws, as in
:mod:`nn_gpu.analysis.plots`, whose headless figure and atomic PNG writer it uses.
"""

import csv
import io
import math
import shlex

from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import TrialState

from ..io.fileio import atomic_write
from ..presets.network import TRAIN_DEFAULTS, as_arguments
from .study import interrupted

#: User attributes written to the CSV after the accuracy, and after the params.
RUN_COLUMNS = ("best_epoch", "epochs_run", "seconds", "seed", "worker", "host", "device")
NOTE_COLUMNS = ("stopped", "error", "interrupted", "retry_of")
#: Train options every reproduce command spells out, default or not.
ALWAYS_GIVEN = ("sizes", "epochs", "batch_size", "eta", "cost")
#: Options where 0 means "off", as on the command line: the same as None.
PATIENCE_OPTIONS = ("eta_schedule", "early_stopping")
#: The picture: at most this many panels a row, each this big (inches), a
#: strip for the colour bar, and the height of the title and legend.
PANEL_COLUMNS = 3
PANEL_SIZE = (3.8, 3.0)
COLORBAR_WIDTH = 0.9
HEADING_HEIGHT = 0.9
COLORMAP = "viridis"
PRUNED_COLOR = "0.55"
#: Points in one category are spread over this fraction of the gap between
#: categories, so that equal values do not hide each other.
CATEGORY_SPREAD = 0.3
#: A log axis spanning fewer decades than this gets a label at 1, 2 and 5 of each.
NARROW_DECADES = 2
#: How far the accuracy axis reaches below the lowest of the best nine tenths
#: of the trials, in spreads of those nine tenths.
FLOOR_SPREAD = 2
#: Room below the floor and above the best, as a fraction of the range between.
FLOOR_MARGIN = 0.05


# ------------------------------------------------------------------ text
def _plural(count, word):
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def counts_line(trials):
    """How far the study got, e.g. "20 trials: 12 complete, 7 pruned, 1 failed";
    running, waiting and interrupted trials are named only when there are some."""
    states = [t.state for t in trials]
    cut_short = sum(map(interrupted, trials))
    parts = [f"{states.count(TrialState.COMPLETE)} complete",
             f"{states.count(TrialState.PRUNED)} pruned",
             f"{states.count(TrialState.FAIL) - cut_short} failed"]
    parts += [f"{count} {word}" for count, word in
              ((cut_short, "interrupted"), (states.count(TrialState.RUNNING), "running"),
               (states.count(TrialState.WAITING), "waiting")) if count]
    return f"{_plural(len(trials), 'trial')}: {', '.join(parts)}"


def _param_text(params, name):
    """A hyper-parameter as the table shows it: floats to 4 significant
    digits, "-" where the trial did not use it (hidden stays "[100, 30]")."""
    if name not in params:
        return "-"
    value = params[name]
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def ranked(trials):
    """The complete trials, best validation accuracy first (of equals, the
    earlier trial first)."""
    return sorted((t for t in trials if t.state == TrialState.COMPLETE),
                  key=lambda t: (-t.value, t.number))


def top_table(trials, top=10):
    """The ``top`` complete trials, best validation accuracy first (the
    earlier trial of equals first), with their hyper-parameters, as a
    fixed-width text table."""
    best = ranked(trials)[:top]
    if not best:
        return "no trial has completed yet"
    names = sorted({name for t in best for name in t.params})
    header = ["RANK", "TRIAL", "VALIDATION", "EPOCH", *names, "SECONDS"]
    rows = []
    for rank, trial in enumerate(best, 1):
        seconds = trial.user_attrs.get("seconds")
        rows.append([str(rank), str(trial.number), f"{100 * trial.value:.2f}%",
                     str(trial.user_attrs.get("best_epoch", "-")),
                     *(_param_text(trial.params, name) for name in names),
                     "-" if seconds is None else f"{seconds:.1f}"])
    # Words (cost, activation, hidden...) read best left-aligned, numbers right-aligned.
    words = {name for name in names if any(isinstance(t.params.get(name), str) for t in best)}
    aligns = ["<" if column in words else ">" for column in header]
    widths = [max(map(len, column)) for column in zip(header, *rows)]
    return "\n".join("  ".join(f"{cell:{align}{width}}" for cell, align, width in
                               zip(row, aligns, widths)).rstrip()
                     for row in [header, *rows])


# ------------------------------------------------------------------- CSV
def write_csv(trials, path):
    """Every trial, one row each in trial order, to ``path`` (replaced
    atomically): its state, accuracy, run details, one ``param_NAME`` column
    per hyper-parameter of any trial (empty where unused), and why it
    stopped or failed. Floats keep every digit."""
    names = sorted({name for t in trials for name in t.params})
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["number", "state", "validation_accuracy", *RUN_COLUMNS,
                     *(f"param_{name}" for name in names), *NOTE_COLUMNS])
    for trial in sorted(trials, key=lambda t: t.number):
        writer.writerow([trial.number, trial.state.name.lower(), trial.value,
                         *(trial.user_attrs.get(key) for key in RUN_COLUMNS),
                         *(trial.params.get(name) for name in names),
                         *(trial.user_attrs.get(key) for key in NOTE_COLUMNS)])
    # Encoded here, not by the locale: error messages may hold any character.
    with atomic_write(path, "wb") as handle:
        handle.write(text.getvalue().encode("utf-8"))


# --------------------------------------------------------------- picture
def _accuracies(trials):
    """(complete, pruned): (trial, validation accuracy in %) of each trial
    with one to show; a pruned trial's is that of the last epoch it reported."""
    complete = [(t, 100 * t.value) for t in trials
                if t.state == TrialState.COMPLETE and t.value is not None]
    pruned = [(t, 100 * t.intermediate_values[max(t.intermediate_values)]) for t in trials
              if t.state == TrialState.PRUNED and t.intermediate_values]
    return complete, pruned


def _distributions(trials):
    """Each hyper-parameter name of ``trials``, sorted, with its distribution."""
    found = {}
    for trial in trials:
        for name, distribution in trial.distributions.items():
            found.setdefault(name, distribution)
    return dict(sorted(found.items()))


def _x_positions(points, name, distribution):
    """Where each of ``points`` that used ``name`` lies on its panel's x axis,
    with its accuracy and trial: a category's index (spread a little by trial
    number), or the value itself."""
    placed = []
    for trial, accuracy in points:
        if name not in trial.params:
            continue
        value = trial.params[name]
        if isinstance(distribution, CategoricalDistribution):
            spread = ((trial.number * 0.618034) % 1 - 0.5) * CATEGORY_SPREAD  # golden ratio
            value = distribution.choices.index(value) + spread
        placed.append((value, accuracy, trial.number))
    return placed


def _log_axis(ax):
    """A log x axis; where the values span less than two decades (one label
    or none by default), plain labels at 1, 2 and 5 of each decade."""
    from matplotlib.ticker import LogLocator, NullFormatter, StrMethodFormatter

    ax.set_xscale("log")
    low, high = ax.get_xlim()
    if math.log10(high / low) < NARROW_DECADES:
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())


def _accuracy_floor(accuracies):
    """The lowest accuracy drawn to scale where a few trials (under a tenth)
    lie far below the rest, as a diverged one does at 10%: the lowest of
    the other nine tenths less twice their spread, so that these do not
    squash the good trials into a line. None where no trial is that low."""
    decile = sorted(accuracies)[len(accuracies) // 10]
    floor = decile - FLOOR_SPREAD * (max(accuracies) - decile)
    return floor if min(accuracies) < floor else None


def _scatter(ax, points, floor, norm=None):
    """Trials at (x, accuracy, number): coloured by number on ``norm``, else
    grey rings; those below ``floor`` as triangles on it, so none is lost."""
    if norm is None:
        style = {"facecolors": "none", "edgecolors": PRUNED_COLOR, "linewidths": 1.0, "zorder": 2}
    else:
        style = {"cmap": COLORMAP, "norm": norm, "edgecolors": "0.2", "linewidths": 0.4,
                 "zorder": 3}
    below = [floor is not None and accuracy < floor for _, accuracy, _ in points]
    for marker, low in (("o", False), ("v", True)):
        part = [point for point, is_below in zip(points, below) if is_below == low]
        if not part:
            continue
        x, y, numbers = zip(*part)
        colours = {} if norm is None else {"c": numbers}
        ax.scatter(x, [floor] * len(y) if low else y, s=28, marker=marker, **colours, **style)


def _draw_panel(ax, name, distribution, complete, pruned, norm, floor):
    """One hyper-parameter: complete trials coloured by number, pruned ones grey."""
    _scatter(ax, _x_positions(complete, name, distribution), floor, norm)
    _scatter(ax, _x_positions(pruned, name, distribution), floor)
    if isinstance(distribution, CategoricalDistribution):
        labels = [str(choice) for choice in distribution.choices]
        ax.set_xticks(range(len(labels)), labels=labels)
        ax.set_xlim(-0.5, len(labels) - 0.5)
        if sum(map(len, labels)) > 24:
            ax.tick_params(axis="x", labelrotation=30)
            for label in ax.get_xticklabels():
                label.set_horizontalalignment("right")
    elif getattr(distribution, "log", False):
        _log_axis(ax)
    elif isinstance(distribution, IntDistribution):
        ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel(name)
    ax.grid(True, alpha=0.3)


def plot_trials(trials, path, study_name):
    """Validation accuracy against each hyper-parameter, one panel each, as a
    PNG written atomically to ``path``: complete trials coloured by trial
    number, pruned ones as grey rings at the last epoch they reported.
    ValueError, and no file, when no trial has an accuracy to show."""
    complete, pruned = _accuracies(trials)
    if not complete and not pruned:
        raise ValueError("no finished trial to plot")
    distributions = _distributions(t for t, _ in complete + pruned)
    if not distributions:
        raise ValueError("no hyper-parameter to plot: the study searched none")
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    from ..analysis.plots import DEFAULT_DPI, new_figure, save_png

    cols = min(PANEL_COLUMNS, len(distributions))
    rows = math.ceil(len(distributions) / cols)
    fig = new_figure((cols * PANEL_SIZE[0] + COLORBAR_WIDTH,
                      rows * PANEL_SIZE[1] + HEADING_HEIGHT), DEFAULT_DPI)
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True).ravel()
    numbers = [t.number for t, _ in complete] or [0]
    norm = Normalize(min(numbers), max(max(numbers), min(numbers) + 1))
    accuracies = [accuracy for _, accuracy in complete + pruned]
    floor = _accuracy_floor(accuracies)
    for ax, (name, distribution) in zip(axes, distributions.items()):
        _draw_panel(ax, name, distribution, complete, pruned, norm, floor)
    for ax in axes[len(distributions):]:
        ax.set_axis_off()
    for ax in axes[::cols]:
        ax.set_ylabel("validation accuracy (%)")
    keys = []
    if pruned:
        keys.append((Line2D([], [], linestyle="none", marker="o", markerfacecolor="none",
                            markeredgecolor=PRUNED_COLOR), "pruned (last epoch reported)"))
    if floor is not None:
        margin = FLOOR_MARGIN * (max(accuracies) - floor)
        axes[0].set_ylim(floor - margin, max(accuracies) + margin)  # shared by every panel
        keys.append((Line2D([], [], linestyle="none", marker="v", color="0.3"),
                     f"below {floor:.1f}% (drawn at {floor:.1f}%)"))
    if keys:
        fig.legend(*zip(*keys), loc="outside lower center", ncols=len(keys), fontsize=9,
                   frameon=False)
    if complete:
        colorbar = fig.colorbar(ScalarMappable(norm, COLORMAP), ax=list(axes), label="trial",
                                shrink=0.9, aspect=30)
        colorbar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(f"Validation accuracy against each hyper-parameter ({study_name})",
                 fontsize=11)
    save_png(fig, path)


# --------------------------------------------------------------- rerun it
def reproduce_command(options, train_size, seed, dtype="float32"):
    """The ``nn-gpu train`` command line that reruns a trial: its sizes,
    epochs, batch size, eta and cost always, other options of
    :data:`~nn_gpu.presets.network.TRAIN_DEFAULTS` where they differ from the default
    (never ``monitor``), then the training-set size, seed and dtype. Floats
    keep every digit, so the rerun trains the same network."""
    unknown = sorted(set(options) - set(TRAIN_DEFAULTS))
    if unknown:
        raise ValueError(f"not nn-gpu train options: {', '.join(unknown)}")
    chosen = {}
    for key, default in TRAIN_DEFAULTS.items():
        value = options.get(key, default)
        if key in PATIENCE_OPTIONS:
            value = value or None  # 0 is "off", which `--eta-schedule 0` would refuse
        if key in ALWAYS_GIVEN or (key != "monitor" and value != default):
            chosen[key] = value
    chosen.update(train_size=train_size, seed=seed, dtype=None if dtype == "float32" else dtype)
    return " ".join(shlex.quote(word) for word in ["nn-gpu", "train", *as_arguments(chosen)])
