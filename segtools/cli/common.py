"""Shared pieces of the command line: global state, logging, progress, the standard streams.

Option parsers and the option definitions commands share live in :mod:`segtools.cli.options`.

Only the standard library is imported here at module level (rich when a bar is shown), so
``segtools --help`` stays fast (no numpy, no torch).
"""

from __future__ import annotations

import errno
import io
import logging
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator


@dataclass
class State:
    quiet: bool = False
    verbose: bool = False


STATE = State()
log = logging.getLogger("segtools")


def debug_enabled() -> bool:
    return STATE.verbose or os.environ.get("SEGTOOLS_DEBUG", "") not in ("", "0")


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = {"WARNING": "warning", "ERROR": "error", "INFO": "info", "DEBUG": "debug"}.get(
            record.levelname, record.levelname.lower())
        return f"segtools: {level}: {record.getMessage()}"


def configure_logging() -> None:
    """Library log records go to stderr as ``segtools: warning: …`` lines."""
    logger = logging.getLogger("segtools")
    logger.handlers[:] = []
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine())
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.ERROR if STATE.quiet else logging.DEBUG if STATE.verbose else logging.WARNING)


class _ClosedStdout(io.RawIOBase):
    """What ``sys.stdout`` becomes when the process started with fd 1 closed (``>&-``)."""

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        raise OSError(errno.EBADF, "closed; redirect it to a file or a pipe")


def guard_standard_streams() -> None:
    """Make sure file descriptors 0, 1 and 2 are open before any file is.

    A process started with one of them closed (``<&-``, ``>&-``) would hand that number to
    the next file it opens, so a C library's warning on fd 2, or a write to stdout, would
    land inside an output file. A closed one is taken by ``/dev/null``: a closed stdin
    then reads as empty input, a closed stdout fails on the first write with one error
    line, and a closed stderr swallows messages.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            if fd == 0:
                sys.stdin = open(0, "r", closefd=False)
            elif fd == 1:
                sys.stdout = io.TextIOWrapper(io.BufferedWriter(_ClosedStdout()))
            else:
                sys.stderr = open(2, "w", closefd=False)
    if sys.stdin is None:  # fd 0 open, yet Python found it unusable at start-up
        sys.stdin = open(os.devnull, "r")


def quiet_library_warnings() -> None:
    """Python warnings raised inside numpy, torch or Pillow are noise to a user (a
    RuntimeWarning about a division the code already handles): hidden, and with
    ``--verbose`` shown as one ``segtools: warning:`` line each."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if debug_enabled():
            text = " ".join(str(message).split())
            print(f"segtools: warning: {category.__name__}: {text}", file=sys.stderr)

    warnings.showwarning = show


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def info(message: str) -> None:
    """A human note on stderr (suppressed by --quiet)."""
    if not STATE.quiet:
        print(f"segtools: {message}", file=sys.stderr)


def err_console():
    from rich.console import Console

    return Console(stderr=True)


def eta_text(elapsed: float, completed: float, total: float) -> str:
    """The progress bar's labelled ETA: the time left at the run's average rate so far.

    The average over the whole run (elapsed seconds per finished item) moves little from one
    item to the next, where rich's default column (speed over a short window) jumps with
    every slow or quick item. Unknown until an item has finished.

    >>> eta_text(10.0, 4, 10), eta_text(0.5, 0, 10), eta_text(99.0, 10, 10)
    ('ETA 0:00:15', 'ETA -:--:--', 'ETA 0:00:00')
    """
    if completed <= 0 or elapsed <= 0:
        return "ETA -:--:--"
    left = max(0, round(elapsed / completed * max(0.0, total - completed)))
    hours, rest = divmod(left, 3600)
    return f"ETA {hours}:{rest // 60:02d}:{rest % 60:02d}"


@contextmanager
def progress(total: int, description: str) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr when it is a terminal (and not --quiet), else nothing.

    Yields ``advance(i)``, to be called once per finished item. The last column is the time
    left, labelled and smoothed (:func:`eta_text`).
    """
    if STATE.quiet or total < 2 or not stderr_is_terminal():
        yield lambda _i: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn
    from rich.text import Text

    class EtaColumn(ProgressColumn):
        def render(self, task) -> Text:
            return Text(eta_text(task.elapsed or 0.0, task.completed, task.total or 0), style="progress.remaining")

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  EtaColumn(), console=err_console(), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda _i: bar.advance(task)
