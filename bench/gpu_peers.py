"""The same SGD epoch on a GPU, several ways, for one side-by-side table.

The book's network as nn_gpu trains it: sigmoid layers, quadratic cost
C = mean over the mini-batch of ½‖a - y‖², plain SGD with η = 3.0, float32,
one shuffled pass over the examples, data already on the device. Each
``make_*`` returns ``run()`` (one epoch, device-synchronised at its end) or
raises :class:`Unavailable` with the reason:

* ``nn_gpu_fused``: CupyBackend's one-kernel epoch (numba-cuda), one block;
* ``nn_gpu_fused_grid``: the same kernel with one hidden unit per block (a
  cooperative grid, one grid barrier per step), to measure against one block;
* ``nn_gpu_cublas``: CupyBackend's cuBLAS + elementwise-kernel step loop;
* ``nn_gpu_cpu``: the NumPy backend's compiled Numba epoch;
* ``nn_gpu_per_example``, ``nn_gpu_cpu_per_example``: Nielsen's loop over the
  examples of each mini-batch (``method="per_example"``, the reference the
  batched core is measured against) on CuPy and on NumPy;
* ``torch_eager``: nn.Linear + autograd + optim.SGD, a gather per step;
* ``torch_graph``: the same step (forward, backward, optimizer) captured
  once in a CUDA graph and replayed, the batch copied into its static input;
* ``jax_scan``: the whole epoch (shuffle, every step's grad and update) one
  jitted ``lax.scan``.

Used by bench/gpu_table.py and bench/gpu_headline.py (the tables of
scripts/gpu_check.sh) and bench/test_gpu_peers.py (pytest-benchmark).
"""

import numpy

from nn_gpu.bench.timing import ETA, SEED

PEERS = ("nn_gpu_fused", "nn_gpu_fused_grid", "nn_gpu_cublas", "nn_gpu_cpu", "torch_eager",
         "torch_graph", "jax_scan")


class Unavailable(Exception):
    """This peer cannot run here (the message says why)."""


def synthetic_data(n, sizes, seed=0):
    """(X float32 in [0, 1), integer labels, one-hot Y): MNIST's shapes; the
    timing of these epochs does not depend on the values."""
    rng = numpy.random.default_rng(seed)
    X = rng.random((n, sizes[0]), dtype=numpy.float32)
    labels = rng.integers(0, sizes[-1], n)
    return X, labels, numpy.eye(sizes[-1], dtype=numpy.float32)[labels]


def make(peer, sizes, batch, X, labels, Y):
    return globals()[f"make_{peer}"](sizes, batch, X, labels, Y)


def check(peer):
    """Raise Unavailable, quickly, where this peer cannot run at all."""
    if peer.startswith("nn_gpu_") and not peer.startswith("nn_gpu_cpu"):
        from nn_gpu.backends import cupy_status

        usable, reason = cupy_status()
        if not usable:
            raise Unavailable(reason)
        if peer.startswith("nn_gpu_fused"):
            from nn_gpu.backends.cuda.cupy_backend import numba_cuda_usable

            if not numba_cuda_usable():
                raise Unavailable("numba-cuda cannot launch kernels here")
    elif peer.startswith("torch_"):
        _torch()
    elif peer == "jax_scan":
        _jax()


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise Unavailable(f"PyTorch is not installed ({exc})") from None
    if not torch.cuda.is_available():
        raise Unavailable(f"PyTorch {torch.__version__} sees no CUDA device")
    return torch


def _jax():
    try:
        import jax
    except ImportError as exc:
        raise Unavailable(f"JAX is not installed ({exc})") from None
    if not any(d.platform == "gpu" for d in jax.devices()):
        raise Unavailable(f"JAX {jax.__version__} sees no GPU ({jax.devices()})")
    return jax


def _nn_gpu(backend_name, sizes, batch, X, labels, fused=None, blocks=1, method="batched"):
    from nn_gpu import Network
    from nn_gpu.backends import get_backend
    from nn_gpu.errors import NNGpuError
    from nn_gpu.options import TrainingSettings

    try:
        backend = get_backend(backend_name)
    except NNGpuError as exc:
        raise Unavailable(str(exc)) from None
    net = Network(sizes, backend=backend, dtype="float32", seed=SEED)
    runner = net.runner((X, labels), TrainingSettings(
        epochs=1, mini_batch_size=batch, eta=ETA, method=method))
    if fused is False:
        runner.compiled = None  # the core's loop over CuPy primitives: the cuBLAS path
    elif fused:
        from nn_gpu.backends.cuda import epoch as cuda_epoch

        if runner.compiled is None:
            raise Unavailable("fused epoch: numba-cuda cannot launch kernels here")
        runner.compiled.blocks = blocks
        runner.compiled.by_estimate = False  # timed wherever it can run, not only where it wins
        why = cuda_epoch.unsupported(runner.plan(ETA), sizes, batch, "float32", blocks=blocks)
        if why:
            raise Unavailable(f"fused epoch: {why}")
    return lambda: runner(ETA)  # ends with backend.synchronize()


def make_nn_gpu_fused(sizes, batch, X, labels, Y):
    return _nn_gpu("cupy", sizes, batch, X, labels, fused=True)


def make_nn_gpu_fused_grid(sizes, batch, X, labels, Y):
    return _nn_gpu("cupy", sizes, batch, X, labels, fused=True, blocks=sizes[1])


def make_nn_gpu_cublas(sizes, batch, X, labels, Y):
    return _nn_gpu("cupy", sizes, batch, X, labels, fused=False)


def make_nn_gpu_cpu(sizes, batch, X, labels, Y):
    return _nn_gpu("numpy", sizes, batch, X, labels)


def make_nn_gpu_per_example(sizes, batch, X, labels, Y):
    return _nn_gpu("cupy", sizes, batch, X, labels, method="per_example")


def make_nn_gpu_cpu_per_example(sizes, batch, X, labels, Y):
    return _nn_gpu("numpy", sizes, batch, X, labels, method="per_example")


def _torch_model(sizes):
    torch = _torch()
    torch.manual_seed(SEED)
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        linear = torch.nn.Linear(n_in, n_out)
        for p in linear.parameters():  # the book's N(0, 1) initialisation
            torch.nn.init.normal_(p)
        layers += [linear, torch.nn.Sigmoid()]
    model = torch.nn.Sequential(*layers).cuda()
    return torch, model, torch.optim.SGD(model.parameters(), lr=ETA)


def _quadratic(model, x, y):
    return 0.5 * ((model(x) - y) ** 2).sum(dim=1).mean()


def make_torch_eager(sizes, batch, X, labels, Y):
    torch, model, optimizer = _torch_model(sizes)
    Xd, Yd = torch.from_numpy(X).cuda(), torch.from_numpy(Y).cuda()
    n = Xd.shape[0]
    generator = torch.Generator(device="cuda").manual_seed(SEED)

    def run():
        order = torch.randperm(n, device="cuda", generator=generator)
        for start in range(0, n, batch):
            index = order[start:start + batch]
            optimizer.zero_grad(set_to_none=True)
            _quadratic(model, Xd[index], Yd[index]).backward()
            optimizer.step()
        torch.cuda.synchronize()
    return run


def make_torch_graph(sizes, batch, X, labels, Y):
    torch, model, optimizer = _torch_model(sizes)
    Xd, Yd = torch.from_numpy(X).cuda(), torch.from_numpy(Y).cuda()
    n = Xd.shape[0]
    if n % batch:
        raise Unavailable("a captured step needs mini-batches of one size")
    generator = torch.Generator(device="cuda").manual_seed(SEED)
    x, y = Xd[:batch].clone(), Yd[:batch].clone()
    side = torch.cuda.Stream()  # warm-up on a side stream, as PyTorch's docs capture
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            optimizer.zero_grad(set_to_none=True)
            _quadratic(model, x, y).backward()
            optimizer.step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    optimizer.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        _quadratic(model, x, y).backward()
        optimizer.step()

    def run():
        order = torch.randperm(n, device="cuda", generator=generator)
        Xs, Ys = Xd[order], Yd[order]  # one gather per epoch; a copy per step
        for start in range(0, n, batch):
            x.copy_(Xs[start:start + batch])
            y.copy_(Ys[start:start + batch])
            graph.replay()
        torch.cuda.synchronize()
    return run


def make_jax_scan(sizes, batch, X, labels, Y):
    jax = _jax()
    import jax.numpy as jnp

    n = X.shape[0]
    if n % batch:
        raise Unavailable("lax.scan needs mini-batches of one size")
    key = jax.random.PRNGKey(SEED)
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        key, kw, kb = jax.random.split(key, 3)
        params.append((jax.random.normal(kw, (n_out, n_in)), jax.random.normal(kb, (n_out,))))

    def loss(params, x, y):
        a = x
        for w, b in params:
            a = jax.nn.sigmoid(a @ w.T + b)
        return 0.5 * jnp.sum((a - y) ** 2) / x.shape[0]

    def step(params, xy):
        grads = jax.grad(loss)(params, *xy)
        return jax.tree.map(lambda p, g: p - ETA * g, params, grads), None

    @jax.jit
    def epoch(params, key, X, Y):
        order = jax.random.permutation(key, n)
        batches = (X[order].reshape(n // batch, batch, -1), Y[order].reshape(n // batch, batch, -1))
        return jax.lax.scan(step, params, batches)[0]

    Xd, Yd = jnp.asarray(X), jnp.asarray(Y)
    state = {"params": params, "key": key}

    def run():
        state["key"], sub = jax.random.split(state["key"])
        state["params"] = jax.block_until_ready(epoch(state["params"], sub, Xd, Yd))
    return run
