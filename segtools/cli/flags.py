"""Library messages in the words of the command line.

The library names its parameters (``smooth=4: the kernel size must be odd``,
``give background=N``); a command knows which of its flags sets each one, and
:func:`parameters_as_flags` rewrites the message of an error raised under it
(``--smooth 4: ...``, ``give --background N``). Only ``name=value`` and a leading
``name:`` are rewritten, so prose that happens to contain a parameter's name is left alone.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Iterator, Mapping

from segtools.errors import SegtoolsError


def _pattern(flags: Mapping[str, str]) -> re.Pattern:
    names = "|".join(re.escape(name) for name in sorted(flags, key=len, reverse=True))
    return re.compile(rf"(?<![\w.-])({names})(?:=('[^']*'|\"[^\"]*\"|[^\s,;:)]*)|(?=:))")


def in_flags(message: str, flags: Mapping[str, str]) -> str:
    """``message`` with each ``parameter=value`` (and ``parameter:``) written as its flag.

    >>> in_flags("smooth=4: must be odd; give background=N", {"smooth": "--smooth", "background": "--background"})
    '--smooth 4: must be odd; give --background N'
    >>> in_flags("fill='background' needs a label", {"fill": "--fill"})
    '--fill background needs a label'
    """
    def flag(match: re.Match) -> str:
        value = match.group(2)
        if value and value[0] == value[-1] and value[0] in "'\"" and len(value) > 1:
            value = value[1:-1]
        return flags[match.group(1)] + (f" {value}" if value else "")

    return _pattern(flags).sub(flag, message)


@contextmanager
def parameters_as_flags(flags: Mapping[str, str]) -> Iterator[None]:
    """Re-raise a :class:`SegtoolsError` raised inside with its message :func:`in_flags`
    (same class, so the same exit code)."""
    try:
        yield
    except SegtoolsError as exc:
        message = in_flags(str(exc), flags)
        if message == str(exc):
            raise
        try:
            reworded = type(exc)(message)
        except Exception:  # an error class with another signature: keep it as it was
            raise exc from None
        raise reworded from None
