"""The workers of one machine: how many, on which GPU or CPU threads, and
what happens when one dies or the user presses Ctrl-C.

Each worker is a separate process (``python -m nn_gpu.sweep.worker``): a
crash, an out-of-memory kill or a stuck CUDA context takes down one worker,
not the sweep. The runner marks a dead worker's trial failed at once and
starts a new worker in its place; workers on other machines notice a dead
worker by its missing heartbeat instead (:data:`~.study.GRACE_SECONDS`).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..backends import cupy_status
from . import SETUP_FAILED
from . import study as sweep_study

#: A worker slot that crashed this often is not restarted again.
MAX_CRASHES = 3
#: After Ctrl-C, how long workers get to record their interrupted trial.
STOP_SECONDS = 60
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")


def visible_gpus(backend):
    """The CUDA devices workers may use: those in CUDA_VISIBLE_DEVICES if it is
    set, else every device CuPy sees; none for the NumPy backend or without a
    usable CuPy (then workers run on the CPU)."""
    if backend == "numpy":
        return []
    usable, _ = cupy_status()
    if not usable:
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [device.strip() for device in listed.split(",") if device.strip()]
    import cupy

    return [str(i) for i in range(cupy.cuda.runtime.getDeviceCount())]


def worker_environments(workers, gpus, cpus, threads=None):
    """The environment changes of each worker: with GPUs, worker i is pinned
    to GPU i mod #GPUs (``workers=None``: one per GPU); without, the CPU
    cores are shared out (or ``threads`` each), so that the workers' BLAS
    threads do not fight over them (``workers=None``: one worker)."""
    if workers is None:
        workers = len(gpus) or 1
    if gpus:
        return [{"CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)]} for i in range(workers)]
    threads = str(threads or max(1, cpus // workers))
    return [{name: threads for name in THREAD_VARIABLES} for _ in range(workers)]


def describe_environment(env):
    if "CUDA_VISIBLE_DEVICES" in env:
        return f"GPU {env['CUDA_VISIBLE_DEVICES']}"
    threads = env["OMP_NUM_THREADS"]
    return f"CPU, {threads} thread{'s' if threads != '1' else ''}"


@dataclass
class Worker:
    index: int
    env: dict
    process: subprocess.Popen = None
    crashes: int = 0


class Runner:
    """Start the workers, restart those that crash, stop them all on Ctrl-C."""

    def __init__(self, config, environments, storage, study, say):
        self.config, self.storage, self.study, self.say = config, storage, study, say
        self.workers = [Worker(i, env) for i, env in enumerate(environments)]
        self.deadline = (time.monotonic() + config["timeout"]
                         if config.get("timeout") is not None else None)
        self.setup_failed = False

    def start(self, worker):
        config = dict(self.config, worker=worker.index)
        if self.deadline is not None:
            config["timeout"] = max(0.0, self.deadline - time.monotonic())
        env = {**os.environ, **worker.env}
        package_root = str(Path(__file__).resolve().parents[2])  # where nn_gpu is imported from
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        # A session of its own: Ctrl-C reaches the runner only, which then
        # stops each worker exactly once, so no trial is left half-recorded.
        # The config goes through a pipe, not argv, where `ps` would show the
        # storage URL's password to every user of the machine.
        worker.process = subprocess.Popen(
            [sys.executable, "-m", "nn_gpu.sweep.worker"], env=env, stdin=subprocess.PIPE,
            text=True, start_new_session=True)
        with worker.process.stdin as pipe:
            pipe.write(json.dumps(config))
        self.say(f"Worker {worker.index} started (pid {worker.process.pid}, "
                 f"{describe_environment(worker.env)})")

    def run(self):
        """Run until every worker has finished; return "done", "interrupted" or
        "setup failed"."""
        for worker in self.workers:
            self.start(worker)
        try:
            while any(w.process is not None for w in self.workers):
                time.sleep(0.2)
                for worker in self.workers:
                    self.check(worker)
        except KeyboardInterrupt:
            self.stop_all()
            return "interrupted"
        return "setup failed" if self.setup_failed else "done"

    def check(self, worker):
        """Handle ``worker``'s exit, if it has exited."""
        if worker.process is None or worker.process.poll() is None:
            return
        code, pid = worker.process.returncode, worker.process.pid
        worker.process = None
        if code == 0:
            return
        if code == SETUP_FAILED:
            self.setup_failed = True
            self.stop_all()
            return
        why = f"worker {worker.index} (pid {pid}) died: {exit_reason(code)}"
        failed = sweep_study.fail_trials_of(self.storage, self.study, socket.gethostname(),
                                            pid, why)
        lost = f"; trial {', '.join(map(str, failed))} marked failed" if failed else ""
        self.say(f"{why}{lost}")
        worker.crashes += 1
        timed_out = self.deadline is not None and time.monotonic() >= self.deadline
        if sweep_study.is_done(self.study, self.config["trials"]) or timed_out:
            return
        if worker.crashes >= MAX_CRASHES:
            self.say(f"Worker {worker.index} crashed {worker.crashes} times; not restarting it")
            return
        self.start(worker)

    def stop_all(self):
        """Interrupt every worker once (each records its trial as interrupted),
        wait for them, and kill the ones that do not stop in time (or when
        Ctrl-C is pressed again)."""
        running = [w for w in self.workers if w.process is not None]
        for worker in running:
            worker.process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + STOP_SECONDS
        try:
            for worker in running:
                try:
                    worker.process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
        except KeyboardInterrupt:
            pass  # a second Ctrl-C: stop waiting
        for worker in running:
            if worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait()
                sweep_study.fail_trials_of(self.storage, self.study, socket.gethostname(),
                                           worker.process.pid, "killed: did not stop on Ctrl-C")
            worker.process = None


def exit_reason(code):
    """A worker's exit status in words."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"
