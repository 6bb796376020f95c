"""The ``segtools`` command: global options, subcommand registration, errors → exit codes.

Exit codes: 0 ok · 1 failure or failed gate · 2 usage error · 130 interrupted.

Annotations here are objects, not strings (no ``from __future__ import annotations``):
typer reads the global options' signature on every run, and string annotations would be
evaluated again each time it does.
"""

import errno
import functools
import importlib
import os
import sys
from typing import Optional, Sequence

import typer
from typing import Annotated

# OpenCV logs decoder warnings straight to stderr; our errors say it in one line instead.
os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")

from segtools import __version__  # noqa: E402
from segtools.cli.common import (  # noqa: E402
    STATE, configure_logging, debug_enabled, guard_standard_streams, quiet_library_warnings)
from segtools.errors import SegtoolsError  # noqa: E402

# One module per subcommand; each defines register(app). Order = order in --help.
COMMAND_MODULES: tuple[str, ...] = (
    "convert",
    "predict",
    "tile",
    "postprocess",
    "metrics",
    "visualize",
    "weights",
    "train",
    "info",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"segtools {__version__}")
        raise typer.Exit()


def _global(
    version: Annotated[Optional[bool], typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="More detail on stderr; tracebacks on errors.")] = False,
    max_pixels: Annotated[Optional[int], typer.Option(
        "--max-pixels", min=0, help="Refuse images with more pixels than this (decompression-bomb guard; 0 = no limit).")] = None,
) -> None:
    """Global options come before the subcommand: segtools -q metrics ..."""
    STATE.quiet, STATE.verbose = quiet, verbose
    configure_logging()
    if max_pixels is not None:
        from segtools.io.limits import set_max_pixels

        set_max_pixels(max_pixels)




class _PlainTopLevel(typer.core.TyperGroup):
    """The top-level group, whose ``--help`` is written by click's plain formatter.

    Typer's rich help imports rich's markdown, syntax and traceback machinery: ~190 ms, most
    of ``segtools --help``. The plain formatter says the same things (usage, description,
    options, each command's whole first paragraph, not click's 45-character cut); the
    subcommands keep their rich help.
    """

    def format_help(self, ctx, formatter) -> None:
        super(typer.core.TyperGroup, self).format_help(ctx, formatter)  # click's own

    def format_commands(self, ctx, formatter) -> None:
        rows = [(name, command_summary(command)) for name in self.list_commands(ctx)
                if (command := self.get_command(ctx, name)) is not None and not command.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def command_summary(command) -> str:
    """A command's first help paragraph as one line (what ``segtools --help`` lists)."""
    import inspect

    text = command.short_help or inspect.cleandoc(command.help or "").partition("\f")[0]
    return " ".join(text.split("\n\n")[0].split())


def build_app(only: str | None = None) -> typer.Typer:
    """The ``segtools`` Typer app with every subcommand, or with just ``only``.

    Building the click tree of all nine subcommands costs ~40 ms of start-up; a run of one
    subcommand (the common case, in shell loops) needs only its own.
    """
    application = typer.Typer(
        name="segtools",
        cls=_PlainTopLevel,
        help=(
            "Small, sharp tools for image segmentation that read and write one pipe format.\n\n"
            "Example:  segtools metrics pred/ gt/ --classes camvid --fail-under miou=0.6"
        ),
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    application.callback()(_global)
    for name in COMMAND_MODULES:
        if only is None or name == only:
            importlib.import_module(f"segtools.cli.{name}").register(application)
    return application


@functools.lru_cache(maxsize=1)
def _global_options_with_value() -> frozenset[str]:
    """The global options whose next word is their value, read from the signature of the
    global callback (every option not a bool flag), so a new global option needs no edit
    here. The signature costs ~0.1 ms where building the callback's click tree cost ~4."""
    import inspect
    import typing

    names: list[str] = []
    for parameter in inspect.signature(_global, eval_str=True).parameters.values():
        kind, *extras = typing.get_args(parameter.annotation)
        if kind in (bool, Optional[bool]):
            continue
        for extra in extras:
            if isinstance(extra, typer.models.OptionInfo):
                default = extra.default if isinstance(extra.default, str) and extra.default.startswith("-") else None
                names += [name for name in (default, *(extra.param_decls or ())) if name]
    return frozenset(names)


def invoked_command(args: Sequence[str]) -> str | None:
    """The subcommand ``args`` run, or ``None`` when the whole tree is needed (top-level
    help or version, no subcommand, or a name that is not one: typer then lists them)."""
    takes_value = _global_options_with_value()
    index = 0
    while index < len(args):
        word = args[index]
        if word in ("-h", "--help", "--version", "--"):
            return None
        if word in takes_value:
            index += 2
            continue
        if word.startswith("-"):
            index += 1
            continue
        return word if word in COMMAND_MODULES else None
    return None


def tree_needed(args: Sequence[str]) -> str | None:
    """What :func:`build_app` must build to run ``args``: :func:`invoked_command`, except that
    ``--version`` among the global options (before any other word) needs no subcommand (``""``)."""
    only = invoked_command(args)
    if only is not None or "--version" not in args:
        return only
    takes_value = _global_options_with_value()
    index = 0
    while index < len(args) and args[index].startswith("-") and args[index] not in ("-h", "--help", "--"):
        if args[index] == "--version":
            return ""
        index += 2 if args[index] in takes_value else 1
    return None


def __getattr__(name: str):
    if name == "app":  # the full tree, built on first use (docs generator, tests)
        application = build_app()
        globals()["app"] = application
        return application
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).strip().splitlines() if part.strip())


def _fail(message: str, code: int) -> int:
    print(f"segtools: error: {_one_line(message)}", file=sys.stderr)
    return code


def _usage_error_class() -> type:
    """click's UsageError: typer >= 0.2x vendors click as typer._click, older typer uses click."""
    try:
        from typer._click.exceptions import UsageError
    except ImportError:
        from click.exceptions import UsageError
    return UsageError


def _invoke(command, args: list[str]):
    """Parse ``args`` and run the command, as click's ``main(standalone_mode=False)`` would,
    but without its own handling of a broken pipe (it exits 1; a pipe reader that went
    away earns the conventional 141 here) and with stdout flushed before returning, so
    that a write error is reported now instead of at interpreter exit."""
    with command.make_context("segtools", args) as ctx:
        result = command.invoke(ctx)
    if sys.stdout is not None:
        sys.stdout.flush()
    return result


def run(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI with ``argv`` and return the exit code (no ``sys.exit``)."""
    from segtools.io.parallel import reuse_freed_memory
    from segtools.io.streams import forget_inputs

    usage_error = _usage_error_class()
    guard_standard_streams()
    quiet_library_warnings()
    reuse_freed_memory()
    forget_inputs()
    args = list(argv) if argv is not None else sys.argv[1:]
    command = typer.main.get_command(build_app(tree_needed(args)))
    try:
        result = _invoke(command, args)
    except typer.Exit as exc:  # --version, --help
        return exc.exit_code
    except usage_error as exc:
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
            print(ctx.get_help(), file=sys.stderr)
            return 2
        where = ctx.command_path if ctx is not None else "segtools"
        return _fail(f"{exc.format_message()} (see '{where} --help')", 2)
    except SegtoolsError as exc:
        if debug_enabled():
            import traceback

            traceback.print_exc()
        return _fail(str(exc), exc.exit_code)
    except (typer.Abort, EOFError):
        return _fail("aborted", 130)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except BrokenPipeError:
        return _reader_gone()
    except SystemExit as exc:  # rich exits 1 itself when the pipe breaks under it
        if isinstance(exc.__context__, BrokenPipeError):
            return _reader_gone()
        raise
    except MemoryError:
        return _fail("out of memory: process fewer or smaller images at a time", 1)
    except OSError as exc:  # the system refused (a full disk, a closed stdout): not a bug
        if exc.filename:
            return _fail(f"{exc.filename}: {exc.strerror or exc}", 1)
        if exc.errno in _WRITE_ERRNOS:  # what stdout still buffers cannot be written either
            sys.stdout = open(os.devnull, "w")
            return _fail(f"stdout: {exc.strerror or exc}", 1)
        return _fail(f"{exc.strerror or exc}", 1)
    except Exception as exc:  # a bug: one line, unless debugging
        if debug_enabled():
            raise
        return _fail(f"internal error: {type(exc).__name__}: {exc} (rerun with --verbose for a traceback, "
                     "and please report it)", 1)
    return result if isinstance(result, int) else 0


def _reader_gone() -> int:
    """The reader of stdout went away (``| head``): not our error, exit 141 as SIGPIPE would.
    stdout goes nowhere from now on, so the interpreter's last flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    return 141


_WRITE_ERRNOS = (errno.ENOSPC, errno.EBADF, errno.EIO, errno.EDQUOT, errno.EFBIG)


#: What :func:`tree_needed` says of runs that write nothing but stdout and stderr and leave
#: no thread behind: ``info``, ``--version`` (``""``), and top-level help or an unknown
#: name (``None``). Such a run may end without the interpreter's teardown.
QUICK_EXIT = frozenset({"info", "", None})


def main() -> None:
    """Console-script entry point."""
    args = sys.argv[1:]
    code = run(args)
    if tree_needed(args) in QUICK_EXIT:
        quick_exit(code)
    sys.exit(code)


def quick_exit(code: int) -> None:
    """End the process now with ``code``, as a normal exit would, less the teardown of every
    module and object (a fifth or more of a short run's time: ``bench/startup.py``): the
    standard streams are flushed and the ``atexit`` handlers run first. Returns (the
    caller then exits normally) when a thread other than this one is alive or a stream
    cannot be flushed, so nothing is cut short and a write error still surfaces."""
    import atexit
    import threading

    if threading.active_count() > 1:
        return
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        return
    atexit._run_exitfuncs()  # logging's flush, weakref finalizers, ... (what the interpreter runs at exit)
    os._exit(code)
