"""`nn-gpu bench` on a tiny configuration, and its FLOP counting.

The command runs in-process through conftest's ``run``.
Everything here takes a few seconds: 2,000 examples, mini-batches 10 and 100,
one timed epoch.
"""

import json
import os
import re
import threading

import pytest
from conftest import have_mnist, mnist_dir, needs_mnist, run

from nn_gpu.bench import timing as benchmark
from nn_gpu.bench.timing import Gemm, epoch_flops, step_flops, step_gemms

DATA = mnist_dir()

TINY = ["--data", str(DATA), "--train-size", "2000", "--batch-sizes", "10", "100",
        "--repeats", "1", "--methods", "batched", "per_example"]
ROW = re.compile(r"^(batched|per_example) +(\d+) +(\d+\.\d{3})([ *]) +([\d,]+) +(-|\d+\.\dx) +"
                 r"(\d+\.\d) +(\d+\.\d{3}) +(\d+\.\d)!?$")


# ----------------------------------------------------------- FLOP counting
def test_flops_of_the_book_network_by_hand():
    # [784, 30, 10], m = 10 rows:
    #   forward       2*10*784*30 + 2*10*30*10 = 470,400 + 6,000
    #   weight grads  the same                 = 470,400 + 6,000
    #   backprop      into layer 1 only:  2*10*10*30 = 6,000
    hand = 470_400 + 6_000 + 470_400 + 6_000 + 6_000
    assert hand == 958_800
    assert step_flops([784, 30, 10], 10) == hand
    assert epoch_flops([784, 30, 10], 10, 50_000) == 5_000 * hand == 4_794_000_000


def test_step_gemms_are_the_cores_products():
    assert step_gemms([784, 30, 10], 10) == [
        Gemm("forward 1", 10, 784, 30, "NT"), Gemm("forward 2", 10, 30, 10, "NT"),
        Gemm("backprop 2", 10, 10, 30, "NN"),
        Gemm("weight gradient 1", 30, 10, 784, "TN"), Gemm("weight gradient 2", 10, 10, 30, "TN")]


def test_epoch_flops_counts_the_short_last_batch():
    sizes = [784, 100, 20, 10]
    assert epoch_flops(sizes, 32, 100) == 3 * step_flops(sizes, 32) + step_flops(sizes, 4)
    assert epoch_flops(sizes, 32, 96) == 3 * step_flops(sizes, 32)
    # linear in rows, so independent of the mini-batch size
    assert epoch_flops(sizes, 1, 1000) == epoch_flops(sizes, 1000, 1000) == epoch_flops(sizes, 7, 1000)


def test_gemm_rate_is_positive_and_finite():
    from nn_gpu.backends import get_backend

    rate = benchmark.measure_gemm_rate(get_backend("numpy"), step_gemms([784, 30, 10], 10),
                                       min_seconds=0.001)
    assert 1e6 < rate < 1e15


# ------------------------------------------------------------ the command
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """One tiny bench run with --json, shared by the table and JSON tests."""
    if not have_mnist():
        pytest.skip(f"MNIST not found in {DATA}")
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    rc, out, _ = run("bench", *TINY, "--backend", "numpy", "--json", str(path))
    return rc, out, path


@needs_mnist
def test_table_has_a_row_per_method_and_batch(tiny):
    rc, out, path = tiny
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].startswith("nn-gpu bench: NumPy ") and "BLAS " in lines[0]
    assert "float32" in lines[0] and "sizes [784, 30, 10]" in lines[0]
    assert "train size 2000" in lines[0]
    assert lines[1].split() == ["method", "batch", "s/epoch", "examples/s", "speed-up", "GEMM",
                                "GFLOP/s", "floor", "s", "x", "floor"]
    rows = [ROW.match(line) for line in lines[2:6]]
    assert all(rows), lines[2:6]
    assert [(r[1], int(r[2])) for r in rows] == [
        ("batched", 10), ("per_example", 10), ("batched", 100), ("per_example", 100)]
    for r in rows:
        seconds, examples = float(r[3]), int(r[5].replace(",", ""))
        assert 0 < seconds < 60
        # examples/s is the training size over the median seconds (printed rounded to 1 ms)
        assert abs(examples * seconds - 2000) <= examples * 0.0005 + seconds + 1
        assert r[4] == ("*" if r[1] == "per_example" else " ")
        assert (r[6] == "-") == (r[1] == "per_example")
        assert float(r[7]) > 0 and float(r[8]) >= 0 and float(r[9]) >= 0
    assert "per_example: a single epoch" in out
    assert out.rstrip().endswith(f"Results written to {path}")


@needs_mnist
def test_json_schema(tiny):
    rc, out, path = tiny
    doc = json.loads(path.read_text())
    assert doc["format"] == "nn_gpu.bench" and doc["version"] == 1
    config = doc["config"]
    assert config["sizes"] == [784, 30, 10] and config["batch_sizes"] == [10, 100]
    assert config["methods"] == ["batched", "per_example"]
    assert config["dtype"] == "float32" and config["repeats"] == 1
    assert config["train_size"] == 2000 and config["backend"] == "numpy"
    assert config["data"] == str(DATA)
    assert {"nn_gpu", "python", "numpy", "backend", "blas", "date"} <= doc["environment"].keys()
    results = doc["results"]
    assert [(r["method"], r["batch_size"]) for r in results] == [
        ("batched", 10), ("per_example", 10), ("batched", 100), ("per_example", 100)]
    by_key = {(r["method"], r["batch_size"]): r for r in results}
    for r in results:
        assert r["backend"] == "numpy"
        assert r["repeats"] == 1 and len(r["seconds"]) == 1
        assert r["warmup"] == (0 if r["method"] == "per_example" else 1)
        assert r["median_seconds"] == r["seconds"][0] > 0
        assert r["examples_per_second"] == pytest.approx(2000 / r["median_seconds"])
        assert r["epoch_flops"] == epoch_flops([784, 30, 10], r["batch_size"], 2000)
        assert r["gemm_flops_per_second"] == max(r["gemm_rate_samples"]) > 0
        batched = by_key[("batched", r["batch_size"])]
        floor = min(r["epoch_flops"] / r["gemm_flops_per_second"], min(batched["seconds"]))
        assert r["floor_seconds"] == pytest.approx(floor)
        assert r["floor_clipped"] == (floor < r["epoch_flops"] / r["gemm_flops_per_second"])
        assert r["times_floor"] == pytest.approx(r["median_seconds"] / r["floor_seconds"])
        assert batched["times_floor"] >= 1
        assert r["disturbance"]["cpus"] >= 1 and isinstance(r["disturbance"]["reasons"], list)
        if r["method"] == "per_example":
            assert r["speedup_vs_per_example"] is None
        else:
            slow = by_key[("per_example", r["batch_size"])]["median_seconds"]
            assert r["speedup_vs_per_example"] == pytest.approx(slow / r["median_seconds"])


@pytest.mark.slow
@needs_mnist
def test_plot_is_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "epochs.png"
    rc, out, _ = run("bench", "--data", str(DATA), "--train-size", "500", "--batch-sizes", "10",
                     "100", "--repeats", "1", "--methods", "batched", "--backend", "numpy",
                     "--blas-threads", "1", "--plot", str(path))
    assert rc == 0, out
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["epochs.png"]  # no temporary file left
    assert "(1 thread)" in out.splitlines()[0] or "BLAS unknown" in out.splitlines()[0]
    assert "threads)" not in out.splitlines()[0]


def test_plot_without_matplotlib_is_one_line(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    rc, _, err = run("bench", "--data", str(tmp_path), "--plot", str(tmp_path / "p.png"))
    assert rc == 1
    assert err.count("\n") == 1 and "install nn_gpu[plot]" in err
    assert err.startswith("nn-gpu: error: plotting needs matplotlib")


@pytest.mark.parametrize("argv, message", [
    (["--batch-sizes", "0"], "argument --batch-sizes: must be a positive integer, got 0"),
    (["--batch-sizes", "ten"], "argument --batch-sizes: expected a positive integer, got 'ten'"),
    (["--methods", "fast"], "argument --methods: invalid choice: 'fast'"),
    (["--dtype", "float16"], "argument --dtype: invalid choice: 'float16'"),
    (["--backend", "tpu"], "argument --backend: invalid choice: 'tpu'"),
    (["--repeats", "0"], "argument --repeats: must be a positive integer, got 0"),
    (["--train-size", "60000"], "must be at most 50000"),
    (["--train-size", "100", "--batch-sizes", "10", "1000"],
     "--batch-sizes 1000 is larger than the training set (100 examples)"),
    (["--sizes", "784"], "--sizes needs at least two layers"),
    (["--sizes", "100", "30", "10"], "do not fit MNIST"),
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
])
def test_bad_arguments_are_one_line_usage_errors(argv, message, tmp_path):
    rc, out, err = run("bench", "--data", str(tmp_path), *argv)
    assert rc == 2
    assert out == ""
    assert err.count("\n") == 1, err
    # (argparse reports unknown options from the top-level parser: "nn-gpu: error:")
    assert re.match(r"nn-gpu( bench)?: error: ", err) and message in err, err


def test_unwritable_json_path_fails_before_measuring(tmp_path):
    rc, _, err = run("bench", "--data", str(tmp_path), "--json",
                     str(tmp_path / "missing" / "b.json"))
    assert rc == 1 and err.count("\n") == 1 and "does not exist" in err


def test_missing_data_is_one_line(tmp_path):
    rc, _, err = run("bench", "--data", str(tmp_path / "nowhere"), "--batch-sizes", "10")
    assert rc == 1 and err.count("\n") == 1 and "MNIST directory not found" in err


def test_help_lists_every_option():
    rc, out, _ = run("bench", "--help")
    assert rc == 0
    for option in ("--data", "--backend", "--sizes", "--batch-sizes", "--methods", "--dtype",
                   "--repeats", "--train-size", "--json", "--plot", "--blas-threads"):
        assert option in out


# ------------------------------------------------ --busy, --peers, --threads
@pytest.mark.slow
@needs_mnist
def test_busy_times_the_thread_settings_with_a_core_kept_busy(tmp_path):
    path = tmp_path / "busy.json"
    rc, out, _ = run("bench", "--data", str(DATA), "--train-size", "1000", "--batch-sizes", "100",
                     "--repeats", "1", "--busy", "--json", str(path))
    assert rc == 0
    assert re.search(r"^784-30-10 +100( +\d+\.\d{3}){3} +\d+\.\d\dx$", out, re.M)
    result, = json.loads(path.read_text())["results"]
    assert set(result["seconds"]) == {"chosen", "1 thread", "all threads"}
    assert result["busy"] == 1


@pytest.mark.slow
@needs_mnist
def test_peers_compares_with_what_is_installed_and_says_what_is_not():
    rc, out, _ = run("bench", "--data", str(DATA), "--train-size", "1000", "--batch-sizes", "100",
                     "--repeats", "1", "--peers", "--threads", "1")
    assert rc == 0
    for peer in ("torch autograd", "torch manual", "jax scan"):
        assert re.search(rf"^{peer} +100 +\d+\.\d{{3}} +\d+\.\d{{3}} +\d+\.\dx$", out, re.M) \
            or re.search(rf"^{peer}: skipped, .+ is not installed", out, re.M)


@pytest.mark.parametrize("argv, message", [
    (["--busy", "--peers"], "--busy compares thread settings itself"),
    (["--busy", "--threads", "2"], "--busy compares thread settings itself"),
    (["--peers", "--dtype", "float64"], "measure float32 epochs"),
    (["--threads", "0"], "must be a positive integer"),
])
def test_bad_cpu_comparison_options_are_one_line(argv, message):
    rc, _, err = run("bench", "--data", str(DATA), *argv)
    assert rc == 2
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux's")
def test_peers_run_on_as_many_cores_as_they_have_threads_and_give_them_back():
    from nn_gpu.bench.peers import cpus_limited_to

    before = os.sched_getaffinity(0)
    with cpus_limited_to(1):
        assert len(os.sched_getaffinity(0)) == 1
        seen = []
        worker = threading.Thread(target=lambda: seen.append(os.sched_getaffinity(0)))
        worker.start()
        worker.join()
        assert len(seen[0]) == 1          # a pool started inside keeps the limit
    assert os.sched_getaffinity(0) == before
