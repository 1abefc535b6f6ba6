"""``nn-gpu sweep``: hyper-parameter search over `train`'s options with Optuna.

Modules: :mod:`.space` (the search-space file), :mod:`.study` (the Optuna
study: storage, sampler, pruner, resume bookkeeping), :mod:`.worker` (a
process that trains trials), :mod:`.runner` (starts and watches the workers
of one machine), :mod:`.report` (table, CSV, plot, reproducing command) and
:mod:`.command` (the command line). Optuna is an optional extra
(``pip install 'nn_gpu[sweep]'``) that plain training never imports: this
package is only loaded by the ``sweep`` subcommand.
"""
