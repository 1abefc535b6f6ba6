"""Optional: the same epoch in PyTorch, for scale. Skipped without torch,
which is never a dependency of nn_gpu (``pip install torch`` to run these).

The model and step are the book's chapter-1 network as nn_gpu trains it:
[784, 30, 10] sigmoid layers, quadratic cost C = mean over the mini-batch of
½‖a - y‖², plain SGD with eta 3.0, mini-batches of 10, float32, one epoch of
the 50,000 training examples in a shuffled order, on the CPU with as many
threads as numpy's BLAS. The data is converted to tensors once, outside the
timing. Two versions:

* ``autograd``: what a user would write: nn.Linear layers, torch.sigmoid,
  loss.backward(), torch.optim.SGD.step();
* ``manual``: backprop written out with tensor ops under torch.no_grad(),
  preallocated buffers and in-place updates (addmm_), the same algorithm as
  nn_gpu's batched core.

Both land in the same group as ``test_epoch``'s [784, 30, 10] mini-batch 10
cases, so the summary table compares them with nn_gpu directly.
"""

import pytest

from nn_gpu.benchmark import ETA, epoch_flops, group_name

torch = pytest.importorskip("torch")

SIZES = [784, 30, 10]
MINI_BATCH = 10
SEED = 0


def blas_threads():
    """Threads of numpy's BLAS (threadpoolctl), so torch gets the same number."""
    from threadpoolctl import threadpool_info

    counts = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(counts) if counts else 1


@pytest.fixture(scope="module")
def torch_data(mnist_training):
    """(X, one-hot Y) as float32 CPU tensors, converted once; threads matched."""
    threads = blas_threads()
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    X, labels = mnist_training
    X = torch.from_numpy(X.astype("float32", copy=True))
    labels = torch.from_numpy(labels)
    Y = torch.zeros((len(labels), SIZES[-1]), dtype=torch.float32)
    Y[torch.arange(len(labels)), labels] = 1
    yield X, Y, threads
    torch.set_num_threads(previous)


def record(benchmark, version, threads, train_size):
    benchmark.group = group_name(SIZES, MINI_BATCH)
    benchmark.extra_info.update({
        "backend": f"PyTorch {torch.__version__} (CPU, {threads} threads), {version}",
        "torch_threads": threads, "dtype": "float32", "method": f"torch {version}",
        "sizes": SIZES, "mini_batch_size": MINI_BATCH, "train_size": train_size,
        "epoch_flops": epoch_flops(SIZES, MINI_BATCH, train_size)})


def after(benchmark, median_of, train_size):
    seconds = median_of(benchmark)
    if seconds:
        benchmark.extra_info["examples_per_second"] = train_size / seconds


def test_torch_autograd(benchmark, torch_data, median_of):
    X, Y, threads = torch_data
    n = X.shape[0]
    generator = torch.Generator().manual_seed(SEED)
    torch.manual_seed(SEED)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = torch.nn.Linear(SIZES[0], SIZES[1])
            self.output = torch.nn.Linear(SIZES[1], SIZES[2])
            for p in self.parameters():  # the book's N(0, 1) initialisation
                torch.nn.init.normal_(p)

        def forward(self, x):
            return torch.sigmoid(self.output(torch.sigmoid(self.hidden(x))))

    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=ETA)

    def run_epoch():
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, MINI_BATCH):
            index = order[start:start + MINI_BATCH]
            x, y = X[index], Y[index]
            loss = 0.5 * ((model(x) - y) ** 2).sum(dim=1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    record(benchmark, "autograd", threads, n)
    benchmark.pedantic(run_epoch, rounds=3, warmup_rounds=1, iterations=1)
    after(benchmark, median_of, n)


def test_torch_manual_backprop(benchmark, torch_data, median_of):
    X, Y, threads = torch_data
    n = X.shape[0]
    generator = torch.Generator().manual_seed(SEED)
    n_in, n_hidden, n_out = SIZES
    with torch.no_grad():
        W1 = torch.randn((n_hidden, n_in), generator=generator)
        b1 = torch.randn((n_hidden,), generator=generator)
        W2 = torch.randn((n_out, n_hidden), generator=generator)
        b2 = torch.randn((n_out,), generator=generator)
    empty = torch.empty
    x, y = empty((MINI_BATCH, n_in)), empty((MINI_BATCH, n_out))
    a1, s1, d1 = (empty((MINI_BATCH, n_hidden)) for _ in range(3))
    a2, s2, d2 = (empty((MINI_BATCH, n_out)) for _ in range(3))
    gb1, gb2 = empty((n_hidden,)), empty((n_out,))

    def run_epoch():
        order = torch.randperm(n, generator=generator)
        with torch.no_grad():
            for start in range(0, n, MINI_BATCH):
                index = order[start:start + MINI_BATCH]
                m = index.shape[0]
                xm, ym, a1m, s1m, d1m, a2m, s2m, d2m = (
                    t[:m] for t in (x, y, a1, s1, d1, a2, s2, d2))
                torch.index_select(X, 0, index, out=xm)
                torch.index_select(Y, 0, index, out=ym)
                torch.addmm(b1, xm, W1.t(), out=a1m).sigmoid_()            # a1 = σ(x W1ᵀ + b1)
                torch.addmm(b2, a1m, W2.t(), out=a2m).sigmoid_()           # a2 = σ(a1 W2ᵀ + b2)
                torch.addcmul(a2m, a2m, a2m, value=-1, out=s2m)            # σ'(z2) = a2(1 - a2)
                torch.sub(a2m, ym, out=d2m).mul_(s2m).mul_(ETA / m)        # δ2, scaled by η/m
                torch.addcmul(a1m, a1m, a1m, value=-1, out=s1m)
                torch.mm(d2m, W2, out=d1m).mul_(s1m)                       # δ1 = (δ2 W2) ⊙ σ'(z1)
                W2.addmm_(d2m.t(), a1m, alpha=-1)                          # W2 -= δ2ᵀ a1
                b2.sub_(torch.sum(d2m, 0, out=gb2))
                W1.addmm_(d1m.t(), xm, alpha=-1)                           # W1 -= δ1ᵀ x
                b1.sub_(torch.sum(d1m, 0, out=gb1))

    record(benchmark, "manual backprop", threads, n)
    benchmark.pedantic(run_epoch, rounds=3, warmup_rounds=1, iterations=1)
    after(benchmark, median_of, n)
