"""Download a file over HTTP(S): resume, verify, rename atomically.

The file grows as ``DEST.part``; an interrupted download is resumed with an HTTP ``Range``
request (a server that ignores it makes us start over). When the last byte is in, the
SHA-256 is checked — the full hash, or the torch-hub hash prefix in the file name — and a
mismatch deletes the partial file. Only then is ``DEST.part`` renamed to ``DEST``. A server that
sends nothing for ``timeout`` seconds ends the attempt; the partial file is kept for a resume.

``offline=True`` or ``SEGTOOLS_OFFLINE=1`` refuses to touch the network. Standard library only;
the network modules are imported by :func:`download` itself (the registry imports this module
for :func:`hash_prefix_from_name` on every ``predict``).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from segtools.errors import InputError, OutputError

CHUNK_BYTES = 1 << 20
_DISK_ERRORS = (errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EDQUOT, errno.EFBIG)
DEFAULT_TIMEOUT_S = 30.0
USER_AGENT = "segtools (+https://pypi.org/project/segtools)"
#: torch hub names carry the first hex digits of the file's SHA-256: ``name-<hex>.ext``
TORCH_HUB_HASH = re.compile(r"-([a-f0-9]{6,})\.")

#: progress(bytes_done, bytes_total or None)
ProgressFn = Callable[[int, Optional[int]], None]


@dataclass
class Downloaded:
    """Result of :func:`download`: final path, SHA-256, size in bytes, whether it resumed
    (for :func:`download_folder`: the folder, ``""``, the bytes fetched, whether any file
    resumed, and ``files``: the SHA-256 of each file fetched, by name)."""

    path: Path
    sha256: str
    size: int
    resumed: bool
    files: dict = field(default_factory=dict)


def offline_requested(offline: bool | None = None) -> bool:
    """``offline`` when given, else ``SEGTOOLS_OFFLINE`` set to something other than 0/false."""
    if offline is not None:
        return offline
    return os.environ.get("SEGTOOLS_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def download(url: str, dest: str | os.PathLike, *, sha256: str = "", hash_prefix: str = "",
             timeout: float = DEFAULT_TIMEOUT_S, progress: ProgressFn | None = None,
             offline: bool | None = None) -> Downloaded:
    """Fetch ``url`` into ``dest``, resuming ``dest.part`` if present, verifying the hash.

    Parameters
    ----------
    url : http(s) or file URL.
    dest : final path; its folder is created.
    sha256 : expected full hex SHA-256 ("" when unknown).
    hash_prefix : expected leading hex digits of the SHA-256 (torch-hub file names).
    timeout : seconds without any data (connect or read) before giving up.
    progress : called with ``(bytes_done, bytes_total_or_None)`` after each chunk.
    offline : refuse network access (default: ``SEGTOOLS_OFFLINE``).

    Raises
    ------
    InputError
        Offline mode, HTTP errors (404...), unreachable host, a stall longer than ``timeout``,
        a truncated transfer, or a hash mismatch (the partial file is then deleted).
    """
    import http.client  # the network modules cost a third of a second: imported only to download
    import socket
    import urllib.error
    import urllib.request

    dest = Path(dest)
    if offline_requested(offline):
        raise InputError(f"offline (offline requested or SEGTOOLS_OFFLINE set): not downloading {url}; "
                         f"copy the file to {dest} or give a local checkpoint file as weights")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{dest.parent}: cannot create the download folder ({exc.strerror or exc})") from None
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    have = _hash_existing(part, digest)
    resumed = have > 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the .part already holds the whole file
            return _finish(part, dest, digest, have, sha256, hash_prefix, url, resumed)
        raise InputError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InputError(f"{url}: cannot connect ({reason}); check the network, or give a local checkpoint file as weights") from None
    with response:
        status = getattr(response, "status", 200)
        if have and status != 206:  # the server ignored Range: start over
            digest, have, resumed = hashlib.sha256(), 0, False
        length = response.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        mode = "ab" if have else "wb"
        try:
            with open(part, mode) as handle:
                if progress:
                    progress(have, total)
                while True:
                    block = response.read1(CHUNK_BYTES)  # whatever arrived: a stall keeps it
                    if not block:
                        break
                    handle.write(block)
                    digest.update(block)
                    have += len(block)
                    if progress:
                        progress(have, total)
        except (socket.timeout, TimeoutError) as exc:
            raise InputError(f"{url}: stalled — no data for {timeout:g} s after {have} bytes; "
                             f"run the same command again to resume from {part}") from exc
        except (ConnectionError, urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno in _DISK_ERRORS:
                raise OutputError(f"{part}: cannot write ({exc.strerror or exc})") from None
            raise InputError(f"{url}: connection lost after {have} bytes ({exc}); "
                             "run the same command again to resume") from None
    if total is not None and have < total:
        raise InputError(f"{url}: transfer ended early ({have} of {total} bytes); "
                         "run the same command again to resume")
    return _finish(part, dest, digest, have, sha256, hash_prefix, url, resumed)


def _hash_existing(part: Path, digest) -> int:
    """Feed an existing partial file to ``digest``; returns its size (0 when absent)."""
    if not part.is_file():
        return 0
    size = 0
    with open(part, "rb") as handle:
        while block := handle.read(CHUNK_BYTES):
            digest.update(block)
            size += len(block)
    return size


def _finish(part: Path, dest: Path, digest, size: int, sha256: str, hash_prefix: str, url: str,
            resumed: bool) -> Downloaded:
    actual = digest.hexdigest()
    expected = (sha256 or hash_prefix).lower()
    if expected and not actual.startswith(expected):
        part.unlink(missing_ok=True)
        raise InputError(f"{url}: SHA-256 mismatch (expected {expected}…, got {actual[:len(expected)]}…); "
                         "the download was deleted — try again, and report it if it persists")
    os.replace(part, dest)
    return Downloaded(dest, actual, size, resumed)


def hash_prefix_from_name(file_name: str) -> str:
    """The torch-hub hash prefix in ``name-<hex>.ext`` ("" when absent).

    >>> hash_prefix_from_name("deeplabv3_resnet50_coco-cd0a2569.pth")
    'cd0a2569'
    """
    match = TORCH_HUB_HASH.search(file_name)
    return match.group(1) if match else ""


def download_folder(base_url: str, names, folder: str | os.PathLike, *, checksums: dict | None = None,
                    force: bool = False, timeout: float = DEFAULT_TIMEOUT_S, progress: ProgressFn | None = None,
                    offline: bool | None = None) -> Downloaded:
    """Fetch each of ``names`` from ``base_url`` + name into ``folder`` with :func:`download`.

    A file already in the folder was verified when it arrived and is kept (``force`` fetches
    every file again); a file half-fetched (``NAME.part``) resumes. ``checksums`` maps names to
    their full SHA-256 where known. ``progress(done, total)`` counts the bytes of the whole
    folder fetched so far (``total`` only once the last file's length is known). The folder
    is complete when every name is in it: an interrupted pull leaves the files it finished,
    and running it again fetches the rest.
    """
    folder = Path(folder)
    checksums = checksums or {}
    base = base_url if base_url.endswith("/") else base_url + "/"
    done, resumed, hashes = 0, False, {}
    for name in names:
        dest = folder / name
        if force:
            dest.unlink(missing_ok=True)
            dest.with_name(name + ".part").unlink(missing_ok=True)
        elif dest.is_file():
            continue
        offset = done
        report = None if progress is None else (lambda have, total, o=offset: progress(o + have, None))
        result = download(base + name, dest, sha256=checksums.get(name, ""), timeout=timeout, progress=report,
                          offline=offline)
        done += result.size
        resumed = resumed or result.resumed
        hashes[name] = result.sha256
    if progress is not None:
        progress(done, done)
    return Downloaded(folder, "", done, resumed, hashes)
