"""``nn-gpu serve``: a local web page to write a number on and watch a
trained network read it, and the JSON API behind it.

:mod:`.reader` reads with the model (one request at a time);
:mod:`.server` answers HTTP (the page's files in ``assets/``, plain HTML,
CSS and JavaScript shipped in the package, and the API that docs/serve.md
describes). The command itself is :mod:`nn_gpu.cli.serve`.
"""

from .reader import Reader
from .server import ServeError, Server, make_server

__all__ = ["Reader", "ServeError", "Server", "make_server"]
