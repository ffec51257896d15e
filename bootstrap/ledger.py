"""The ledger of what kube-bootstrap created on a host, and the lock that keeps runs one at a time.

Every file and directory is recorded *before* it is created (an append-only, fsynced JSON-lines
file), so a run killed at any point still leaves a complete list: ``bootstrap reset`` removes
exactly what we made and keeps, and lists, everything else.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bootstrap.errors import BootstrapError
from bootstrap.fsutil import Rootfs

STATE_DIR = "/var/lib/kube-bootstrap"
LEDGER = f"{STATE_DIR}/ledger.jsonl"
LOCK = f"{STATE_DIR}/lock"


class Ledger:
    def __init__(self, fs: Rootfs) -> None:
        self.fs = fs
        self.path = fs.path(LEDGER)
        self._seen: set[tuple[str, str]] | None = None

    def host_path(self, real: Path) -> str | None:
        """``real`` as a host path, or None when it lies outside the filesystem we manage."""
        root = self.fs.root
        if root is None:
            return str(real)
        try:
            return "/" + str(real.resolve().relative_to(root.resolve()))
        except ValueError:
            return None

    def record(self, real: Path, kind: str) -> None:
        host = self.host_path(real)
        if host is None or real == self.path or host.startswith(f"{STATE_DIR}/"):
            return
        if self._seen is None:
            self._seen = {(e["path"], e["kind"]) for e in self.entries()}
        if (host, kind) in self._seen:
            return
        self._seen.add((host, kind))
        self.ensure_state_dir()
        self._append(host, kind)

    def ensure_state_dir(self) -> None:
        """Create the state directory, recording the parents it creates (reset removes them too)."""
        state = self.path.parent
        if state.is_dir():
            return
        missing = [p for p in state.parents if not p.exists()]
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._seen = self._seen if self._seen is not None else set()
        for parent in reversed(missing):
            host = self.host_path(parent)
            if host not in (None, "/", "/."):  # never the root we were given
                self._append(str(host), "dir")

    def _append(self, host: str, kind: str) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, (json.dumps({"path": host, "kind": kind}) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def entries(self) -> list[dict[str, str]]:
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return []
        entries = []
        for line in lines:
            try:
                entries.append(json.loads(line))
            except ValueError:
                continue  # a line cut short by a crash
        return entries


class LockHeld(BootstrapError):
    """Another bootstrap run holds the lock on this filesystem."""


def _held(fd: int, path: Path) -> LockHeld | None:
    """Try the lock on ``fd`` without waiting; the error naming its holder when another run has it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "unknown process"
        return LockHeld(
            f"another bootstrap run is working on this host ({holder}); lock file {path}. "
            "Wait for it to finish, or stop it"
        )
    return None


def refuse_if_locked(fs: Rootfs) -> None:
    """Fail fast when another run holds the lock, creating nothing (no lock file, no directory)."""
    path = fs.path(LOCK)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return  # no lock file, so no holder; run_lock reports a lock it cannot create
    try:
        held = _held(fd, path)
    finally:
        os.close(fd)  # closing releases the lock this probe may have taken
    if held is not None:
        raise held


@contextmanager
def run_lock(fs: Rootfs) -> Iterator[None]:
    """Hold the one-run-at-a-time lock for ``fs``; fail fast, naming the holder, when it is taken."""
    path = fs.path(LOCK)
    Ledger(fs).ensure_state_dir()
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)  # never truncate through a link
    except OSError as exc:
        raise BootstrapError(f"{path}: cannot open the run lock: {exc.strerror or exc}") from exc
    try:
        held = _held(fd, path)
        if held is not None:
            raise held
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {' '.join(['bootstrap', *sys.argv[1:]])[:300]}".encode(), 0)
        yield
    finally:
        os.close(fd)
