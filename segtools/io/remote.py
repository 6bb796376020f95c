"""Inputs and outputs on object storage: fsspec URLs (``s3://``, ``gs://``, ``memory://``, ``file://``).

Two ways, by what reads and writes the data:

- **Streamed**: the per-item tools (``metrics`` of every task, ``postprocess``,
  ``predict`` of images, ``visualize``, ``convert`` of mask folders, ``tile split``) list an input prefix like a folder (the keys below
  it are the relative names, :func:`list_objects`) and read each object when its item runs
  (:func:`read_object`, through :func:`segtools.io.streams.read_head`); each output is
  written to a local temporary file and goes up as one whole object when it is complete
  (:func:`publish`, through :class:`segtools.io.streams.AtomicFile`). Whoever runs the item
  does both: this process, a ``--jobs`` worker, or a Dask worker on another machine — so a
  cluster needs no shared file system, and no machine holds more than its items in flight.
- **Staged** (:func:`with_storage`, every other input and output): an input prefix (or one
  object) is fetched into a temporary folder and read like a folder; an output is written
  locally, then uploaded when the command succeeds. A failed command uploads nothing.

A whole object is one PUT on object stores (S3, GCS, Azure), where it appears whole or not
at all; elsewhere a temporary name then a move.

Credentials come from each store's usual environment and configuration (for S3:
``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``, ``AWS_ENDPOINT_URL``, …); messages name URLs
without their user info or query (:func:`redact`). fsspec is imported only for a URL.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Optional, Sequence

if TYPE_CHECKING:
    import os

from segtools.errors import InputError, MissingDependency, OutputError

_URL = re.compile(r"^([a-z][a-z0-9+.-]*)://", re.I)
#: Stores whose single PUT is atomic: an object is written whole or not at all.
ATOMIC_PUT = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss")
EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure", "abfss": "azure"}
#: URLs that are no store: network video streams, and web addresses (downloads have their own code).
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")


def is_url(spec: Optional[str]) -> bool:
    """Whether ``spec`` is a URL for fsspec (not a local path, not ``-``, not a video stream).

    >>> is_url("s3://bucket/masks/"), is_url("masks/"), is_url("memory://x"), is_url("rtsp://cam/live")
    (True, False, True, False)
    """
    return bool(spec) and bool(_URL.match(str(spec))) and not str(spec).lower().startswith(STREAM_SCHEMES)


def redact(url: str) -> str:
    """``url`` without user info or query, for messages.

    >>> redact("s3://KEY:SECRET@bucket/gt/?versionId=3")
    's3://bucket/gt/'
    """
    return re.sub(r"^([a-z0-9+.-]+://)[^/@]*@", r"\1", url.split("?")[0], flags=re.I)


def _filesystem(url: str):
    protocol = _URL.match(url).group(1).lower()
    try:
        import fsspec

        fs, path = fsspec.core.url_to_fs(url)
    except ImportError as exc:
        raise MissingDependency(f"{redact(url)}: this store needs an extra: pip install "
                                f"'segtools[{EXTRAS.get(protocol, protocol)}]' ({exc.name or 'a module'} missing)") from None
    except ValueError:
        raise InputError(f"{redact(url)}: not a storage URL fsspec knows") from None
    return fs, path, protocol


def _unreadable(url: str, exc: Exception) -> InputError:
    if isinstance(exc, FileNotFoundError):
        return InputError(f"{redact(url)}: no such object")
    if isinstance(exc, IsADirectoryError):
        return InputError(f"{redact(url)}: is a prefix, expected an object")
    if isinstance(exc, PermissionError):
        return InputError(f"{redact(url)}: permission denied")
    # the store's own message may quote the URL, credentials and all
    return InputError(f"{redact(url)}: cannot read it ({type(exc).__name__})")


def read_object(url: str, size: Optional[int] = None) -> bytes:
    """The bytes of the object at ``url`` (its first ``size`` bytes): one GET, ranged for a
    ``size`` (a range past the end gives the whole object, as a file's ``read(size)``)."""
    fs, path, _ = _filesystem(url)
    try:
        return fs.cat_file(path) if size is None else fs.cat_file(path, start=0, end=int(size))
    except Exception as exc:
        raise _unreadable(url, exc) from None


#: Objects fetched ahead of the one being used by :func:`read_ahead`.
READ_AHEAD = 8


def read_ahead(paths: Sequence[str], depth: int = READ_AHEAD) -> Iterator[tuple[str, object]]:
    """``(path, source)`` for each of ``paths``, in order: a storage URL's source is its bytes,
    fetched by up to ``depth`` threads ahead of the caller (a store's latency per GET — tens
    of milliseconds — is then paid while the previous images are decoded and predicted, not
    in turn); any other path is its own source. A failed fetch is raised when its turn comes,
    so the items before it are still done."""
    from collections import deque

    if not any(is_url(str(path)) for path in paths):
        yield from ((path, path) for path in paths)
        return
    from concurrent.futures import ThreadPoolExecutor

    from segtools.io.streams import mark_input

    with ThreadPoolExecutor(max_workers=max(1, depth), thread_name_prefix="segtools-read") as pool:
        pending: deque = deque()
        upcoming = iter(paths)

        def fill() -> None:
            while len(pending) < max(1, depth):
                path = next(upcoming, None)
                if path is None:
                    return
                pending.append((path, pool.submit(read_object, str(path)) if is_url(str(path)) else None))

        fill()
        try:
            while pending:
                path, future = pending.popleft()
                fill()
                if future is None:
                    yield path, path
                else:
                    data = future.result()
                    mark_input(path)
                    yield path, data
        finally:
            for _, future in pending:
                if future is not None:
                    future.cancel()


def fetches_ahead(paths: Iterable[str], jobs: int) -> bool:
    """Whether a map over items reading ``paths`` should fetch them ahead in this process
    (:func:`fetch_ahead`): one worker (``jobs``), no Dask cluster, and a storage URL among
    them. Worker processes and cluster workers each fetch their own items."""
    from segtools.io import cluster
    from segtools.io.parallel import resolve_jobs

    return resolve_jobs(jobs) == 1 and cluster.active_client() is None and any(is_url(str(path)) for path in paths)


def fetch_ahead(groups: Sequence[Sequence[str]], depth: int = READ_AHEAD) -> Iterator[dict]:
    """For each group of paths (the files of one item), in order: the bytes of its storage
    URLs by path, fetched ahead by :func:`read_ahead`; other paths are left out, for their
    readers to open. A failed fetch is raised at its item's turn, naming its URL."""
    sources = read_ahead([path for group in groups for path in group], depth)
    for group in groups:
        fetched = {}
        for _ in group:
            path, data = next(sources)
            if data is not path:
                fetched[path] = data
        yield fetched


def is_prefix(url: str) -> bool:
    """Whether ``url`` names a prefix (a "folder" of objects) rather than one object."""
    if url.endswith("/"):
        return True
    fs, path, _ = _filesystem(url)
    try:
        return bool(fs.isdir(path))
    except FileNotFoundError:
        return False
    except Exception as exc:  # unreachable or refused: said once, not again by every later call
        raise _unreadable(url, exc) from None


def join(url: str, relative: str) -> str:
    """``relative`` (a POSIX relative name) below the prefix ``url``.

    >>> join("s3://bucket/out/", "d0/a.png"), join("memory://x", "b.png")
    ('s3://bucket/out/d0/a.png', 'memory://x/b.png')
    """
    return url.rstrip("/") + "/" + relative.lstrip("/")


def is_folder(spec: "str | os.PathLike") -> bool:
    """Whether ``spec`` is a folder: a local directory, or a prefix on a store (a URL)."""
    import os

    return is_prefix(str(spec)) if is_url(str(spec)) else os.path.isdir(spec)


def below(spec: "str | os.PathLike", relative: str) -> str:
    """``relative`` (a POSIX relative name) below the folder or prefix ``spec``.

    >>> below("s3://bucket/set", "instances"), below("set", "instances")
    ('s3://bucket/set/instances', 'set/instances')
    """
    import os

    return join(str(spec), relative) if is_url(str(spec)) else os.path.join(str(spec), *relative.split("/"))


def list_objects(url: str, extensions: Sequence[str]) -> list[tuple[str, str]]:
    """``(object URL, relative name)`` of each object a batch spec names, sorted by name:
    the objects below a prefix whose names end with one of ``extensions`` (hidden names,
    a dot first in any part, skipped, as in a folder), the matches of a glob
    (``s3://b/pred/*/*.png``, names below its fixed part), or the one object named.
    Nothing is read but the listing."""
    from segtools.io.batch import is_pattern

    fs, path, _ = _filesystem(url)
    try:
        if is_pattern(path):
            head = path[: min(path.index(ch) for ch in "*?[" if ch in path)]
            fixed = head.rsplit("/", 1)[0] if "/" in head else ""
            base = url[: len(url) - len(path) + len(fixed)] if url.endswith(path) else None
            keys = [key for key in fs.glob(path) if fs.isfile(key)]
            if not keys:
                raise InputError(f"{redact(url)}: the pattern matches no object")
            found = [(key[len(fixed):].lstrip("/"), key) for key in keys]
            objects = [(join(base, rel) if base is not None else fs.unstrip_protocol(key), rel) for rel, key in found]
        elif fs.isdir(path):
            root = path.rstrip("/")
            names = [key[len(root):].lstrip("/") for key in fs.find(root)]
            objects = [(join(url, rel), rel) for rel in names
                       if rel.lower().endswith(tuple(extensions)) and not any(p.startswith(".") for p in rel.split("/"))]
            if not objects:
                shown = "/".join(e.lstrip(".") for e in extensions[:4])
                raise InputError(f"{redact(url)}: no {shown} objects under this prefix")
        elif fs.exists(path):
            objects = [(url, path.rstrip("/").rsplit("/", 1)[-1])]
        else:
            raise InputError(f"{redact(url)}: no such object or prefix")
    except InputError:
        raise
    except Exception as exc:
        raise _unreadable(url, exc) from None
    return sorted(objects, key=lambda pair: pair[1])


def open_object(url: str):
    """The object at ``url`` as a binary file open for reading (read as it is consumed)."""
    fs, path, _ = _filesystem(url)
    try:
        return fs.open(path, "rb")
    except Exception as exc:
        raise _unreadable(url, exc) from None


def first_object(url: str, extensions: Sequence[str]) -> Optional[str]:
    """``url`` itself when it names an object, else the URL of the first object (by name)
    directly below the prefix whose name ends with one of ``extensions``; ``None`` when
    there is none or the store cannot say. One listing of one level, nothing read."""
    fs, path, _ = _filesystem(url)
    try:
        if not fs.isdir(path):
            return url if fs.exists(path) else None
        root = path.rstrip("/")
        names = sorted(entry["name"][len(root):].lstrip("/") for entry in fs.ls(root, detail=True)
                       if entry.get("type") != "directory")
    except FileNotFoundError:  # the batch's own listing says what is missing
        return None
    except Exception as exc:  # unreachable or refused: said once, not again by every later call
        raise _unreadable(url, exc) from None
    return next((join(url, name) for name in names
                 if name.lower().endswith(tuple(extensions)) and not name.startswith(".")), None)


def local_file(spec: "str | os.PathLike") -> Path:
    """``spec`` as a local path: a storage URL (a model file on S3, say) is copied once per
    machine into ``$SEGTOOLS_HOME/objects/`` and the copy's path returned; anything else is
    ``Path(spec)`` (whose reader says when it is missing).

    The copy is kept beside a note of what the store said of the object (its ETag, size,
    time), and fetched again when that changes; it is written under a temporary name and
    renamed, so the workers of one machine that ask together never read half a file. A
    Dask task carries the URL and each worker resolves it here: the model never travels
    with the tasks, and no machine needs a shared file system for it."""
    import hashlib
    import json

    if not is_url(str(spec)):
        return Path(spec)
    url = str(spec)
    fs, path, _ = _filesystem(url)
    try:
        info = fs.info(path)
    except Exception as exc:
        raise _unreadable(url, exc) from None
    if info.get("type") == "directory":
        raise InputError(f"{redact(url)}: is a prefix, expected an object")
    stamp = {key: str(info[key]) for key in sorted(info) if key.lower() in
             ("etag", "size", "mtime", "last_modified", "lastmodified", "created", "md5_checksum", "generation")}
    from segtools.io.streams import AtomicFile, write_bytes
    from segtools.weights.registry import segtools_home

    name = path.rstrip("/").rsplit("/", 1)[-1]
    local = segtools_home() / "objects" / f"{hashlib.sha256(redact(url).encode()).hexdigest()[:16]}-{name}"
    note = local.with_name(local.name + ".json")
    try:
        if local.is_file() and json.loads(note.read_text()) == stamp:
            return local
    except (OSError, ValueError):
        pass
    with open_object(url) as source, AtomicFile(local, allow_overwrite=True) as target:
        while True:  # the copy goes up whole or not at all: a temporary file beside it, renamed
            try:
                block = source.read(1 << 20)
            except Exception as exc:  # the store's side; the writer's own failures are OutputErrors
                raise _unreadable(url, exc) from None
            if not block:
                break
            target.handle.write(block)
    write_bytes(note, json.dumps(stamp).encode(), allow_overwrite=True)
    return local


def check_store(url: str) -> str:
    """``url`` once its store is known and its extra installed (fails before any work)."""
    _filesystem(url)
    return url


def fetch(url: str, into: Path) -> str:
    """Copy the object or prefix at ``url`` under ``into``; the local path to read."""
    fs, path, _ = _filesystem(url)
    try:
        if fs.isdir(path):
            local = into / (Path(path.rstrip("/")).name or "root")
            fs.get(path.rstrip("/") + "/", str(local) + "/", recursive=True)
            if not any(p.is_file() for p in local.rglob("*")):
                raise InputError(f"{redact(url)}: no objects under this prefix")
            return str(local)
        if not fs.exists(path):
            raise InputError(f"{redact(url)}: no such object or prefix")
        local_file = into / Path(path).name
        fs.get_file(path, str(local_file))
        return str(local_file)
    except InputError:
        raise
    except Exception as exc:  # the store's own message may quote the URL, credentials and all
        raise InputError(f"{redact(url)}: cannot read it ({type(exc).__name__})") from None


#: the temporary folders of this process's staged inputs and outputs, while they exist
_staged: list[Path] = []


def staged_here() -> bool:
    """Whether this process holds staged copies of storage inputs or outputs now: local
    files that a Dask worker on another machine could not read or write."""
    return bool(_staged)


@contextmanager
def _staging(prefix: str) -> Iterator[Path]:
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix=prefix))
    _staged.append(root)
    try:
        yield root
    finally:
        _staged.remove(root)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def staged_inputs(specs: Sequence[str]) -> Iterator[list[str]]:
    """``specs`` with each URL replaced by a local copy (a folder for a prefix), removed after."""
    if not any(is_url(spec) for spec in specs):
        yield list(specs)
        return
    with _staging("segtools-in-") as root:
        yield [fetch(spec, root / str(index)) if is_url(spec) else spec for index, spec in enumerate(specs)]


def publish(local: Path, url: str) -> int:
    """Upload ``local`` (a file, or every file below a folder) to ``url`` as whole objects;
    the number of objects written."""
    fs, path, protocol = _filesystem(url)
    files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
    try:
        for file in files:
            key = path if local.is_file() else path.rstrip("/") + "/" + file.relative_to(local).as_posix()
            if protocol in ATOMIC_PUT:
                fs.put_file(str(file), key)  # one PUT: the object appears whole or not at all
            else:
                parent, name = key.rsplit("/", 1) if "/" in key else ("", key)
                temporary = f"{parent}/.{name}.partial" if parent else f".{name}.partial"
                fs.put_file(str(file), temporary)
                fs.mv(temporary, key)
    except Exception as exc:  # the store's own message may quote the URL, credentials and all
        raise OutputError(f"{redact(url)}: cannot write it ({type(exc).__name__})") from None
    return len(files)


def remove(url: str) -> None:
    """Delete the object at ``url`` (cleaning up after a failed batch); one already gone is fine."""
    fs, path, _ = _filesystem(url)
    try:
        fs.rm_file(path)
    except FileNotFoundError:
        pass
    except Exception as exc:  # the store's own message may quote the URL, credentials and all
        raise OutputError(f"{redact(url)}: cannot remove it ({type(exc).__name__})") from None


@contextmanager
def staged_output(output: Optional[str]) -> Iterator[Optional[str]]:
    """A local stand-in for an output URL (same file name, or a folder), uploaded when the
    body succeeds; a local output or ``None`` is passed through."""
    if not is_url(output):
        yield output
        return
    _filesystem(output)  # an unknown store or a missing extra fails before any work
    with _staging("segtools-out-") as root:
        name = output.rstrip("/").rsplit("/", 1)[-1]
        local = root / name if "." in name and not output.endswith("/") else root / "out"
        yield str(local)
        if local.exists():
            publish(local, output)


def storage(**where):
    """:func:`with_storage` as a decorator: ``@storage(inputs="masks", paths=("over",))``."""
    return lambda command: with_storage(command, **where)


def with_storage(command, inputs: Optional[str] = "inputs", output: Optional[str] = "output", paths: Sequence[str] = (),
                 outputs: Sequence[str] = (), streamed: Sequence[str] = (), streams=None):
    """``command`` (a CLI function called with keyword arguments) with its ``inputs`` list,
    its other input options ``paths`` (a path, or a list of them), its ``output`` and other
    output options ``outputs`` staged: URLs there are read and written through object
    storage (outputs uploaded only when the command succeeds). The signature seen by the
    CLI is the command's own (``functools.wraps``).

    The options named in ``streamed`` keep their URLs: the command reads and writes them
    item by item itself (see the module's notes), when ``streams(options)`` says so (no
    ``streams``: always) — e.g. not for a video, whose decoder needs a local file."""
    import functools
    from contextlib import ExitStack

    reads = ([inputs] if inputs else []) + list(paths)
    writes = ([output] if output else []) + list(outputs)

    def given(value) -> list:
        return [] if value is None else [value] if isinstance(value, (str, Path)) else list(value)

    @functools.wraps(command)
    def staged(**options):
        if not any(is_url(str(spec)) for name in reads + writes for spec in given(options.get(name))):
            return command(**options)
        kept = set(streamed) if streamed and (streams is None or streams(options)) else set()
        with ExitStack() as stack:
            for name in kept:
                for spec in given(options.get(name)):
                    if is_url(str(spec)):
                        check_store(str(spec))  # an unknown store or a missing extra fails first
            for name in (n for n in writes if n not in kept):  # an unknown store or a missing extra fails before anything is read
                if is_url(options.get(name)):
                    options[name] = stack.enter_context(staged_output(options[name]))
            for name in (n for n in reads if n not in kept):
                value = options.get(name)
                if value is None or not any(is_url(str(spec)) for spec in given(value)):
                    continue
                local = stack.enter_context(staged_inputs([str(spec) for spec in given(value)]))
                options[name] = local[0] if isinstance(value, (str, Path)) else local
            return command(**options)

    return staged
