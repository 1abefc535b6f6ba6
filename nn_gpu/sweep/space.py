"""The search space of ``nn-gpu sweep``: read from a TOML or YAML file,
checked in full before any trial runs, and turned into ``nn-gpu train``
options one Optuna trial at a time.

A space file (TOML shown; YAML has the same keys)::

    name = "ch3-short"        # the study's name (default: the file's stem)
    preset = "ch3-l2"         # optional: start from a `train` preset
    train_size = 10000        # the first N of MNIST's 50,000 training images
    dtype = "float32"

    [fixed]                   # `train` options every trial shares
    epochs = 8

    [search]                  # what Optuna chooses, per trial
    eta = { low = 0.02, high = 5.0, log = true }
    l2 = { low = 0.0, high = 8.0 }
    batch_size = { choices = [10, 20, 50] }
    hidden = { choices = [[30], [100], [100, 30]] }
    cost = { choices = ["quadratic", "cross_entropy"] }

Option names are those of ``nn-gpu train`` (``batch_size`` for
``--batch-size``), except ``hidden``: the hidden-layer widths, the network
being ``[784, *hidden, 10]``. Values are checked with the very argument types
``train`` uses, so a space can never hold a value ``train`` would refuse.
"""

import datetime
import json
import math
import re
import sys
from pathlib import Path

from .. import options as train_options
from ..data.mnist import NUM_CLASSES, PIXELS, TRAINING_SIZE
from ..errors import InvalidArgumentError
from ..io.fileio import read_input
from ..model.costs import COSTS
from ..options import ACTIVATIONS, DTYPES, INITS
from ..presets import network as presets

#: Searchable option -> (kind, the :mod:`nn_gpu.options` validator that checks
#: a value, as for `train`). Kinds: "float" and "int" take ranges or choices,
#: the others choices only.
OPTIONS = {
    "eta": ("float", train_options.positive_number),
    "l2": ("float", train_options.non_negative_number),
    "l1": ("float", train_options.non_negative_number),
    "momentum": ("float", train_options.unit_interval),
    "dropout": ("float", train_options.unit_interval),
    "batch_size": ("int", train_options.positive_int),
    "epochs": ("int", train_options.positive_int),
    "eta_schedule": ("int", train_options.positive_int),
    "early_stopping": ("int", train_options.positive_int),
    "hidden": ("hidden", train_options.positive_int),
    "cost": ("choice", tuple(COSTS)),
    "activation": ("choice", ACTIVATIONS),
    "init": ("choice", INITS),
    "expand": ("choice", (True, False)),
}
TOP_LEVEL = ("name", "preset", "train_size", "dtype", "fixed", "search")
MAX_SPACE_BYTES = 1 << 20  # a space file is a few hundred bytes
MAX_DEPTH = 8              # tables and lists within each other: a space needs 4
MAX_VALUES = 10_000        # values, aliases repeated: a space needs a few dozen
#: A study's name: it names the SQLite file NAME.db too, so never a path.
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
NAME_RULE = ("a name of letters, digits, '.', '_' and '-' (at most 100, the first a letter "
             "or digit), not a path")


class SpaceError(InvalidArgumentError):
    """A space file that cannot be used; the message names the file and the key."""


def read_space_file(path):
    """The space file as a dict (TOML by ``.toml``, YAML by ``.yaml``/``.yml``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise SpaceError(f"{path}: a search space must be a .toml, .yaml or .yml file")
    try:
        text = read_input(path, MAX_SPACE_BYTES, "search space").decode("utf-8")
    except OSError as exc:  # missing, a directory, a FIFO, too large
        raise SpaceError(f"{path}: cannot read the search space ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise SpaceError(f"{path}: not a text file (expected TOML or YAML)") from None
    try:
        if suffix == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover - Python 3.10
                import tomli as tomllib
            document = tomllib.loads(text)
        else:
            import yaml

            document = yaml.safe_load(text)
    except Exception as exc:  # tomllib.TOMLDecodeError, yaml.YAMLError
        detail = " ".join(str(exc).split())
        raise SpaceError(f"{path}: not valid {suffix[1:].upper()}: {detail}") from None
    if not isinstance(document, dict):
        raise SpaceError(f"{path}: expected a table of settings at the top, got "
                         f"{type(document).__name__}")
    return document


def plain_data(document, source):
    """``document`` as JSON's kinds of data (tables with text keys, lists,
    text, numbers, true/false, null), checked in bounded work: dates and
    times (TOML's and YAML's unquoted ``2024-01-01``) become their ISO text,
    anything else (YAML's sets and binary, keys that are not text) is one
    line naming the key. YAML's aliases may repeat a value many times over
    (a "billion laughs"): counted with repeats, there may be at most
    :data:`MAX_VALUES` values and :data:`MAX_SPACE_BYTES` characters of
    text, nested at most :data:`MAX_DEPTH` deep."""
    budget = {"values": MAX_VALUES, "text": MAX_SPACE_BYTES}

    def plain(value, where, depth):
        budget["values"] -= 1
        budget["text"] -= len(value) if isinstance(value, str) else 0
        if budget["values"] < 0 or budget["text"] < 0:
            raise SpaceError(f"{source}: {where or 'the file'}: the file holds more than "
                             f"{MAX_VALUES:,} values or {MAX_SPACE_BYTES:,} characters of text "
                             "once YAML's aliases are repeated (a space needs a few dozen)")
        if depth > MAX_DEPTH:
            raise SpaceError(f"{source}: {where}: nested more than {MAX_DEPTH} deep")
        if isinstance(value, dict):
            bad = next((key for key in value if not isinstance(key, str)), None)
            if bad is not None:
                raise SpaceError(f"{source}: {where or 'the file'}: key {_show(bad)} is not "
                                 "a name")
            return {key: plain(item, f"{where}.{key}" if where else key, depth + 1)
                    for key, item in value.items()}
        if isinstance(value, list):
            return [plain(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
        if isinstance(value, (datetime.date, datetime.time)):  # datetime too
            return value.isoformat()
        if value is None or isinstance(value, (str, bool, int, float)):
            return value
        raise SpaceError(f"{source}: {where}: a {type(value).__name__} is not a value a "
                         "search space takes (numbers, text, true/false, lists, tables)")

    return plain(document, "", 0)


class SearchSpace:
    """What every trial shares (``base``: resolved `train` options) and what
    Optuna chooses (``search``: option -> distribution spec)."""

    def __init__(self, document, source="<space>"):
        self.source = source
        self.document = document = plain_data(document, source)
        unknown = sorted(set(document) - set(TOP_LEVEL))
        if unknown:
            self._fail(unknown[0], f"unknown setting; the file may set {', '.join(TOP_LEVEL)}")
        self.name = document.get("name", Path(source).stem)
        if not (isinstance(self.name, str) and STUDY_NAME.fullmatch(self.name)):
            if "name" not in document:
                raise SpaceError(f"{source}: its file name {self.name!r} cannot name the "
                                 f"study; add name = ... ({NAME_RULE})")
            self._fail("name", f"must be {NAME_RULE}, got {_show(self.name)}")
        self.preset = document.get("preset")
        if self.preset is not None and self.preset not in presets.PRESETS:
            self._fail("preset", f"unknown preset {self.preset!r}; choose one of "
                                 f"{', '.join(presets.PRESETS)}")
        self.train_size = document.get("train_size")
        if self.train_size is not None and not (
                _is_int(self.train_size) and 1 <= self.train_size <= TRAINING_SIZE):
            self._fail("train_size", f"must be a whole number from 1 to {TRAINING_SIZE}")
        self.dtype = document.get("dtype", "float32")
        if not isinstance(self.dtype, str) or self.dtype not in DTYPES:
            self._fail("dtype", f"must be one of {', '.join(DTYPES)}")
        fixed = self._table("fixed")
        self.search = {key: self._parse_spec(key, spec)
                       for key, spec in self._table("search").items()}
        for key, value in fixed.items():
            if key in self.search:
                self._fail(f"fixed.{key}", "is also in [search]; keep it in one of them")
            self._check_value(f"fixed.{key}", key, value)
        if not self.search:
            self._fail("search", "is empty: name at least one option to search")
        self.fixed = fixed
        self.base = presets.resolve(_as_train_options(fixed), self.preset)
        self.base["monitor"] = []  # trials measure the validation accuracy only
        self._check_batch_fits()

    # ---------------------------------------------------------- parsing
    def _fail(self, key, problem):
        raise SpaceError(f"{self.source}: {key}: {problem}")

    def _table(self, key):
        table = self.document.get(key, {})
        if not isinstance(table, dict):
            self._fail(key, "must be a table of option = value")
        return table

    def _check_known(self, where, key):
        if key not in OPTIONS:
            hint = " (the hidden layers are `hidden`)" if key == "sizes" else ""
            self._fail(where, f"unknown option{hint}; searchable: {', '.join(OPTIONS)}")

    def _check_value(self, where, key, value):
        """One value of option ``key``, checked like `train` would; returned as is."""
        self._check_known(where, key)
        kind, check = OPTIONS[key]
        if kind == "hidden":
            if not (isinstance(value, list) and all(_is_int(n) and n >= 1 for n in value)):
                self._fail(where, "must be a list of hidden-layer widths, e.g. [100, 30] "
                                  "([] for none)")
            return value
        if kind == "choice":
            if value not in check or not isinstance(value, type(check[0])):
                self._fail(where, f"must be one of {', '.join(map(_show, check))}, "
                                  f"got {_show(value)}")
            return value
        if kind == "int" and not _is_int(value) or kind == "float" and not _is_number(value):
            self._fail(where, f"must be {'a whole number' if kind == 'int' else 'a number'}, "
                              f"got {_show(value)}")
        try:
            check(value)
        except InvalidArgumentError as exc:
            self._fail(where, str(exc))
        return value

    def _parse_spec(self, key, spec):
        """``{low, high[, log][, step]}`` or ``{choices: [...]}``, normalised."""
        where = f"search.{key}"
        self._check_known(where, key)
        if not isinstance(spec, dict):
            self._fail(where, "must be a table: { low = .., high = .. } or { choices = [..] }")
        kind = OPTIONS[key][0]
        if "choices" in spec:
            extra = sorted(set(spec) - {"choices"})
            choices = spec["choices"]
            if extra:
                self._fail(f"{where}.{extra[0]}", "choices take no other setting")
            if not isinstance(choices, list) or not choices:
                self._fail(f"{where}.choices", "must be a non-empty list")
            for i, value in enumerate(choices):
                self._check_value(f"{where}.choices[{i}]", key, value)
            if len({json.dumps(c) for c in choices}) != len(choices):
                self._fail(f"{where}.choices", "lists a value twice")
            return {"choices": choices}
        if kind == "choice":
            self._fail(where, "takes { choices = [..] }")
        extra = sorted(set(spec) - {"low", "high", "log", "step"})
        if extra:
            self._fail(f"{where}.{extra[0]}", "unknown; a range has low, high, log, step")
        if "low" not in spec or "high" not in spec:
            self._fail(where, "a range needs both low and high (or use choices)")
        low, high = spec["low"], spec["high"]
        for bound, value in (("low", low), ("high", high)):
            if kind == "hidden":  # a range of one hidden layer's width
                if not (_is_int(value) and value >= 1):
                    self._fail(f"{where}.{bound}", "a range of hidden is one layer's width: a "
                                                   "whole number >= 1 (choices take lists)")
            else:
                self._check_value(f"{where}.{bound}", key, value)
        if not low < high:
            self._fail(where, f"low ({low}) must be below high ({high})")
        log = spec.get("log", False)
        if not isinstance(log, bool):
            self._fail(f"{where}.log", "must be true or false")
        if log and low <= 0:
            self._fail(f"{where}.log", "a log scale needs low > 0")
        step = spec.get("step")
        if step is not None:
            if log:
                self._fail(f"{where}.step", "cannot be combined with log")
            if not (_is_number(step) and step > 0) or kind != "float" and not _is_int(step):
                self._fail(f"{where}.step", "must be a positive "
                                            f"{'number' if kind == 'float' else 'whole number'}")
        return {"low": low, "high": high, "log": log, "step": step}

    def _check_batch_fits(self):
        examples = self.train_size or TRAINING_SIZE
        spec = self.search.get("batch_size")
        largest = (self.base["batch_size"] if spec is None
                   else max(spec["choices"]) if "choices" in spec else spec["high"])
        try:
            train_options.batch_fits(largest, examples, "a mini-batch of")
        except InvalidArgumentError as exc:
            self._fail("search.batch_size" if spec else "fixed.batch_size", f"{exc} (train_size)")

    # ---------------------------------------------------------- trials
    def suggest(self, trial):
        """The `train` options of one trial: Optuna ``trial`` chooses the searched ones."""
        chosen = {}
        for key, spec in self.search.items():
            if "choices" in spec:
                labels = [_label(key, c) for c in spec["choices"]]
                chosen[key] = _unlabel(key, trial.suggest_categorical(key, labels))
            elif OPTIONS[key][0] == "float":
                chosen[key] = trial.suggest_float(key, spec["low"], spec["high"],
                                                  log=spec["log"], step=spec["step"])
            else:  # int, or hidden as one layer's width
                value = trial.suggest_int(key, spec["low"], spec["high"], log=spec["log"],
                                          step=spec["step"] or 1)
                chosen[key] = [value] if key == "hidden" else value
        return self.options(chosen)

    def options_of(self, params):
        """The `train` options of a finished trial, from its Optuna ``params``."""
        chosen = {}
        for key, value in params.items():
            if key in self.search and "choices" in self.search[key]:
                value = _unlabel(key, value)
            elif key == "hidden":
                value = [value]
            chosen[key] = value
        return self.options(chosen)

    def options(self, chosen):
        """The full `train` options for the searched values ``chosen``."""
        return {**self.base, **_as_train_options(chosen)}

    def describe(self):
        """The space as JSON-able data, stored with the study so a changed
        file is noticed when the study is resumed."""
        return {"preset": self.preset, "train_size": self.train_size, "dtype": self.dtype,
                "fixed": self.fixed, "search": self.search}


def load_space(path):
    """Read and check the space file at ``path``."""
    return SearchSpace(read_space_file(path), source=str(path))


def _as_train_options(values):
    """Space keys -> `train` option keys (``hidden`` becomes ``sizes``)."""
    options = dict(values)
    if "hidden" in options:
        options["sizes"] = [PIXELS, *options.pop("hidden"), NUM_CLASSES]
    return options


def _label(key, value):
    """An Optuna categorical value: lists (``hidden``) become JSON text."""
    return json.dumps(value) if key == "hidden" else value


def _unlabel(key, value):
    return json.loads(value) if key == "hidden" else value


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _show(value, limit=60):
    """``value`` as JSON for a message, cut to ``limit`` characters (values
    from :func:`plain_data` are bounded, so this is too)."""
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit - 3] + "..."
