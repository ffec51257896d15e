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
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any

from bootstrap.errors import BootstrapError
from bootstrap.host.fs import Rootfs, journal, remove_stale_temps

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

    def directories(self) -> list[Path]:
        """The directories we have written into: every recorded directory and every file's parent."""
        found: dict[str, None] = {}
        for entry in self.entries():
            path = entry.get("path")
            if not isinstance(path, str) or not path.startswith("/"):
                continue
            found[path if entry.get("kind") == "dir" else str(Path(path).parent)] = None
        return [self.fs.path(host) for host in found]

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


# Lock descriptors this process holds. A forked child (a key-generation worker) gets copies, and a
# flock lives as long as any copy is open: the child closes its copies at once so that it can never
# keep the lock after the run itself is gone. (Closing a copy does not unlock it for the parent.)
_held: list[int] = []


def _close_inherited_locks() -> None:
    for fd in _held:
        with suppress(OSError):
            os.close(fd)
    _held.clear()


os.register_at_fork(after_in_child=_close_inherited_locks)

GUARD_TIMEOUT = 10.0


def _stderr_warning(message: str) -> None:
    print(f"[warning] {message}", file=sys.stderr)


def _proc_start(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks after boot), or None when it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces and parentheses
    return None if fields[0] in ("Z", "X") else fields[19]


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _our_record(argv: list[str]) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "start": _proc_start(os.getpid()),
        "pidns": _pid_namespace(),
        "command": " ".join(["bootstrap", *argv])[:300],
    }


def _read_record(fd: int) -> dict[str, Any] | None:
    """Who wrote the lock file: None when it names no one (a released lock)."""
    text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    if not text:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        record = None
    if not isinstance(record, dict) or not isinstance(record.get("pid"), int):
        # An older version's "pid N: command" line: it never cleared the file on release.
        return {"legacy": True, "text": text}
    return record


def _describe(record: dict[str, Any] | None) -> str:
    if record is None:
        return "unknown process"
    if record.get("legacy"):
        return str(record["text"])
    return f"pid {record['pid']}: {record.get('command', 'bootstrap')}"


def _holder_gone(record: dict[str, Any] | None) -> bool:
    """True only when we can tell that the process named by ``record`` has ended."""
    if record is None or record.get("legacy") or record.get("pidns") != _pid_namespace():
        return False  # in another pid namespace the number means nothing to us
    if _proc_start(os.getpid()) is None:
        return False  # no /proc to ask: never guess that a holder is gone
    start = _proc_start(int(record["pid"]))
    return start is None or start != record.get("start")  # a different start: the pid was reused


@contextmanager
def _guard(directory: Path) -> Iterator[None]:
    """Serialise taking the lock (and taking it over) among runs: a flock on the state directory."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise BootstrapError(f"{directory}: cannot open the run lock's directory: {exc.strerror}") from exc
    _held.append(fd)
    try:
        deadline = time.monotonic() + GUARD_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    raise LockHeld(f"{directory}: another bootstrap run is taking the run lock") from None
                time.sleep(0.01)
        yield
    finally:
        _held.remove(fd)
        os.close(fd)


def _open_lock(path: Path, flags: int = 0) -> int:
    try:
        # Never truncate through a link; O_CLOEXEC (Python's default) keeps it from exec'd programs.
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | flags, 0o600)
    except OSError as exc:
        raise BootstrapError(f"{path}: cannot open the run lock: {exc.strerror or exc}") from exc


def _lock_held(path: Path, record: dict[str, Any] | None) -> LockHeld:
    return LockHeld(
        f"another bootstrap run is working on this host ({_describe(record)}); lock file {path}. "
        "Wait for it to finish, or stop it"
    )


def _lock_or_refuse(fd: int, path: Path) -> dict[str, Any] | None:
    """Try the lock on ``fd`` without waiting: None when we hold it now, else the record of a holder
    that has ended (processes it left behind hold the lock). A live holder raises :class:`LockHeld`."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return None
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            raise
    record = _read_record(fd)
    if record is None or not _holder_gone(record):
        raise _lock_held(path, record)
    return record


def refuse_if_locked(fs: Rootfs) -> None:
    """Fail fast when a live run holds the lock, creating nothing (no lock file, no directory).

    A lock held only by what an ended run left behind is no refusal: :func:`run_lock` takes it over.
    """
    path = fs.path(LOCK)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return  # no lock file, so no holder; run_lock reports a lock it cannot create
    try:
        _lock_or_refuse(fd, path)
    finally:
        os.close(fd)  # closing releases the lock this probe may have taken


def _take(path: Path, warn: Callable[[str], None]) -> int:
    """Open and lock ``path`` (under the guard); return the locked descriptor."""
    fd = _open_lock(path)
    try:
        record = _lock_or_refuse(fd, path)
        if record is None:
            return fd
        # The run that took the lock has ended, yet the lock is held: by processes that inherited it
        # from that run. We cannot unlock their file, so we lock a new one in its place.
        warn(
            f"the run lock {path} is held by processes left behind by pid {record['pid']}, which has "
            "ended; taking the lock over with a new lock file"
        )
        os.unlink(path)
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    fd = _open_lock(path, os.O_EXCL)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


@contextmanager
def run_lock(fs: Rootfs, warn: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the one-run-at-a-time lock for ``fs``; fail fast, naming the holder, when it is taken.

    A lock left by a run that ended without releasing it (killed, crashed) is taken over with a
    warning naming that run's pid, and what such a run left in flight (half-written dot-temp files in
    the directories the ledger lists) is removed before this run starts.
    """
    warn = warn or _stderr_warning
    path = fs.path(LOCK)
    ledger = Ledger(fs)
    ledger.ensure_state_dir()
    with _guard(fs.path(STATE_DIR)):
        fd = _take(path, warn)
        _held.append(fd)
    try:
        previous = _read_record(fd)
        if previous is not None and not previous.get("legacy"):
            warn(
                f"the previous run (pid {previous['pid']}: {previous.get('command', 'bootstrap')}) ended "
                "without releasing the run lock (killed or crashed); taking the lock over"
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_our_record(sys.argv[1:])).encode(), 0)
        os.fsync(fd)
        removed = remove_stale_temps(ledger.directories())
        if removed:
            warn(
                f"removed {len(removed)} half-written file(s) an interrupted run left behind: "
                + ", ".join(str(p) for p in removed)
            )
        yield
    finally:
        # A released lock names no one, so a name found there later means that run never finished.
        os.ftruncate(fd, 0)
        _held.remove(fd)
        os.close(fd)


@contextmanager
def recorded_run(
    lock_fs: Rootfs | None, ledger_fs: Rootfs, warn: Callable[[str], None] | None = None
) -> Iterator[None]:
    """One run that writes: hold ``lock_fs``'s run lock (None: take no lock, as a dry run, which
    writes nothing real) and record every path created in ``ledger_fs``'s ledger, before it is created."""
    lock: AbstractContextManager[None] = nullcontext() if lock_fs is None else run_lock(lock_fs, warn=warn)
    with lock, journal(lambda path, kind: Ledger(ledger_fs).record(path, kind)):
        yield
