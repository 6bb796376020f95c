"""Exceptions the library raises; the CLI turns them into one-line messages.

Every message should tell the user what to do, not only what went wrong.
"""

from __future__ import annotations


class SegtoolsError(Exception):
    """Base class: a problem the user can act on. The CLI exits with ``exit_code``."""

    exit_code = 1


class InputError(SegtoolsError):
    """An input file or stream is missing, unreadable, malformed or of the wrong kind."""


class OutputError(SegtoolsError):
    """An output cannot be written (or would overwrite an input)."""


class UsageError(SegtoolsError):
    """Options that contradict each other or are out of range (exit code 2)."""

    exit_code = 2


class GateFailed(SegtoolsError):
    """A quality gate failed; the message says which gate and by how much."""


class MissingDependency(SegtoolsError):
    """An optional dependency (an extra) is needed for this feature."""


def require(module: str, extra: str):
    """Import an optional module, or raise :class:`MissingDependency` naming the extra.

    >>> require("json", "none").__name__
    'json'
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(
            f"this needs the '{module}' package: pip install 'segtools[{extra}]'"
        ) from exc
