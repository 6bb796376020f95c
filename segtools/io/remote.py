"""Inputs and outputs on object storage: fsspec URLs (``s3://``, ``gs://``, ``memory://``, ``file://``).

A command given a URL stages it: an input prefix (or one object) is fetched into a temporary
folder and read like a folder (the keys below the prefix are the relative names); an output
URL is written locally first, then each file goes up as one whole object — one PUT on
object stores (S3, GCS, Azure), where an object appears whole or not at all; elsewhere a
temporary name then a move. A failed command uploads nothing.

Credentials come from each store's usual environment and configuration (for S3:
``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``, ``AWS_ENDPOINT_URL``, …); messages name URLs
without their user info or query (:func:`redact`). fsspec is imported only for a URL.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Sequence

from segtools.errors import InputError, MissingDependency, OutputError

_URL = re.compile(r"^([a-z][a-z0-9+.-]*)://", re.I)
#: Stores whose single PUT is atomic: an object is written whole or not at all.
ATOMIC_PUT = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss")
EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure", "abfss": "azure"}


def is_url(spec: Optional[str]) -> bool:
    """Whether ``spec`` is a URL for fsspec (not a local path, not ``-``).

    >>> is_url("s3://bucket/masks/"), is_url("masks/"), is_url("memory://x")
    (True, False, True)
    """
    return bool(spec) and bool(_URL.match(str(spec))) and not str(spec).lower().startswith(("http://", "https://"))


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


@contextmanager
def staged_inputs(specs: Sequence[str]) -> Iterator[list[str]]:
    """``specs`` with each URL replaced by a local copy (a folder for a prefix), removed after."""
    if not any(is_url(spec) for spec in specs):
        yield list(specs)
        return
    root = Path(tempfile.mkdtemp(prefix="segtools-in-"))
    try:
        yield [fetch(spec, root / str(index)) if is_url(spec) else spec for index, spec in enumerate(specs)]
    finally:
        shutil.rmtree(root, ignore_errors=True)


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


@contextmanager
def staged_output(output: Optional[str]) -> Iterator[Optional[str]]:
    """A local stand-in for an output URL (same file name, or a folder), uploaded when the
    body succeeds; a local output or ``None`` is passed through."""
    if not is_url(output):
        yield output
        return
    _filesystem(output)  # an unknown store or a missing extra fails before any work
    root = Path(tempfile.mkdtemp(prefix="segtools-out-"))
    name = output.rstrip("/").rsplit("/", 1)[-1]
    local = root / name if "." in name and not output.endswith("/") else root / "out"
    try:
        yield str(local)
        if local.exists():
            publish(local, output)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def storage(**where):
    """:func:`with_storage` as a decorator: ``@storage(inputs="masks", paths=("over",))``."""
    return lambda command: with_storage(command, **where)


def with_storage(command, inputs: Optional[str] = "inputs", output: Optional[str] = "output", paths: Sequence[str] = (),
                 outputs: Sequence[str] = ()):
    """``command`` (a CLI function called with keyword arguments) with its ``inputs`` list,
    its other input options ``paths`` (a path, or a list of them), its ``output`` and other
    output options ``outputs`` staged: URLs there are read and written through object
    storage (outputs uploaded only when the command succeeds). The signature seen by the
    CLI is the command's own (``functools.wraps``)."""
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
        with ExitStack() as stack:
            for name in writes:  # an unknown store or a missing extra fails before anything is read
                if is_url(options.get(name)):
                    options[name] = stack.enter_context(staged_output(options[name]))
            for name in reads:
                value = options.get(name)
                if value is None or not any(is_url(str(spec)) for spec in given(value)):
                    continue
                local = stack.enter_context(staged_inputs([str(spec) for spec in given(value)]))
                options[name] = local[0] if isinstance(value, (str, Path)) else local
            return command(**options)

    return staged
