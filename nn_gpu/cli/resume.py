"""``nn-gpu train --resume DIR``: what a checkpoint decides, and what only the
command line may.

A checkpoint written by ``train`` keeps the settings the run was trained
with, for either kind of network. A resume trains on with exactly those,
each checked first with the very argument type the command line uses (a
conv run's layers as a layers file's are), errors naming the checkpoint.
Nothing else is taken from it: outputs and other side effects
(``--history``, ``--save``, ``--quiet``, ``--data``, ``--backend``) come only
from the command line of the run in progress, since a checkpoint is data
that anyone may hand you.

Options given with ``--resume`` that can change mid-run (:data:`MAY_CHANGE`)
are applied, and the first line says so; any other is refused, in one line.
"""

import argparse

from ..convnet.layers import layer_from_spec
from ..convnet.network import MODEL_FORMAT as CONV_FORMAT
from ..convnet.network import check_layers
from ..errors import CheckpointError, InvalidArgumentError
from ..model.network import MODEL_FORMAT as NETWORK_FORMAT

#: What a resume may change: how long to go on, at which η, and where the
#: results go and on how many BLAS threads (``--eta``: the η of the epochs still to run).
MAY_CHANGE = ("epochs", "eta", "history", "save", "quiet", "backend", "threads", "data")
#: The settings a checkpoint keeps besides the resolved options (and a conv run's layers).
STORED = ("preset", "dtype", "seed", "method", "train_size", "digit", "save_best")
#: The ones that may be None (not set).
OPTIONAL = ("preset", "seed", "train_size", "digit", "save_best", "eta_schedule",
            "early_stopping")
#: Options of `train` that are neither the run's settings nor in MAY_CHANGE.
NOT_SETTINGS = ("resume", "checkpoint_dir", "command", "func")
#: The kind of network of each model format a checkpoint may hold.
KINDS = {NETWORK_FORMAT: "mlp", CONV_FORMAT: "conv"}


def flag(dest):
    return "--" + dest.replace("_", "-")


def given_options(parser, args):
    """The dests of the options ``args`` sets to other than their default."""
    return [action.dest for action in parser._actions
            if action.dest not in NOT_SETTINGS and action.dest != "help"
            and getattr(args, action.dest, None) != action.default]


def refuse_fixed(parser, args):
    """A usage error for options given with --resume that a resume cannot change."""
    fixed = [flag(dest) for dest in given_options(parser, args) if dest not in MAY_CHANGE]
    if fixed:
        parser.error(f"--resume continues the checkpointed run as it was trained, so "
                     f"{', '.join(fixed)} cannot be given with it; a resume may change only "
                     f"{', '.join(map(flag, MAY_CHANGE))} (--eta: for the epochs still to run)")


def kind_of(meta, where):
    """"mlp" or "conv": the kind of network the checkpoint's metadata holds."""
    kind = KINDS.get(meta["model"].get("format"))
    if kind is None:
        raise CheckpointError(f"{where}: this checkpoint holds no network `nn-gpu train` "
                              "trains; resume it from Python with its model's sgd")
    return kind


def _damaged(where, what):
    return CheckpointError(f"{where}: its stored settings are damaged or not "
                           f"`nn-gpu train`'s: {what}; resume it from a good copy")


def stored_settings(parser, config, where, option_keys, conv=False):
    """The settings of ``config`` (a checkpoint's), dest -> value, each checked
    by the argument type (and choices) of ``parser``'s option and converted
    as the command line converts it; ``option_keys`` are the options of the
    run's kind, and a ``conv`` run's ``layers`` are checked as layers. Raises
    :class:`CheckpointError` naming ``where`` for anything else: an unknown
    key, a missing one, a bad value."""
    if not isinstance(config, dict) or not isinstance(config.get("options"), dict):
        raise CheckpointError(f"{where}: this checkpoint was not written by `nn-gpu train`; "
                              "resume it from Python with its model's sgd")
    settings = {key: value for key, value in config.items() if key != "options"}
    settings.update(config["options"])
    layers = settings.pop("layers", None) if conv else None
    expected = set(STORED) | set(option_keys)
    unknown = sorted(set(settings) - expected)
    if unknown:
        raise _damaged(where, f"unknown setting {unknown[0]!r}")
    missing = sorted(expected - set(settings) - set(OPTIONAL))
    if missing:
        raise _damaged(where, f"no {missing[0]!r}")
    settings = {**dict.fromkeys(OPTIONAL), **settings}
    actions = {action.dest: action for action in parser._actions}
    checked = {}
    for dest, value in settings.items():
        try:
            checked[dest] = _parse(actions[dest], value, dest in OPTIONAL)
        except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
            raise _damaged(where, f"{dest} {_short(value)}: {exc}") from None
    checked["save_best"] = bool(checked["save_best"])
    if conv:
        checked["layers"] = stored_layers(layers, where)
    return checked


def stored_layers(specs, where):
    """A conv run's stored layer descriptions, checked as a layers file's are."""
    if not isinstance(specs, list):
        raise _damaged(where, "no list of layers")
    try:
        return [layer.spec() for layer in check_layers([layer_from_spec(s) for s in specs])]
    except (InvalidArgumentError, TypeError, ValueError) as exc:
        raise _damaged(where, f"layers: {' '.join(str(exc).split())}") from None


def _parse(action, value, optional):
    """``value`` as the command line would have parsed it for ``action``."""
    if value is None:
        if optional:
            return None
        raise ValueError("must be set")
    if isinstance(action, argparse.BooleanOptionalAction) or action.nargs == 0:
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value
    many = action.nargs in ("+", "*")
    if many != isinstance(value, list):
        raise ValueError("must be a list" if many else "must be a single value")
    if many and action.nargs == "+" and not value:
        raise ValueError("must not be empty")
    parsed = [_parse_one(action, item) for item in (value if many else [value])]
    return parsed if many else parsed[0]


def _parse_one(action, item):
    if isinstance(item, (bool, list, dict)) or item is None:
        raise ValueError("is not a value the command line takes")
    if action.type is not None:
        parsed = action.type(str(item))
        if isinstance(item, str) and not isinstance(parsed, str):
            raise ValueError("is text, not a number")
        item = parsed
    if action.choices is not None and item not in action.choices:
        raise ValueError(f"must be one of {', '.join(map(str, action.choices))}")
    return item


def _short(value):
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Blame:
    """Stands in for the parser while stored settings are cross-checked, so
    that a problem is told as the checkpoint's, not as an option never given."""

    def __init__(self, where):
        self.where = where

    def error(self, message):
        raise CheckpointError(f"{self.where}: its stored settings do not make a run: {message}")


def read(parser, args, where, config, option_keys, conv=False):
    """(the checkpoint's settings, the changes the command line makes to
    them: flag -> (stored value, new value)), refusing options a resume
    cannot change (see :func:`stored_settings` for the other arguments)."""
    refuse_fixed(parser, args)
    stored = stored_settings(parser, config, where, option_keys, conv)
    changes = {}
    for dest in MAY_CHANGE:
        given = getattr(args, dest, None)
        if dest in stored and given is not None and given != stored[dest]:
            changes[flag(dest)] = (stored[dest], given)
    return stored, changes


def describe_changes(changes):
    """", with --epochs 10 (was 4), --eta 0.1 (was 3) for the epochs still to run" or ""."""
    if not changes:
        return ""
    parts = [f"{name} {new:g} (was {old:g})" + (" for the epochs still to run"
                                                 if name == "--eta" else "")
             for name, (old, new) in changes.items()]
    return ", with " + ", ".join(parts)
