"""Type checks for input values, written once (``bool`` is an ``int`` in Python, and a ``True``
where a count belongs is almost always a mistake).

Example:
    >>> is_int(3), is_int(True), is_number(0.5), is_number(False)
    (True, False, True, False)
    >>> check_int(5, "k", minimum=1)
    5
    >>> check_int(0, "k", minimum=1)
    Traceback (most recent call last):
    ...
    memcube.errors.InvalidInputError: k must be an integer >= 1, got 0.
"""

from __future__ import annotations

from typing import Any, TypeGuard

from memcube.errors import InvalidInputError


def is_int(value: Any) -> TypeGuard[int]:
    """``value`` is an ``int`` and not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> TypeGuard[int | float]:
    """``value`` is an ``int`` or ``float`` and not a ``bool``."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_int(value: Any, name: str, *, minimum: int | None = None) -> int:
    """``value`` if it is an integer (not a bool) of at least ``minimum``, else
    :class:`~memcube.errors.InvalidInputError` naming ``name``."""
    if not is_int(value) or (minimum is not None and value < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise InvalidInputError(f"{name} must be an integer{bound}, got {value!r}.")
    return value
