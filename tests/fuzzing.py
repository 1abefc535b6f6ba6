"""Helpers of the fuzz tests (test_fuzz.py, test_predict.py): Hypothesis
settings, a cap on the memory a call may allocate, and byte mutations."""

import contextlib
import os
import traceback

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

#: NN_GPU_FUZZ_SCALE=20 runs 20 times as many examples, drawn afresh each run
#: (the default run is derandomized: the same examples every time).
SCALE = float(os.environ.get("NN_GPU_FUZZ_SCALE") or 1)


def fuzz(examples):
    return settings(max_examples=max(1, round(examples * SCALE)), deadline=None,
                    derandomize=SCALE == 1, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow, HealthCheck.data_too_large])


@contextlib.contextmanager
def memory_cap(extra=1 << 30):
    """Fail any allocation beyond what the process maps now plus ``extra``
    bytes with MemoryError (RLIMIT_AS; Linux only, a no-op elsewhere)."""
    try:
        import resource

        with open("/proc/self/statm") as statm:
            mapped = int(statm.read().split()[0]) * resource.getpagesize()
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError):
        yield
        return
    limit = mapped + extra
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    if soft != resource.RLIM_INFINITY:
        limit = min(limit, soft)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    except BaseException as exc:
        # Let go of what the failed call's frames hold (Hypothesis keeps the
        # traceback of every failing example).
        traceback.clear_frames(exc.__traceback__)
        raise
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def mutate(data, draw):
    """Flip bits, overwrite, insert, delete or truncate at drawn positions."""
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 8))]
        elif op == "truncate":
            del data[pos:]
    return bytes(data)
