"""Runs the ``bootstrap`` CLI with its file mutations counted, or killed just before one of them.

Usage: ``python tests/crash_runner.py <bootstrap arguments>``, with

- ``CRASH_RECORD=<file>``: write the list of mutations (kind and path, in order) there at exit;
- ``CRASH_KILL_AT=<n>``: SIGKILL this process just before mutation ``n`` (0-based).

A mutation is a call of ``os.replace``, ``os.rename``, ``os.open`` with ``O_CREAT``, ``os.mkdir``,
``os.unlink``/``os.remove`` or ``os.fsync``. Only the main process counts: forked key-generation
workers inherit the wrappers but never act on them.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import sys
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


if __name__ == "__main__":
    install()
    from bootstrap.cli.main import main

    sys.argv[0] = "bootstrap"
    sys.exit(main())
