"""The book's runs as named option sets (fully connected and convolutional)."""

from ..errors import InvalidArgumentError


def named(table, name, kind="preset"):
    """``table[name]``; else one clear error naming the ``kind`` and the choices."""
    try:
        return table[name]
    except KeyError:
        raise InvalidArgumentError(f"unknown {kind} {name!r}; choose one of "
                                   f"{', '.join(table)}") from None
