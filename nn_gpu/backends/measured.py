"""Every tuned number the backends decide by, with the command that measured
it and where its figures are.

A constant here is a fact about machines, not about the math: change it when
its command, rerun, says otherwise (and update the figures it names). The
modules that use them (:mod:`.estimate`, :mod:`.cpu.epoch`,
:mod:`.cpu.small_gemm`, :mod:`.cpu.threads`) read them from here, so the
tests and benchmarks can also set them in one place.

The figures each constant rests on are in the dated entries of
``docs/log.md`` named beside it (the current tables: ``docs/performance.md``);
the machine behind them is the 2-vCPU AMD EPYC (Zen 3) VM of both pages,
except where a comment names another.
"""

# ------------------------------------------------------------------ the CPU epoch
#: Up to this many rows, a forward product of the compiled epoch is computed as
#: z^T = w a^T: OpenBLAS is faster with the mini-batch as the product's N than
#: as its M there ((10, 784)·(784, 30): 22 against 36 µs); from 100 rows the
#: plain layout wins.
#: Measured by: ``python bench/small_gemm.py --cpu-time`` (both layouts);
#: figures: docs/log.md, 2026-12-02, "CPU, busy machine and peers".
TRANSPOSED_FORWARD_MAX_ROWS = 32

#: Smallest training set (examples) whose runs compile their shape kernels
#: (:mod:`.cpu.small_gemm`). Compiling is not free and not cached on disk:
#: ~2.5 s for [784, 30, 10] at mini-batch 10 (five epochs of 50,000 images
#: take 4.1-5.2 s with the kernels, 2.3 s without), against ~70 ms saved per
#: such epoch. MNIST-sized runs make them; the small sets of tests and demos,
#: which could never earn them back, do not.
#: Measured by: five epochs of ``Network.sgd`` with and without the kernels
#: (``OPENBLAS_NUM_THREADS=1``), and ``small_gemm.dot_nt``/``update`` timed
#: alone; figures: docs/log.md, 2026-12-02, "What the kernels cost to make".
KERNEL_MIN_EXAMPLES = 20_000

#: Rows of the shuffle whose inputs and targets the compiled epoch prefetches
#: ahead of the gather: all of the next mini-batch up to this size while the
#: current one computes, and inside a larger gather this many rows ahead of
#: the row it copies. 10 to 64 measure alike.
#: Measured by: ``taskset -c 1 python bench/gather.py --cpu-time --repeats 7``;
#: figures: docs/log.md, 2026-12-02, "Prefetching the gather".
PREFETCH_ROWS = 16

# ------------------------------------------------------------ the shape kernels
#: Mini-batches whose forward products get shape kernels, by dtype: up to
#: where they measure faster (float32: 1.3-2.4x at 20-100 rows; float64: at
#: 100 rows 1.0-1.4x, so only up to 10), from 2 rows: with one, the product
#: is OpenBLAS's matrix-vector path, nearly as fast (the kernel: 1.06-1.43x),
#: and the kernel's summation order, not NumPy's, lets the mini-batch-1 epoch
#: (tanh, momentum: it amplifies rounding) drift past 1e-8 of the generic core.
#: Measured by: ``taskset -c 1 python bench/small_gemm.py --cpu-time
#: [--dtype float64]``; figures: docs/log.md, 2026-12-02, "Shape-specialised
#: kernels against OpenBLAS".
SMALL_GEMM_FORWARD_ROWS = {"float32": range(2, 101), "float64": range(2, 11)}

#: Largest w (bytes) given the update kernel at mini-batch 10: it wins at
#: 94 KiB (float32 (30, 784): 1.3-1.5x), ties at 188 KiB (float64) and at
#: 313 KiB (float32 (100, 784)).
#: Measured by: ``taskset -c 1 python bench/small_gemm.py --cpu-time``
#: (float32 and float64); figures: docs/log.md, 2026-12-02, "Shape-specialised
#: kernels against OpenBLAS".
SMALL_GEMM_MAX_UPDATE_BYTES = 128 * 1024

# ---------------------------------------------------------------- BLAS threads
#: Smallest M·N·K at which a product of the compiled epoch may use more than
#: one BLAS thread: below it OpenBLAS's hand-off costs more than a second
#: core gives (two threads pay from ~0.8-2.5 M on the 2-vCPU VM, noisily);
#: above it, :class:`.cpu.threads.ThreadChoice`'s timed probes decide.
#: Measured by: ``python bench/gemm_threads.py --rounds 7``; figures:
#: docs/log.md, 2026-12-02, "Where a second BLAS thread pays".
MIN_MNK_FOR_THREADS = 2_000_000

# ---------------------------------------------------- the device model (estimate)
# What :mod:`.estimate` predicts an epoch from. The CPU figures are fitted to
# measurements; the GPU ones are NOT measured (``docs/performance.md``, "GPU:
# not measured yet"): they are datasheet-based guesses, which the table of a
# device run (``scripts/gpu_check.sh``, bench/gpu_table.py) is to replace.

#: Seconds of one compiled-CPU-epoch step besides its FLOPs, and the FLOP rate
#: of its products: fitted to 0.6 s per epoch at mini-batch 1 and 0.1 s from
#: mini-batch 10 on, [784, 30, 10] float32 (12 µs per step at mini-batch 1),
#: on the 2-core Skylake-X machine (the 2-vCPU EPYC takes 0.13-0.17 s).
#: Measured by: ``python -m pytest bench/test_epoch.py --benchmark-only``;
#: figures: docs/log.md, 2026-11-25 (the CPU tables).
CPU_STEP_S = 10e-6
CPU_FLOPS = 70e9

#: Host time of one kernel launch on the cuBLAS path (Python, CuPy, driver).
#: Not measured: a guess, for ``scripts/gpu_check.sh``'s table to replace.
LAUNCH_S = 8e-6
#: The GEMM rate of the cuBLAS path at these sizes. Not measured (a guess).
GPU_GEMM_FLOPS = 10e12
#: The fused epoch's time per step besides its FLOPs (its ~7 barriers, one of
#: them grid-wide, and memory latencies). Not measured (a guess).
FUSED_STEP_S = 3e-6
#: One thread block's FLOP rate in the fused epoch: a quarter of one H200 SM's
#: fp32 peak by the datasheet. Not measured (a guess).
BLOCK_FLOPS = 120e9
