"""The same training epoch written with other tools, for scale (``nn-gpu bench
--peers``, ``bench/test_peers.py``). None of them is a dependency: each peer
that cannot run here raises :class:`PeerUnavailable` with the reason.

Every peer trains the book's network as nn_gpu does: sigmoid layers,
quadratic cost C = mean over the mini-batch of ½‖a - y‖², plain SGD at η,
N(0, 1) initial parameters, one epoch of the training set in a fresh shuffled
order, float32. The data is converted once, outside the timing.
``make(name, ...)`` returns a function that trains one epoch per call and
returns when the work is done.

* ``torch autograd``: what a PyTorch user writes: nn.Linear layers,
  loss.backward(), torch.optim.SGD;
* ``torch manual``: backprop written out with preallocated tensors and
  in-place updates (addmm_), nn_gpu's batched algorithm in PyTorch;
* ``jax scan``: what a JAX user writes: jax.grad of the cost, the whole epoch
  one jitted ``lax.scan`` over the mini-batches.

(``bench/test_peers.py`` also runs Nielsen's own network.py, from a checkout
the user names: code run from a file stays in the benchmark scripts.)
"""

import contextlib
import os
import statistics
import time

import numpy

from ..backends import NumpyBackend
from ..backends.cpu.threads import configured_threads
from ..model.network import Network
from .timing import time_interleaved

PEERS = ("torch autograd", "torch manual", "jax scan")


class PeerUnavailable(Exception):
    """This peer cannot run here (the message says why)."""


def make(name, X, labels, sizes, mini_batch_size, eta, threads, seed=0):
    """A function training one epoch of peer ``name`` per call, on float32
    inputs X (n, 784) with integer ``labels``, on ``threads`` CPU threads."""
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}; choose from {', '.join(PEERS)}")
    builder = {"torch autograd": _torch_autograd, "torch manual": _torch_manual,
               "jax scan": _jax_scan}[name]
    return builder(X, labels, sizes, mini_batch_size, eta, threads, seed)


def compare_peers(training, sizes, batch_sizes, threads=None, repeats=3, eta=3.0, seed=0,
                  extra=None, clock=time.perf_counter, progress=None):
    """One row per (mini-batch, peer that runs here): the median epoch seconds
    of the peer and of nn_gpu's batched epoch, measured in turn. The peers get
    ``threads`` threads (default: SciPy's BLAS's count), and everyone runs on
    that many of the machine's cores (:func:`cpus_limited_to`); nn_gpu's
    epoch gets them fixed when ``threads`` is given, else chooses per product. ``extra``
    adds peers: name -> make(batch_size), which may raise PeerUnavailable
    (``"per_example"`` is nn_gpu's own per-example method); ``clock`` as in
    :func:`~nn_gpu.bench.timing.time_epochs`. Returns (rows, {peer: why it did
    not run})."""
    say = progress or (lambda line: None)
    peer_threads = threads or configured_threads()
    with cpus_limited_to(peer_threads):
        return _compare(training, sizes, batch_sizes, threads, peer_threads, repeats, eta, seed,
                        extra or {}, clock, say)


@contextlib.contextmanager
def cpus_limited_to(count):
    """Run the block on ``count`` of this process's CPUs (Linux; elsewhere as
    is). A thread count alone is a request some peers do not honour: XLA's CPU
    runtime asked for one thread still spreads an epoch over two cores (CPU
    time 1.7x its wall clock here). Threads started inside the block -- the
    peers' pools -- keep the limit."""
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, sorted(before)[:count])
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _compare(training, sizes, batch_sizes, threads, peer_threads, repeats, eta, seed, extra,
             clock, say):
    X, labels = training
    rows, missing = [], {}
    for batch_size in batch_sizes:
        ours = Network(sizes, backend=NumpyBackend(threads=threads), seed=seed)
        runners = {"nn_gpu": ours.epoch_runner(training, batch_size, eta)}
        makers = {name: (lambda mb, name=name: make(name, X, labels, sizes, mb, eta,
                                                    peer_threads, seed)) for name in PEERS}
        makers.update(extra)
        for name, maker in makers.items():
            try:
                runners[name] = maker(batch_size)
            except PeerUnavailable as exc:
                missing[name] = str(exc)
        say(f"mini-batch {batch_size}: {', '.join(runners)} ...")
        medians = {label: statistics.median(s)
                   for label, s in time_interleaved(runners, repeats, clock).items()}
        rows += [{"peer": name, "batch_size": batch_size, "sizes": list(sizes),
                  "threads": peer_threads, "median_seconds": medians[name],
                  "nn_gpu_median_seconds": medians["nn_gpu"],
                  "times_nn_gpu": medians[name] / medians["nn_gpu"]}
                 for name in runners if name != "nn_gpu"]
    return rows, missing


def format_peer_table(rows):
    """The rows of :func:`compare_peers` as text lines."""
    lines = [f"{'peer':<16}{'batch':>6}{'peer s':>10}{'nn_gpu s':>10}{'peer/nn_gpu':>13}"]
    lines += [f"{r['peer']:<16}{r['batch_size']:>6}{r['median_seconds']:>10.3f}"
              f"{r['nn_gpu_median_seconds']:>10.3f}{r['times_nn_gpu']:>12.1f}x" for r in rows]
    return lines


def _one_hot(labels, n_out, dtype="float32"):
    Y = numpy.zeros((len(labels), n_out), dtype)
    Y[numpy.arange(len(labels)), labels] = 1
    return Y


# ------------------------------------------------------------------ PyTorch
def import_torch(threads=None, device="cpu"):
    """The torch module, set to ``threads`` CPU threads (None: leave them),
    or :class:`PeerUnavailable` where it is not installed or, for
    ``device="cuda"``, sees no CUDA device."""
    try:
        import torch
    except ImportError as exc:
        raise PeerUnavailable(f"PyTorch is not installed ({exc})") from None
    if device == "cuda" and not torch.cuda.is_available():
        raise PeerUnavailable(f"PyTorch {torch.__version__} sees no CUDA device")
    if threads is not None:
        torch.set_num_threads(threads)
    return torch


def _torch_autograd(X, labels, sizes, mini_batch_size, eta, threads, seed):
    torch = import_torch(threads)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    X, Y = torch.from_numpy(X.astype("float32")), torch.from_numpy(_one_hot(labels, sizes[-1]))
    layers = [torch.nn.Linear(n_in, n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    model = torch.nn.Sequential(*[part for layer in layers for part in (layer, torch.nn.Sigmoid())])
    for p in model.parameters():                      # the book's N(0, 1) initialisation
        torch.nn.init.normal_(p)
    optimizer = torch.optim.SGD(model.parameters(), lr=eta)

    def epoch():
        order = torch.randperm(X.shape[0], generator=generator)
        for start in range(0, X.shape[0], mini_batch_size):
            index = order[start:start + mini_batch_size]
            x, y = X[index], Y[index]
            loss = 0.5 * ((model(x) - y) ** 2).sum(dim=1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return epoch


def _torch_manual(X, labels, sizes, mini_batch_size, eta, threads, seed):
    torch = import_torch(threads)
    generator = torch.Generator().manual_seed(seed)
    X, Y = torch.from_numpy(X.astype("float32")), torch.from_numpy(_one_hot(labels, sizes[-1]))
    m = mini_batch_size
    W = [torch.randn((n_out, n_in), generator=generator)
         for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    b = [torch.randn((n_out,), generator=generator) for n_out in sizes[1:]]
    a = [torch.empty((m, n)) for n in sizes]          # a[0]: the gathered inputs
    d = [torch.empty((m, n)) for n in sizes[1:]]
    s = [torch.empty((m, n)) for n in sizes[1:]]
    y, gb = torch.empty((m, sizes[-1])), [torch.empty((n,)) for n in sizes[1:]]

    def epoch():
        order = torch.randperm(X.shape[0], generator=generator)
        with torch.no_grad():
            for start in range(0, X.shape[0], m):
                index = order[start:start + m]
                k = index.shape[0]
                torch.index_select(X, 0, index, out=a[0][:k])
                torch.index_select(Y, 0, index, out=y[:k])
                for l in range(len(W)):                               # a = σ(a W^T + b)
                    torch.addmm(b[l], a[l][:k], W[l].t(), out=a[l + 1][:k]).sigmoid_()
                for l in range(len(W)):                               # σ'(z) = a(1 - a)
                    torch.addcmul(a[l + 1][:k], a[l + 1][:k], a[l + 1][:k], value=-1, out=s[l][:k])
                torch.sub(a[-1][:k], y[:k], out=d[-1][:k]).mul_(s[-1][:k]).mul_(eta / k)
                for l in range(len(W) - 1, 0, -1):                    # δ^l = (δ^{l+1} W) ⊙ σ'
                    torch.mm(d[l][:k], W[l], out=d[l - 1][:k]).mul_(s[l - 1][:k])
                for l in range(len(W)):                               # W -= δ^T a, b -= Σ δ
                    W[l].addmm_(d[l][:k].t(), a[l][:k], alpha=-1)
                    b[l].sub_(torch.sum(d[l][:k], 0, out=gb[l]))
    return epoch


# ---------------------------------------------------------------------- JAX
@contextlib.contextmanager
def environment_variable(name, value):
    """``os.environ[name] = value`` for the block only: the old value (or
    its absence) is back after it, whatever happened inside."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def import_jax(threads):
    """(jax, its CPU device), its CPU backend started with ``threads``
    intra-op threads; :class:`PeerUnavailable` where JAX is not installed.

    XLA reads its flags from the environment once, when its backend starts
    (the first ``jax.devices``), and has no other way in: XLA_FLAGS is set
    for the import and that start only, then given back its old value (a
    user's own XLA_FLAGS wins). A JAX already started keeps its threads."""
    flags = os.environ.get("XLA_FLAGS") or (f"--xla_cpu_multi_thread_eigen={threads > 1} "
                                            f"intra_op_parallelism_threads={threads}")
    with environment_variable("XLA_FLAGS", flags):
        try:
            import jax
        except ImportError as exc:
            raise PeerUnavailable(f"JAX is not installed ({exc})") from None
        return jax, jax.devices("cpu")[0]


def _jax_scan(X, labels, sizes, mini_batch_size, eta, threads, seed):
    if X.shape[0] % mini_batch_size:
        raise PeerUnavailable("the lax.scan epoch needs the training set to divide into "
                              "whole mini-batches")
    jax, cpu = import_jax(threads)
    import jax.numpy as jnp

    rng = numpy.random.default_rng(seed)
    params = [(jnp.asarray(rng.standard_normal((n_out, n_in)), jnp.float32),
               jnp.asarray(rng.standard_normal(n_out), jnp.float32))
              for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    X = jax.device_put(jnp.asarray(X, jnp.float32), cpu)
    Y = jax.device_put(jnp.asarray(_one_hot(labels, sizes[-1])), cpu)

    def cost(params, x, y):
        a = x
        for w, b in params:
            a = jax.nn.sigmoid(a @ w.T + b)
        return 0.5 * jnp.mean(jnp.sum((a - y) ** 2, axis=1))

    @jax.jit
    def train_epoch(params, order):
        def step(params, index):
            grads = jax.grad(cost)(params, X[index], Y[index])
            return jax.tree_util.tree_map(lambda p, g: p - eta * g, params, grads), None
        params, _ = jax.lax.scan(step, params, order.reshape(-1, mini_batch_size))
        return params

    state = {"params": params, "key": jax.random.PRNGKey(seed)}

    def epoch():
        state["key"], key = jax.random.split(state["key"])
        order = jax.random.permutation(key, X.shape[0])
        state["params"] = jax.block_until_ready(train_epoch(state["params"], order))
    return epoch

