"""The one place that writes files: atomic, with the final mode from the first byte.

A crash at any point leaves either the old file or the new one, never a truncated key or a
half-written manifest. Temporary files start with a dot because the kubelet ignores dot-files in
its static pod directory; a run killed mid-write leaves one behind, and the next run removes it
(:func:`remove_stale_temps`, called when the run lock is taken).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from bootstrap.errors import PhaseError

# Who wants to know, before it happens, about every file and directory we create (the ledger that
# lets `bootstrap reset` remove exactly what we made). Called with (path, "file" | "dir").
_journal: ContextVar[Callable[[Path, str], None] | None] = ContextVar("journal", default=None)


@contextmanager
def journal(record: Callable[[Path, str], None]) -> Iterator[None]:
    """Within this block, report every path about to be created through ``record``."""
    token = _journal.set(record)
    try:
        yield
    finally:
        _journal.reset(token)


@contextmanager
def capture(created: list[tuple[Path, str]]) -> Iterator[None]:
    """Within this block, also append to ``created`` every path about to be created (still journaled)."""
    outer = _journal.get()

    def record(path: Path, kind: str) -> None:
        created.append((path, kind))
        if outer is not None:
            outer(path, kind)

    with journal(record):
        yield


def remove_created(created: list[tuple[Path, str]]) -> list[Path]:
    """Undo ``created`` (from :func:`capture`): remove its new files, then its directories left empty.

    Files that existed before (journaled as ``modified``) are kept. Returns what was removed.
    """
    removed: list[Path] = []
    for path, kind in reversed(created):
        try:
            if kind == "file" and not path.is_symlink() and path.is_file():
                path.unlink()
            elif kind == "dir" and path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
                path.rmdir()
            else:
                continue
        except FileNotFoundError:
            continue
        removed.append(path)
    return removed


def announce(path: Path, kind: str) -> None:
    """Tell the journal about something we will own without writing it (e.g. etcd's data directory)."""
    _note(path, kind)


def _note(path: Path, kind: str) -> None:
    record = _journal.get()
    if record is not None:
        record(path, kind)


# The temporary name of a file being written: ``.<name>.<8 hex digits>.tmp``. Only names of exactly
# this form are ever removed as leftovers.
_TEMP_NAME = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{8}\.tmp")


def temp_path(path: Path) -> Path:
    """A fresh temporary name next to ``path`` (a dot-file, ignored by the kubelet)."""
    return path.parent / f".{path.name}.{os.urandom(4).hex()}.tmp"


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is one of our temporary names (see :func:`temp_path`)."""
    return _TEMP_NAME.fullmatch(name) is not None


def remove_stale_temps(directories: Iterable[Path]) -> list[Path]:
    """Remove our temporary files left in ``directories`` by a run that was killed mid-write.

    Call it only while holding the run lock: no other run is writing then, so every such file is a
    leftover. They may hold a complete private key, and unlinking is enough: the key in one never
    went into service (the rename that would have installed it did not happen), the file was 0600
    from its creation, and whoever could read its freed blocks off the disk is root and can read
    ``ca.key`` itself. Overwriting first would not even reach those blocks reliably on journaling or
    copy-on-write filesystems and SSDs. Regular files only; links are never followed.
    """
    removed = []
    for directory in directories:
        try:
            names = os.listdir(directory)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            problem = f"cannot list it for leftover temporary files: {exc.strerror}"
            raise PhaseError(f"{directory}: {problem}") from exc
        for name in sorted(names):
            if not is_temp_name(name):
                continue
            candidate = directory / name
            try:
                if not stat.S_ISREG(candidate.lstat().st_mode):
                    continue
                candidate.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                problem = f"cannot remove this leftover temporary file: {exc.strerror}"
                raise PhaseError(f"{candidate}: {problem}") from exc
            removed.append(candidate)
    return removed


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(directory: Path, mode: int = 0o755) -> None:
    """Create ``directory`` (and parents) if missing; a directory we create gets ``mode``."""
    if directory.is_dir():
        return
    missing = [directory, *(p for p in directory.parents if not p.exists())]
    for created in reversed(missing):
        _note(created, "dir")
    directory.mkdir(parents=True, exist_ok=True, mode=mode)
    # mkdir's mode is filtered by the umask; set it explicitly.
    os.chmod(directory, mode)


def write_atomic(path: Path, data: bytes, mode: int, dir_mode: int = 0o755) -> bool:
    """Write ``data`` to ``path`` atomically with ``mode``; return False when the content was already there.

    Unchanged content is not rewritten, so the mtime is kept (the kubelet and humans both notice
    rewrites). A differing mode on an unchanged file is corrected in place. An OS error becomes a
    :class:`PhaseError` naming the file.
    """
    try:
        return _write_atomic(path, data, mode, dir_mode)
    except OSError as exc:
        raise PhaseError(f"{path}: cannot write: {exc.strerror or exc}") from exc


def _write_atomic(path: Path, data: bytes, mode: int, dir_mode: int) -> bool:
    try:
        if path.read_bytes() == data:
            if (path.stat().st_mode & 0o7777) != mode:
                os.chmod(path, mode)
            return False
    except FileNotFoundError:
        pass
    ensure_dir(path.parent, dir_mode)
    # A file that was there before us is ours to change, not to delete on reset.
    _note(path, "modified" if path.exists() else "file")
    tmp = temp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            os.fchmod(fd, mode)  # O_CREAT's mode is filtered by the umask
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return True


class Rootfs:
    """Maps host paths (as written into manifests and kubeconfigs) to where they live for this run.

    With ``--rootfs DIR`` every path the tool reads or writes is resolved under DIR, as if DIR were
    ``/`` (kubeadm chroots there): symbolic links inside DIR are followed within DIR, an absolute
    link target is taken relative to DIR, and ``..`` never climbs above it. Paths written into files
    stay host paths.
    """

    MAX_LINKS = 40

    def __init__(self, root: Path | None = None) -> None:
        self.root = root

    def path(self, host_path: str | Path) -> Path:
        """The real location of ``host_path`` (an absolute host path)."""
        host = Path(host_path)
        if self.root is None:
            return host
        return self._confined(host)

    def _confined(self, host: Path) -> Path:
        root = self.root
        assert root is not None
        parts = list(host.relative_to(host.anchor).parts) if host.is_absolute() else list(host.parts)
        resolved: list[str] = []
        links = 0
        while parts:
            part = parts.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if resolved:
                    resolved.pop()
                continue
            candidate = root.joinpath(*resolved, part)
            if candidate.is_symlink():
                links += 1
                if links > self.MAX_LINKS:
                    raise PhaseError(f"{host}: too many levels of symbolic links under {root}")
                target = Path(os.readlink(candidate))
                if target.is_absolute():
                    resolved = []
                    parts = list(target.relative_to(target.anchor).parts) + parts
                else:
                    parts = list(target.parts) + parts
                continue
            resolved.append(part)
        return root.joinpath(*resolved)

    def __repr__(self) -> str:
        return f"Rootfs({self.root!s})"
