"""`python -m nn_gpu`: the same as the `nn-gpu` command."""

from .cli import main

raise SystemExit(main())
