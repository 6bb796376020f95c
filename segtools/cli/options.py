"""One parser per option kind and the option definitions every command shares.

A command never parses a size, an ignore index, an overlap or a number range itself, and
never decides on its own whether its inputs are a batch: it calls these, so that the same
spelling means the same thing everywhere.

Conventions (documented in docs/architecture.md):

- **Sizes are HEIGHTxWIDTH in pixels** (``360x480`` is 360 rows, 480 columns), as numpy
  shapes and torch tensors are; one number ``N`` is ``NxN``. ``×`` may stand for ``x``.
- **An ignore index** is a label ``0..65535`` or ``none`` (``-1`` is accepted for ``none``).
- **A batch** is a folder, a glob, an ``@list.txt`` or more than one input — whatever it
  matched, even one file — and needs ``-o DIR``; a single file or ``-`` is one item, written
  to ``-o FILE`` or stdout. The shape of the output never depends on how many files a
  pattern happened to match.

Only typer and the standard library are imported at module level (start-up time).
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Iterator, Mapping, Optional, Sequence

import typer
from typing import Annotated

from segtools.errors import SegtoolsError, UsageError

MAX_LABEL = 65_535


def parse_size(text: str, option: str) -> tuple[int, int]:
    """``"360x480"`` → ``(360, 480)`` (height, width); ``"512"`` → ``(512, 512)``.

    >>> parse_size("360x480", "--crop"), parse_size("64", "--tile")
    ((360, 480), (64, 64))
    """
    parts = str(text).strip().lower().replace("×", "x").split("x")
    try:
        values = [int(part) for part in parts]
    except ValueError:
        raise UsageError(f"{option} {text!r}: give HEIGHTxWIDTH in pixels (e.g. 360x480) or one number") from None
    if len(values) not in (1, 2) or min(values) < 1:
        raise UsageError(f"{option} {text!r}: give HEIGHTxWIDTH in positive pixels (e.g. 360x480) or one number")
    return values[0], values[-1]


def parse_ignore(text: Optional[str], option: str = "--ignore-index") -> Optional[int]:
    """``"255"`` → 255; ``"none"`` or ``"-1"`` → ``None`` (no ignore index).

    >>> parse_ignore("255"), parse_ignore("none"), parse_ignore("-1")
    (255, None, None)
    """
    word = str(text).strip().lower()
    if word in ("none", "-1"):
        return None
    if not word.isdigit() or int(word) > MAX_LABEL:
        raise UsageError(f"{option} must be a label (0..{MAX_LABEL}) or none, not {text!r}")
    return int(word)


def parse_overlap(text: str, option: str = "--overlap") -> int | float:
    """``"64"`` → 64 pixels; ``"0.25"`` or ``"25%"`` → 0.25 of the tile size.

    >>> parse_overlap("64"), parse_overlap("25%"), parse_overlap("0.5")
    (64, 0.25, 0.5)
    """
    word = str(text).strip()
    try:
        if word.endswith("%"):
            value: int | float = float(word[:-1]) / 100.0
        elif any(c in word for c in ".eE"):
            value = float(word)
        else:
            value = int(word)
    except ValueError:
        raise UsageError(f"{option} {text!r}: give pixels (64) or a fraction of the tile (0.25 or 25%)") from None
    if not 0 <= value or isinstance(value, float) and not value < 1:
        raise UsageError(f"{option} {text!r}: must be >= 0 pixels, or a fraction below 1")
    return value


def parse_range(text: str, option: str) -> tuple[float, float]:
    """``"0.5,2"`` → ``(0.5, 2.0)``; one number ``s`` → ``(s, s)``.

    >>> parse_range("0.5,2", "--scale"), parse_range("1", "--scale")
    ((0.5, 2.0), (1.0, 1.0))
    """
    try:
        values = [float(part) for part in str(text).replace(" ", "").split(",")]
    except ValueError:
        raise UsageError(f"{option} {text!r}: give LOW,HIGH or one number") from None
    if len(values) not in (1, 2) or values[0] > values[-1] or any(v != v for v in values):
        raise UsageError(f"{option} {text!r}: give LOW,HIGH (LOW <= HIGH) or one number")
    return values[0], values[-1]


def is_batch(specs: Sequence[str], found: int) -> bool:
    """Whether inputs ``specs`` (which expanded to ``found`` files) are a batch (see above)."""
    import os

    from segtools.io.batch import is_pattern
    from segtools.io.remote import is_prefix, is_url

    return (found > 1 or len(specs) > 1
            or any((is_pattern(s) or is_prefix(s)) if is_url(s) else
                   os.path.isdir(s) or s.startswith("@") or is_pattern(s) and not os.path.exists(s) for s in specs))


def output_targets(items, specs: Sequence[str], output: Optional[str], suffix: str,
                   overwrite: bool = False) -> list[Optional[str]]:
    """Where each item's result goes, by the batch rule: one path per item under ``-o DIR``
    for a batch, else ``[output]`` (``None`` for stdout), checked before any work is done."""
    from segtools.io.batch import check_output_dir, output_path
    from segtools.io.streams import check_output_path

    if is_batch(specs, len(items)):
        if output is None or output == "-":
            raise UsageError(f"{len(items)} input(s) from a folder, pattern, list or several arguments "
                             "need an output folder: -o DIR")
        out_dir = check_output_dir(output)
        return [str(output_path(item, out_dir, suffix)) for item in items]
    if output is None or output == "-":
        return [None]
    return [str(check_output_path(output, overwrite))]


# ---- library messages in the words of the command line
#
# The library names its parameters (``smooth=4: the kernel size must be odd``, ``give
# background=N``); a command knows which of its flags sets each one, and
# :func:`parameters_as_flags` rewrites the message of an error raised under it
# (``--smooth 4: ...``, ``give --background N``). Only ``name=value`` and a leading ``name:``
# are rewritten, so prose that happens to hold a parameter's name is left alone.

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


def parse_shard(text: Optional[str], option: str = "--shard") -> Optional[tuple[int, int]]:
    """``"2/8"`` → ``(2, 8)``: shard I of N, I counting from 0 (as Kubernetes' job index and
    ``--array=0-7`` in Slurm do); ``None`` → ``None`` (all items).

    >>> parse_shard("0/4"), parse_shard(None)
    ((0, 4), None)
    """
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match or int(match.group(2)) < 1:
        raise UsageError(f"{option} {text!r}: give I/N, shard I (0..N-1) of N, e.g. 0/4")
    index, count = int(match.group(1)), int(match.group(2))
    if index >= count:
        raise UsageError(f"{option} {text}: I counts from 0, so it is 0..{count - 1} for {count} shards")
    return index, count


def shard_items(items: Sequence, shard: Optional[tuple[int, int]], key=lambda item: item.rel) -> list:
    """:func:`segtools.io.batch.select_shard`, its error naming ``--shard``.

    >>> shard_items(["c", "a", "d", "b"], (1, 2), key=str)
    ['b', 'd']
    """
    from segtools.io.batch import select_shard

    with parameters_as_flags({"shard": "--shard"}):
        return select_shard(items, shard, key)


# ---- option definitions shared by several commands (Annotated aliases keep signatures short)

JobsOpt = Annotated[int, typer.Option("--jobs", "-j", min=0, help="Parallel workers for batches (0 = all CPUs).")]
DaskOpt = Annotated[Optional[str], typer.Option(
    "--dask", metavar="ADDRESS|local:N",
    help="Run the batch on a Dask cluster: its scheduler's address, or local:N worker processes "
         "(default: $DASK_SCHEDULER_ADDRESS, else this machine). Needs segtools[dask].")]
ShardOpt = Annotated[Optional[str], typer.Option(
    "--shard", metavar="I/N",
    help="Only shard I (0..N-1) of N: item k of the sorted inputs when k mod N = I (array jobs).")]
OutputOpt = Annotated[Optional[str], typer.Option(
    "--output", "-o", help="Output file, or folder for a batch (a folder, pattern, @list or several inputs); stdout when omitted.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Allow an output to replace an input file.")]
ClassesOpt = Annotated[Optional[str], typer.Option(
    "--classes", help="Class names/palette: a preset (voc, cityscapes, camvid, ade20k, coco) or a JSON/text file.")]
PaletteOpt = Annotated[Optional[str], typer.Option(
    "--palette", help="Colour→class map for RGB colour masks: voc, cityscapes, camvid, ade20k, or a JSON file.")]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="Output format: table, json or csv.")]
IgnoreOpt = Annotated[Optional[str], typer.Option(
    "--ignore-index", metavar="N|none", help="Void label (0..65535, or none) (default: the classes' own, else 255).")]
