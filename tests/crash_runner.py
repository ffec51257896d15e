"""Runs the ``bootstrap`` CLI with its file mutations counted, or killed just before one of them.

Usage: ``python tests/crash_runner.py <bootstrap arguments>``, with

- ``CRASH_RECORD=<file>``: write the list of mutations (kind and path, in order) there at exit;
- ``CRASH_KILL_AT=<n>``: SIGKILL this process just before mutation ``n`` (0-based).

A mutation is a call of ``os.replace``, ``os.rename``, ``os.open`` with ``O_CREAT``, ``os.mkdir``,
``os.unlink``/``os.remove`` or ``os.fsync``. Only the main process counts: forked key-generation
workers inherit the wrappers but never act on them.

``python tests/crash_runner.py --serve`` is the same runner as a fork server, for tests that start
hundreds of runs: it imports every ``bootstrap`` module once, then forks one run per request line on
stdin (see :func:`serve`). Most of a short run's time is importing: a forked run skips that and is
otherwise a new process like any other (own pid and process group, its own ``TMPDIR``, and it exits
through the interpreter's normal shutdown, ``atexit`` handlers included).
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import pkgutil
import select
import signal
import sys
import tempfile
from collections.abc import Callable
from typing import Any

_MAIN = os.getpid()
_KILL_AT = int(os.environ.get("CRASH_KILL_AT", "-1"))
_RECORD = os.environ.get("CRASH_RECORD")
_events: list[tuple[str, str]] = []


def _before(kind: str, target: object) -> None:
    if os.getpid() != _MAIN:
        return
    if len(_events) == _KILL_AT:
        os.kill(_MAIN, signal.SIGKILL)
    _events.append((kind, os.fspath(target) if isinstance(target, str | os.PathLike) else str(target)))


def _wrap(name: str, kind: str, target: Callable[..., Any] | None = None) -> None:
    original = getattr(os, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if target is None or target(*args, **kwargs):
            _before(kind, args[1] if kind in ("replace", "rename") else args[0])
        return original(*args, **kwargs)

    setattr(os, name, wrapper)


def _fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return f"fd {fd}"


def install() -> None:
    _wrap("replace", "replace")
    _wrap("rename", "rename")
    _wrap("mkdir", "mkdir")
    _wrap("unlink", "unlink")
    _wrap("remove", "unlink")
    _wrap("open", "open-creat", lambda path, flags, *a, **k: bool(flags & os.O_CREAT))
    original_fsync = os.fsync

    def fsync(fd: Any) -> None:
        _before("fsync", _fd_path(fd if isinstance(fd, int) else fd.fileno()))
        original_fsync(fd)

    os.fsync = fsync
    if _RECORD:
        atexit.register(_write_record, _RECORD)


def _write_record(path: str) -> None:
    with open(path, "w") as out:
        out.write(json.dumps(_events))


def _import_everything() -> None:
    import bootstrap

    for module in pkgutil.walk_packages(bootstrap.__path__, "bootstrap."):
        if not module.name.endswith(".__main__"):  # running it would run the CLI
            importlib.import_module(module.name)


def serve() -> list[str]:
    """Fork a run per request; return only in a forked child, with the ``bootstrap`` arguments to run.

    A request is one JSON line on stdin: ``id``, ``argv``, ``tmpdir``, ``stdout`` and ``stderr`` (files
    the run's output goes to), optional ``kill_at`` and ``record`` (as ``CRASH_KILL_AT`` and
    ``CRASH_RECORD``). The server answers ``{"id", "pid"}`` once the run is forked and ``{"id",
    "status"}`` (the exit code; minus the signal number when killed) once it has ended. It handles
    requests side by side and stops at end of input, after the runs still going.
    """
    global _MAIN, _KILL_AT, _RECORD
    _import_everything()
    ends: dict[int, tuple[int, int]] = {}  # pidfd -> (request id, pid)
    pending = b""
    stdin = sys.stdin.fileno()
    open_input = True
    while open_input or ends:
        ready, _, _ = select.select(([stdin] if open_input else []) + list(ends), [], [])
        for fd in ready:
            if fd != stdin:
                ident, pid = ends.pop(fd)
                os.close(fd)
                _, status = os.waitpid(pid, 0)
                _answer({"id": ident, "status": os.waitstatus_to_exitcode(status)})
                continue
            chunk = os.read(stdin, 65536)
            open_input = bool(chunk)
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    for inherited in (*ends, stdin):
                        os.close(inherited)
                    _become_run(request)
                    _MAIN, _KILL_AT, _RECORD = os.getpid(), request.get("kill_at", -1), request.get("record")
                    _events.clear()
                    if _RECORD:
                        atexit.register(_write_record, _RECORD)
                    return list(request["argv"])
                ends[os.pidfd_open(pid)] = (request["id"], pid)
                _answer({"id": request["id"], "pid": pid})
    sys.exit(0)


def _become_run(request: dict[str, Any]) -> None:
    """In the forked child: its own process group, ``TMPDIR`` and output files; no server stdin."""
    os.setpgid(0, 0)
    os.environ["TMPDIR"] = request["tmpdir"]
    tempfile.tempdir = None  # recomputed from TMPDIR on next use
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out, fd)
        os.close(out)


def _answer(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    install()
    from bootstrap.cli.main import main

    # main() reads sys.argv itself: that is the path that also installs the CLI's SIGTERM handling.
    sys.argv = ["bootstrap", *(serve() if sys.argv[1:] == ["--serve"] else sys.argv[1:])]
    sys.exit(main())
