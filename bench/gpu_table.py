"""One side-by-side table of the GPU epoch against its peers (scripts/gpu_check.sh).

    PYTHONPATH=. python bench/gpu_table.py OUT_DIR [--budget SECONDS]

Rows: the peers of bench/gpu_peers.py; columns: [784, 30, 10] and
[784, 100, 10] at mini-batch 1, 10, 100, 1000, float32. Each cell is the
median of ROUNDS timed epochs after one warm-up epoch, every epoch ending
with a device synchronisation, given as seconds per 50,000-example epoch:
small mini-batches are timed over fewer examples (EXAMPLES) and scaled, so
the whole table fits the device budget. Each peer runs in its own process
(JAX, PyTorch and CuPy each hold device memory; one failing cannot take the
others down) under an equal share of ``--budget``. Writes OUT_DIR/table.md
and OUT_DIR/table.json, and prints the table.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SIZES = ([784, 30, 10], [784, 100, 10])
BATCHES = (1, 10, 100, 1000)
EXAMPLES = {1: 5_000, 10: 20_000, 100: 50_000, 1000: 50_000}
EPOCH = 50_000
ROUNDS = 3
#: Shares of the budget (1 unless said): numba-cuda compiles one kernel per cell.
WEIGHTS = {"nn_gpu_fused": 2.0, "nn_gpu_fused_grid": 2.0}


def time_peer(peer, deadline, sizes_list=SIZES, batches=BATCHES, examples=EXAMPLES):
    """{cell: seconds per 50,000 examples, or the reason it did not run},
    timing ``examples[batch]`` examples a cell; each cell is also printed as
    a JSON line as soon as it is timed, so that a peer stopped for time still
    reports the cells it finished."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import gpu_peers

    try:
        gpu_peers.check(peer)
    except gpu_peers.Unavailable as exc:
        print(json.dumps({"error": f"n/a: {exc}"}))
        return
    cells, data = {}, {}
    for sizes in sizes_list:
        for batch in batches:
            cell = f"{sizes[1]}-{batch}"
            if time.monotonic() > deadline:
                cells[cell] = "not run: out of time"
                continue
            key = (examples[batch], tuple(sizes))
            if key not in data:
                data = {key: gpu_peers.synthetic_data(examples[batch], sizes)}  # one set at a time
            X, labels, Y = data[key]
            try:
                run = gpu_peers.make(peer, sizes, batch, X, labels, Y)
                run()  # warm-up: compilation, graph capture, caches
                times = []
                for _ in range(ROUNDS):
                    started = time.perf_counter()
                    run()
                    times.append(time.perf_counter() - started)
                cells[cell] = statistics.median(times) * EPOCH / examples[batch]
            except gpu_peers.Unavailable as exc:
                cells[cell] = f"n/a: {exc}"
            except Exception as exc:  # a peer's failure is a finding, not the end of the table
                cells[cell] = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
            print(json.dumps({cell: cells[cell]}), flush=True)
    return cells


def time_all(peers, budget, script=__file__, weights=WEIGHTS):
    """{peer: its cells}: each peer timed by ``script --peer PEER --seconds S``
    in its own process, under its share of ``budget`` (by ``weights``, 1
    unless said; a share a peer leaves goes to the rest)."""
    results = {}
    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    end = time.monotonic() + budget
    for index, peer in enumerate(peers):
        shares = [weights.get(p, 1.0) for p in peers[index:]]
        share = max(5.0, (end - time.monotonic()) * shares[0] / sum(shares))
        command = [sys.executable, str(script), "--peer", peer, "--seconds", str(share * 0.8)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=share, env=env)
            stdout, stderr = done.stdout, done.stderr
            failed = None if done.returncode == 0 else f"exit {done.returncode}: {stderr[-300:]}"
        except subprocess.TimeoutExpired as exc:
            stdout, stderr = _text(exc.stdout), _text(exc.stderr)
            failed = f"not run: over the peer's {share:.0f} s share of the budget"
        sys.stderr.write(stderr[-4000:])
        results[peer] = {}
        for line in stdout.splitlines():
            if line.startswith("{"):
                results[peer].update(json.loads(line))
        if failed:
            results[peer].setdefault("error", failed.strip())
    return results


def run_all(out, budget):
    import gpu_peers

    results = time_all(gpu_peers.PEERS, budget)
    (out / "table.json").write_text(json.dumps(results, indent=1))
    table = markdown(results)
    (out / "table.md").write_text(table)
    print(table)


def _text(output):
    return output.decode(errors="replace") if isinstance(output, bytes) else (output or "")


def markdown(results, columns=None, title=None, labels=None, baseline=None):
    """The results as a markdown table, a row a peer (named ``labels[peer]``
    where given) and a column a cell; a cell that did not run is a numbered
    note saying why. With ``baseline`` (a peer), each time also shows how
    many times faster it is than that peer's in the same column."""
    columns = columns or [f"{sizes[1]}-{batch}" for sizes in SIZES for batch in BATCHES]
    title = title or ("s per 50,000-example epoch, float32, median of "
                      f"{ROUNDS} after 1 warm-up, synchronised; hidden width - mini-batch")
    labels = labels or {}
    lines = [title, "", "| peer | " + " | ".join(columns) + " |",
             "|---" * (len(columns) + 1) + "|"]
    notes = []
    for peer, cells in results.items():
        row = []
        for column in columns:
            value = cells.get(column, cells.get("error", "?"))
            reference = results.get(baseline, {}).get(column)
            if isinstance(value, float):
                faster = (f" ({reference / value:.3g}x)" if isinstance(reference, float)
                          and peer != baseline else "")
                row.append(f"{value:.4g}{faster}")
            else:
                if value not in notes:
                    notes.append(value)
                row.append(f"[{notes.index(value) + 1}]")
        lines.append(f"| {labels.get(peer, peer)} | " + " | ".join(row) + " |")
    lines += [""] + [f"[{i + 1}] {note}" for i, note in enumerate(notes)]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path)
    parser.add_argument("--budget", type=float, default=200.0)
    parser.add_argument("--peer")
    parser.add_argument("--seconds", type=float)
    args = parser.parse_args()
    if args.peer:
        time_peer(args.peer, time.monotonic() + args.seconds)
        return
    if args.out is None:
        parser.error("give the output folder")
    args.out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    run_all(args.out, args.budget)


if __name__ == "__main__":
    main()
