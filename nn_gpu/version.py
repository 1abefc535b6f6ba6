"""The package version (one place, read by pyproject.toml and the benchmark
records), and how this copy of the package was installed, for the hints that
tell a user how to add an optional extra."""

import shlex
from pathlib import Path

__version__ = "0.1.0"

#: The source tree this copy of nn_gpu is imported from, if it is one.
_TREE = Path(__file__).resolve().parents[1]


def source_tree():
    """The clone nn_gpu runs from (``pip install -e .``, or the clone on
    ``PYTHONPATH``), or None for a package installed from a wheel: a clone
    has nn_gpu's own pyproject.toml next to the package."""
    try:
        text = (_TREE / "pyproject.toml").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return _TREE if 'name = "nn_gpu"' in text else None


def install_hint(extra):
    """The pip command that adds the optional ``extra`` to this install:
    ``pip install -e '.[plot]'`` in a clone (its path where the current
    directory is elsewhere), ``pip install 'nn_gpu[plot]'`` otherwise."""
    tree = source_tree()
    if tree is None:
        return f"pip install {shlex.quote(f'nn_gpu[{extra}]')}"
    try:
        here = Path.cwd().resolve() == tree
    except OSError:
        here = False
    where = "." if here else str(tree)
    return f"pip install -e {shlex.quote(f'{where}[{extra}]')}"
