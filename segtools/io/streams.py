"""Bytes in and out: paths, stdin, stdout, atomic writes, input protection.

Every reader registers the paths it read; :func:`write_bytes` refuses to replace one of
them unless asked (``allow_overwrite=True``, the CLI's ``--in-place``/``--overwrite``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import BinaryIO, Union

from segtools.errors import InputError, OutputError

Source = Union[str, os.PathLike, bytes, BinaryIO]
STDIO = "-"

_inputs_read: set[str] = set()
#: (device, inode) of every regular file read, stdin included: a hard link or a
#: redirection (``-o m.png < m.png``) names an input under another name or none
_input_files: set[tuple[int, int]] = set()


def describe(source: Source) -> str:
    """A short name for messages: the path, ``<stdin>`` or ``<bytes>``."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>"
    if isinstance(source, (str, os.PathLike)):
        return "<stdin>" if str(source) == STDIO else str(source)
    return getattr(source, "name", "<stream>")


def _key(path: str | os.PathLike) -> str:
    return os.path.realpath(os.fspath(path))


def _identity(stat: os.stat_result) -> tuple[int, int] | None:
    import stat as stat_module

    return (stat.st_dev, stat.st_ino) if stat_module.S_ISREG(stat.st_mode) else None


def mark_input(path: str | os.PathLike) -> None:
    """Remember that ``path`` (``-``: whatever file stdin is) was read, so no output
    replaces it by accident."""
    try:
        if str(path) == STDIO:
            identity = _identity(os.fstat(sys.stdin.fileno()))
        else:
            _inputs_read.add(_key(path))
            identity = _identity(os.stat(path))
    except (OSError, ValueError, AttributeError):  # not a file, or stdin is no real stream
        return
    if identity is not None:
        _input_files.add(identity)


def is_input(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a file this run read (under any name)."""
    if _key(path) in _inputs_read:
        return True
    try:
        return _identity(os.stat(path)) in _input_files
    except (OSError, ValueError):
        return False


def forget_inputs() -> None:
    """Start a new run: no path is an input yet (the CLI calls this once per invocation)."""
    _inputs_read.clear()
    _input_files.clear()


def check_file_name(path: str | os.PathLike, error: type = InputError) -> None:
    """Refuse a path no file can have: empty, or holding a NUL byte (``error`` is raised)."""
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    if not text:
        raise error("an empty file name was given")
    if "\x00" in text:
        shown = text.replace("\x00", "\\0")
        raise error(f"'{shown}': a file name cannot hold a NUL byte")


def read_bytes(source: Source) -> bytes:
    """All bytes of a path, ``-`` (stdin), a binary stream or a bytes object."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, os.PathLike)):
        if str(source) == STDIO:
            stdin = sys.stdin.buffer
            if stdin.isatty():
                raise InputError("no input: give a file, or pipe data into stdin")
            mark_input(STDIO)
            return stdin.read()
        return read_head(source, None)
    return source.read()


def read_head(path: str | os.PathLike, size: int | None) -> bytes:
    """The first ``size`` bytes of a file (all of it for ``None``), marked as an input.

    Every failure is an :class:`InputError` that says what is wrong with the path.
    """
    check_file_name(path)
    if _is_url(path):  # an object on a store (s3://, gs://, memory://…), read by whoever runs the item
        from segtools.io.remote import read_object

        data = read_object(str(path), size)
        mark_input(path)
        return data
    try:
        with open(path, "rb") as handle:
            data = handle.read() if size is None else handle.read(size)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    mark_input(path)
    return data


def stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def write_stdout(data: bytes, what: str = "binary data") -> None:
    """Write bytes to stdout, refusing a terminal (binary data would garble it)."""
    if stdout_is_terminal():
        raise OutputError(
            f"refusing to write {what} to a terminal: redirect it (> out.png), "
            "pipe it into another command, or give -o FILE"
        )
    out = sys.stdout.buffer
    out.write(data)
    out.flush()


def _is_url(path) -> bool:
    from segtools.io.remote import is_url  # a regular expression: nothing heavy is imported

    return isinstance(path, str) and is_url(path)


def check_output_path(path: str | os.PathLike, allow_overwrite: bool = False) -> Path:
    """Validate an output file path before any work is done; returns it as a Path (a
    storage URL stays a ``str``: its store is checked, and that it is no input)."""
    check_file_name(path, OutputError)
    if _is_url(path):
        from segtools.io.remote import check_store, redact

        if path.endswith("/"):  # the twin of a local folder given as a file's name
            raise OutputError(f"{redact(path)}: is a prefix; give an object name (or use -o PREFIX/ with a batch)")
        if not allow_overwrite and is_input(path):
            raise OutputError(f"{redact(path)}: refusing to overwrite an input; pass --overwrite to allow it")
        return check_store(path)  # type: ignore[return-value]
    out = Path(path)
    if out.is_dir():
        raise OutputError(f"{out}: is a directory; give a file name (or use -o DIR with a batch)")
    parent = out.parent if str(out.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"{out}: {parent} is a file, not a directory")
    if not allow_overwrite and is_input(out):
        raise OutputError(f"{out}: refusing to overwrite an input; pass --overwrite to allow it")
    return out


class AtomicFile:
    """An output file written beside its target and renamed into place by :meth:`commit`.

    Readers never see a half-written file, and :meth:`abort` (or an exception inside a
    ``with`` block) leaves no trace. Missing parent folders are created. ``handle`` is the
    open temp file (``mode`` ``"wb"``, ``"w+b"`` or ``"w"`` with ``encoding`` and ``newline``);
    ``tmp`` its path, ``.NAME.XXXXXXXX`` + ``suffix`` (a writer that picks its format by the
    file name, such as a video encoder writing ``tmp`` itself, gives ``.part.mp4``).
    """

    def __init__(self, path: str | os.PathLike, allow_overwrite: bool = False, mode: str = "wb",
                 encoding: str | None = None, newline: str | None = None, suffix: str = ".part") -> None:
        self.path = check_output_path(path, allow_overwrite)
        import tempfile  # here, not at module level: a read-only run never pays for it

        # a storage URL: written here in full, then one whole object (commit)
        self._url = self.path if isinstance(self.path, str) else None
        parent = (Path(tempfile.gettempdir()) if self._url is not None
                  else self.path.parent if str(self.path.parent) else Path("."))
        try:
            parent.mkdir(parents=True, exist_ok=True)
            name = self._url.rstrip("/").rsplit("/", 1)[-1] if self._url is not None else self.path.name
            fd, self._tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=suffix, dir=parent)
        except FileExistsError:
            raise OutputError(f"{self.path}: a parent of it is a file, not a directory") from None
        except PermissionError:
            raise OutputError(f"{self.path}: permission denied") from None
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write ({exc.strerror or exc})") from None
        self.handle = os.fdopen(fd, mode, encoding=encoding, newline=newline)
        from segtools.io.tempfiles import hold

        hold(self.handle)  # a live writer's temp file is never swept as stale

    @property
    def tmp(self) -> str | None:
        """The temp file's path (``None`` once committed or aborted)."""
        return self._tmp

    def commit(self) -> Path:
        """Close the temp file and move it onto the target."""
        if self._url is not None:
            from segtools.io.remote import publish

            try:
                self.handle.close()
                publish(Path(self._tmp), self._url)
            finally:
                self.abort()
            return self.path
        try:
            self.handle.close()
            os.chmod(self._tmp, 0o666 & ~_umask())
            os.replace(self._tmp, self.path)
        except OSError as exc:
            self.abort()
            raise OutputError(f"{self.path}: cannot write ({exc.strerror or exc})") from None
        self._tmp = None
        from segtools.io.tempfiles import sweep_stale_parts

        sweep_stale_parts(self.path)  # temp files of this target left by killed writers (unheld)
        return self.path

    def abort(self) -> None:
        """Drop everything written so far."""
        if not self.handle.closed:
            self.handle.close()
        if self._tmp is not None:
            try:
                os.unlink(self._tmp)
            except OSError:
                pass
            self._tmp = None

    def __enter__(self) -> "AtomicFile":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
            return
        self.abort()
        if isinstance(exc, OSError):
            raise OutputError(f"{self.path}: cannot write ({exc.strerror or exc})") from None


def write_bytes(path: str | os.PathLike, data: bytes, allow_overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (see :class:`AtomicFile`)."""
    with AtomicFile(path, allow_overwrite) as target:
        target.handle.write(data)
    return target.path


def emit(data: bytes, output: str | os.PathLike | None, what: str, allow_overwrite: bool = False) -> None:
    """Write to ``output`` (atomically) or, when it is ``None`` or ``-``, to stdout."""
    if output is None or str(output) == STDIO:
        write_stdout(data, what)
    else:
        write_bytes(output, data, allow_overwrite)


_UMASK: int | None = None


def _umask() -> int:
    global _UMASK
    if _UMASK is None:
        current = os.umask(0)
        os.umask(current)
        _UMASK = current
    return _UMASK
