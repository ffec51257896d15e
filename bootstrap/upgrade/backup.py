"""The copy an apply restores a component from: ``/etc/kubernetes/tmp/kube-bootstrap-backup-<time>/``.

Outside the kubelet's watched directory, always: the kubelet runs every file there, and a backup copy
of a manifest would be a second API server. Keys keep their mode (0600) in a 0700 directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bootstrap.errors import PhaseError
from bootstrap.host.fs import write_atomic

BACKUP_PREFIX = "kube-bootstrap-backup-"
BACKUP_DIR_MODE = 0o700


@dataclass
class Backup:
    """Where the copies are, and which original each one is a copy of."""

    directory: Path
    manifest_dir: Path
    copies: dict[Path, Path] = field(default_factory=dict)  # original -> copy

    def manifest(self, component: str) -> str | None:
        copy = self.copies.get(self.manifest_dir / f"{component}.yaml")
        return copy.read_text() if copy is not None else None

    def restore(self, original: Path) -> bool:
        """Put ``original`` back as it was (atomic); False when it was not backed up."""
        copy = self.copies.get(original)
        if copy is None:
            return False
        write_atomic(original, copy.read_bytes(), copy.stat().st_mode & 0o777)
        return True


def backup_dir(kubernetes_dir: Path, started: datetime) -> Path:
    return kubernetes_dir / "tmp" / f"{BACKUP_PREFIX}{started.strftime('%Y-%m-%d-%H-%M-%S')}"


def make_backup(
    directory: Path, manifest_dir: Path, manifests: list[Path], roots: dict[str, Path], files: list[Path]
) -> Backup:
    """Copy ``manifests`` (under ``manifests/``) and ``files`` (under the name of the first of ``roots``
    they lie in, e.g. ``pki/``) into ``directory``, which must lie outside ``manifest_dir``."""
    if directory.resolve().is_relative_to(manifest_dir.resolve()):
        raise PhaseError(
            f"backup directory {directory} lies in the kubelet's watched directory {manifest_dir}: refusing, "
            "the kubelet would run the copies"
        )
    backup = Backup(directory, manifest_dir)
    for path in manifests:
        _copy(backup, path, directory / "manifests" / path.name)
    for path in files:
        label, root = next(
            ((k, r) for k, r in roots.items() if path.is_relative_to(r)), ("other", path.parent)
        )
        _copy(backup, path, directory / label / path.relative_to(root))
    return backup


def _copy(backup: Backup, original: Path, copy: Path) -> None:
    if not original.exists():
        return
    for parent in reversed(copy.relative_to(backup.directory).parents):
        (backup.directory / parent).mkdir(mode=BACKUP_DIR_MODE, parents=True, exist_ok=True)
    write_atomic(copy, original.read_bytes(), original.stat().st_mode & 0o777, BACKUP_DIR_MODE)
    backup.copies[original] = copy
