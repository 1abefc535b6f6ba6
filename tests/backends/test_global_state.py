"""No hidden global state: the command line leaves NumPy's float-error
settings alone (each computation that meets overflow silences it itself),
the benchmarks' peers set the environment only for the moment a library
reads it, and choosing a backend changes no backend object. (The compiled
epoch's BLAS threads: test_cpu_epoch.py.)"""

import os
import sys
import types

import numpy
import pytest

from nn_gpu import Network, cli
from nn_gpu.bench import peers
from nn_gpu.cli import info


def test_a_command_runs_with_numpy_s_error_settings_as_they_are(monkeypatch):
    seen = []
    monkeypatch.setattr(info, "cmd_presets", lambda args: seen.append(numpy.geterr()) or 0)
    with numpy.errstate(all="warn"):
        assert cli.main(["presets"]) == 0
        assert seen == [numpy.geterr()] and seen[0]["over"] == "warn"


def test_scores_of_weights_that_overflow_come_without_warnings(recwarn):
    net = Network([4, 3, 2], backend="numpy", seed=0)
    net.weights[0][...] = 3e38              # finite, but their sums overflow
    X, labels = numpy.ones((5, 4), numpy.float32), numpy.zeros(5, numpy.int64)
    with numpy.errstate(all="raise"):       # the caller's strictest setting
        assert 0 <= net.evaluate((X, labels)) <= 5
        from nn_gpu.model.metrics import probabilities

        assert probabilities(net, X).shape == (5, 2)
        assert numpy.geterr()["over"] == "raise"
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


@pytest.mark.parametrize("before", [None, "--xla_dump_to=/tmp/mine"])
def test_jax_gets_its_threads_from_an_environment_set_only_while_it_starts(monkeypatch,
                                                                           before):
    seen = {}
    jax = types.ModuleType("jax")

    def devices(kind):  # XLA reads its flags when its backend starts: here
        seen["flags"] = os.environ.get("XLA_FLAGS")
        return ["cpu0"]

    jax.devices = devices
    monkeypatch.setitem(sys.modules, "jax", jax)
    if before is None:
        monkeypatch.delenv("XLA_FLAGS", raising=False)
    else:
        monkeypatch.setenv("XLA_FLAGS", before)
    environment = dict(os.environ)
    assert peers.import_jax(1) == (jax, "cpu0")
    assert seen["flags"] == (before or "--xla_cpu_multi_thread_eigen=False "
                                       "intra_op_parallelism_threads=1")
    assert dict(os.environ) == environment


def test_the_environment_comes_back_after_an_error(monkeypatch):
    monkeypatch.delenv("NN_GPU_PROBE", raising=False)
    with pytest.raises(KeyError):
        with peers.environment_variable("NN_GPU_PROBE", "1"):
            assert os.environ["NN_GPU_PROBE"] == "1"
            raise KeyError("inside")
    assert "NN_GPU_PROBE" not in os.environ
