"""How much memory a request may take, checked before anything is allocated.

A network's layer sizes, or the sizes a model file or a checkpoint declares,
fix how many bytes building it will take. Asking the operating system for
more than it can give ends, at best, in a MemoryError deep inside NumPy and,
at worst, in the out-of-memory killer; so requests are compared first with
the memory available now: what the kernel reports as available
(``MemAvailable``), and under a ``ulimit -v`` what that limit still leaves.
"""


from ..errors import MemoryBudgetError


def available_bytes():
    """The bytes this process can still allocate, or None where unknown."""
    limits = []
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            with open("/proc/self/statm") as statm:
                mapped = int(statm.read().split()[0]) * resource.getpagesize()
            limits.append(max(0, soft - mapped))
    except (ImportError, OSError, ValueError):
        pass
    return min(limits) if limits else None


def size_text(nbytes):
    """Bytes in words: "1.2 GB" (an absurd size, that a forged file may
    declare, in a few characters: "3.2e+49 TB")."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:{'.1f' if nbytes < 1e16 else '.2g'}} {unit}"
    return f"{nbytes} bytes"


def parameter_count(sizes):
    """Weights and biases of a network with layer widths ``sizes``."""
    return sum(n_in * n_out + n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))


def check_fits(nbytes, what, advice):
    """Raise :class:`MemoryBudgetError` if ``nbytes`` is more than is available:
    "{what} needs 12.3 GB, more than the 8.0 GB of memory available; {advice}"."""
    available = available_bytes()
    if available is not None and nbytes > available:
        raise MemoryBudgetError(f"{what} needs {size_text(nbytes)}, more than the "
                                f"{size_text(available)} of memory available; {advice}")
