"""A counter-based random stream for dropout masks on the GPU.

Each mask element's uniform u is a hash of (the stream's key for that mask,
the element's index): splitmix64's finaliser, as in Steele et al.'s
SplittableRandom. Nothing is carried between draws but two integers -- the
seed and how many masks were drawn -- so a checkpoint that saves them
resumes the very same masks (CuPy's own generator keeps its state on the
device, where a checkpoint does not see it). The ``i``-th mask drawn uses
key ``mix(seed·γ + i)``; with one mask per hidden layer per step, that is a
stream keyed by (seed, epoch, step, layer).

:data:`KERNEL` is the CUDA body (a CuPy ``ElementwiseKernel``) and
:func:`uniform` its NumPy twin, which the tests hold it to.
"""

import numpy

GAMMA = 0x9E3779B97F4A7C15  # 2^64 / golden ratio, splitmix64's increment
_MASK = 2**64 - 1

#: m = [u >= p] / (1 - p) with u = mix(key + (i + 1)·γ) / 2^64, 53 bits.
KERNEL = ("unsigned long long x = key + (unsigned long long)(i + 1) * 0x9E3779B97F4A7C15ull; "
          "x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull; "
          "x = (x ^ (x >> 27)) * 0x94D049BB133111EBull; "
          "x = x ^ (x >> 31); "
          "m = (double)(x >> 11) * 1.1102230246251565e-16 >= p ? keep_scale : (T)0")


def mix(x):
    """splitmix64's finaliser on a Python int (mod 2^64)."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def uniform(key, size):
    """The u of KERNEL for elements 0..size-1, in float64 on the host."""
    with numpy.errstate(over="ignore"):
        x = numpy.uint64(key) + (numpy.arange(1, size + 1, dtype=numpy.uint64)
                                 * numpy.uint64(GAMMA))
        x = (x ^ (x >> numpy.uint64(30))) * numpy.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> numpy.uint64(27))) * numpy.uint64(0x94D049BB133111EB)
        x = x ^ (x >> numpy.uint64(31))
    return (x >> numpy.uint64(11)).astype(numpy.float64) * 2.0**-53


class CounterStream:
    """The dropout stream of one training run: ``next_key()`` per mask.

    ``bit_generator.state`` reads and sets the (seed, draws) pair as
    ``numpy.random.Generator``'s does its state, so a checkpoint saves and
    restores either kind of generator the same way.
    """

    def __init__(self, seed):
        self.seed, self.draws = int(seed) & _MASK, 0

    def next_key(self):
        key = mix((self.seed * GAMMA + self.draws) & _MASK)
        self.draws += 1
        return key

    @property
    def bit_generator(self):
        return self

    @property
    def state(self):
        return {"counter_stream": "splitmix64", "seed": self.seed, "draws": self.draws}

    @state.setter
    def state(self, state):
        if state.get("counter_stream") != "splitmix64":
            raise ValueError(f"not a counter-stream state: {state!r}")
        self.seed, self.draws = int(state["seed"]), int(state["draws"])
