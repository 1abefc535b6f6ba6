"""The sweep's search-space file: TOML and YAML read alike, every mistake is
one line naming the file and the key, and trials get `train`'s options."""

import pytest

optuna = pytest.importorskip("optuna")  # the sweep extra
from conftest import REPO_ROOT  # noqa: E402

from nn_gpu.sweep.space import SearchSpace, SpaceError, load_space  # noqa: E402

TOML = """
name = "demo"
preset = "ch3-l2"
train_size = 1000

[fixed]
epochs = 2

[search]
eta = { low = 0.01, high = 5.0, log = true }
batch_size = { choices = [10, 20] }
hidden = { choices = [[30], [100, 30]] }
momentum = { low = 0.0, high = 0.9, step = 0.3 }
"""

YAML = """
name: demo
preset: ch3-l2
train_size: 1000
fixed: {epochs: 2}
search:
  eta: {low: 0.01, high: 5.0, log: true}
  batch_size: {choices: [10, 20]}
  hidden: {choices: [[30], [100, 30]]}
  momentum: {low: 0.0, high: 0.9, step: 0.3}
"""


def write(tmp_path, text, name="space.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_toml_and_yaml_describe_the_same_space(tmp_path):
    from_toml = load_space(write(tmp_path, TOML))
    from_yaml = load_space(write(tmp_path, YAML, "space.yaml"))
    assert from_toml.describe() == from_yaml.describe()
    assert from_toml.name == from_yaml.name == "demo"


def test_a_trial_gets_the_presets_options_with_the_fixed_and_chosen_ones_on_top(tmp_path):
    space = load_space(write(tmp_path, TOML))
    trial = optuna.trial.FixedTrial({"eta": 0.25, "batch_size": 20, "hidden": "[100, 30]",
                                     "momentum": 0.6})
    options = space.suggest(trial)
    assert options["sizes"] == [784, 100, 30, 10]           # hidden, decoded from its label
    assert (options["eta"], options["batch_size"], options["momentum"]) == (0.25, 20, 0.6)
    assert options["epochs"] == 2                            # fixed
    assert (options["cost"], options["l2"]) == ("cross_entropy", 5.0)  # the preset's
    assert options["monitor"] == []                          # trials score validation only
    assert space.options_of(trial.params) == options


def test_a_range_of_hidden_is_one_layers_width(tmp_path):
    space = load_space(write(tmp_path, '[search]\nhidden = { low = 20, high = 200, log = true }'))
    options = space.suggest(optuna.trial.FixedTrial({"hidden": 64}))
    assert options["sizes"] == [784, 64, 10]
    assert space.options_of({"hidden": 64}) == options
    assert space.name == "space"  # no name setting: the file's stem


def test_the_examples_are_valid():
    for path in sorted((REPO_ROOT / "examples").glob("sweep-*")):
        assert load_space(path).search


@pytest.mark.parametrize("text, message", [
    ("[search]\neta = { low = 0.0, high = 1.0 }", r"search\.eta\.low: must be a number in \(0"),
    ("[search]\neta = { low = 2.0, high = 1.0 }", r"search\.eta: low \(2.0\) must be below high"),
    ("[search]\neta = { low = 1.0, high = 2.0, lg = true }", r"search\.eta\.lg: unknown"),
    ("[search]\nl2 = { low = 0.0, high = 2.0, log = true }", r"search\.l2\.log: .*low > 0"),
    ("[search]\neta = { high = 2.0 }", r"search\.eta: a range needs both low and high"),
    ("[search]\neta = 3.0", r"search\.eta: must be a table"),
    ("[search]\nbatch_size = { low = 1.5, high = 20 }", r"batch_size\.low: must be a whole"),
    ("[search]\nbatch_size = { choices = [] }", r"choices: must be a non-empty list"),
    ("[search]\nbatch_size = { choices = [10, 10] }", r"lists a value twice"),
    ("[search]\ncost = { choices = ['quadratic', 'l1'] }",
     r"cost\.choices\[1\]: must be one of \"quadratic\", \"cross_entropy\""),
    ("[search]\ncost = { low = 1, high = 2 }", r"search\.cost: takes \{ choices"),
    ("[search]\nhidden = { choices = [[30], 100] }", r"hidden\.choices\[1\]: must be a list"),
    ("[search]\nhidden = { low = 0, high = 100 }", r"hidden\.low: .*whole number >= 1"),
    ("[search]\nsizes = { choices = [[784, 10]] }", r"search\.sizes: unknown option"),
    ("[search]\nexpand = { choices = [1] }", r"expand\.choices\[0\]: must be one of true"),
    ("train_size = 1000\n[search]\nbatch_size = { choices = [10, 2000] }",
     r"search\.batch_size: a mini-batch of 2000 is larger than the training set \(1000"),
    ("[fixed]\neta = 1.0\n[search]\neta = { low = 0.1, high = 2.0 }",
     r"fixed\.eta: is also in \[search\]"),
    ("[fixed]\nmomentum = 1.0\n[search]\neta = { low = 0.1, high = 2.0 }",
     r"fixed\.momentum: must be a number in \[0, 1\)"),
    ("[search]\n", r"search: is empty"),
    ("trials = 3\n[search]\neta = { low = 0.1, high = 2.0 }", r"trials: unknown setting"),
    ("preset = 'ch9'\n[search]\neta = { low = 0.1, high = 2.0 }", r"preset: unknown preset"),
    ("train_size = 60000\n[search]\neta = { low = 0.1, high = 2.0 }",
     r"train_size: must be a whole number from 1 to 50000"),
    ("[search\neta = 1", r"not valid TOML"),
])
def test_mistakes_are_one_line_naming_the_file_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(SpaceError, match=message) as caught:
        load_space(path)
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)


@pytest.mark.parametrize("name, content, message", [
    ("space.json", "{}", r"must be a \.toml, \.yaml or \.yml file"),
    ("missing.toml", None, r"cannot read the search space"),
    ("space.yaml", "- just\n- a list\n", r"expected a table of settings at the top"),
    ("space.yaml", "a: [unclosed\n", r"not valid YAML"),
])
def test_unreadable_files_are_one_line(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(SpaceError, match=message):
        load_space(path)


def test_every_searchable_value_is_checked_like_train_checks_it():
    """The same argument types as `nn-gpu train`: what train refuses, a space refuses."""
    for key, bad in [("eta", -1.0), ("l2", -0.5), ("dropout", 1.0), ("epochs", 0),
                     ("early_stopping", 0), ("activation", "softplus"), ("init", "zeros")]:
        with pytest.raises(SpaceError, match=f"search.{key}"):
            SearchSpace({"search": {key: {"choices": [bad]}}}, source="s.toml")
