"""A long-lived process that runs fuzz cases through the CLI, one after another.

Started by ``fuzzing.Worker``; speaks JSON lines on its original stdin/stdout (which it
moves off fds 0 and 1 first, so that cases see a normal process). Each case runs
``segtools.cli.app.run(args)`` in-process with its own working folder, stdin bytes and
captured stdout; fd 2 goes to a file, so C libraries' own output (libpng, torch) is caught
as well as Python's. The process runs under an address-space limit (start-up size plus a
budget), and a case that outlives its alarm kills the process: the parent reads a crash,
a hang or a memory blow-up as the death of the worker and starts another.

Arguments: budget in MiB, timeout in seconds, a scratch folder, modules to import first.
"""

from __future__ import annotations

import base64
import importlib
import io
import json
import os
import resource
import signal
import sys
import time


class _Kept(io.BytesIO):
    def close(self) -> None:
        pass


class _Pipe(io.TextIOWrapper):
    def isatty(self) -> bool:
        return False


def _status(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # resets VmHWM (Linux >= 4.0)
    except OSError:
        pass


def main() -> None:
    budget_mb, timeout, scratch = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    for module in sys.argv[4:]:
        importlib.import_module(module)
    from segtools.cli import common
    from segtools.cli.app import run
    from segtools.io import limits

    limit = (_status("VmSize") << 10) + (budget_mb << 20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # a hang ends the process
    err_path = os.path.join(scratch, f"stderr-{os.getpid()}")
    home = os.getcwd()
    for line in requests:
        case = json.loads(line)
        os.chdir(case["cwd"])
        err_fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        saved_err = os.dup(2)
        os.dup2(err_fd, 2)
        os.close(err_fd)
        out = _Kept()
        sys.stdin = _Pipe(io.BytesIO(base64.b64decode(case["stdin"])), encoding="utf-8")
        sys.stdout = _Pipe(out, encoding="utf-8", write_through=True)
        _reset_peak()
        start = time.perf_counter()
        signal.alarm(timeout)
        try:
            code = run(case["args"])
        except SystemExit as exc:  # never expected: run() returns codes
            code = 1000 + (exc.code if isinstance(exc.code, int) else 0)
        signal.alarm(0)
        seconds = time.perf_counter() - start
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_err, 2)
        os.close(saved_err)
        common.STATE.quiet = common.STATE.verbose = False
        limits.set_max_pixels(None)
        os.chdir(home)
        with open(err_path, "rb") as err:
            stderr = err.read().decode("utf-8", "replace")
        reply = {"code": code, "stderr": stderr, "seconds": seconds, "peak_mb": _status("VmHWM") / 1024,
                 "stdout_bytes": len(out.getvalue())}
        replies.write(json.dumps(reply).encode() + b"\n")
        replies.flush()


if __name__ == "__main__":
    main()
