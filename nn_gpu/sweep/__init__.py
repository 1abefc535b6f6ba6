"""``nn-gpu sweep``: hyper-parameter search over `train`'s options with Optuna.

Modules: :mod:`.space` (the search-space file), :mod:`.study` (the Optuna
study: storage, sampler, pruner, resume bookkeeping), :mod:`.worker` (a
process that trains trials), :mod:`.runner` (starts and watches the workers
of one machine) and :mod:`.report` (table, CSV, plot, reproducing command);
the command line is :mod:`nn_gpu.cli.sweep`. Optuna is an optional extra
(``pip install 'nn_gpu[sweep]'``) that plain training never imports: this
package is only loaded by the ``sweep`` subcommand.
"""

#: Exit status of a worker that could not start (no data, bad storage...):
#: starting it again would fail the same way, so the sweep stops.
SETUP_FAILED = 3
